"""The member axis of the DQN family: a stacked update equals each member's solo update, members never mix."""

import copy

import gymnasium as gym
import numpy as np
import pytest
import torch

from rlrun.agents import build_agent
from rlrun.agents.dqn_population import DQNPopulation, clip_per_member
from rlrun.networks import QNetwork, StackedQNetwork
from tests.conftest import compose_cfg

OBS_SPACE = gym.spaces.Box(-1.0, 1.0, (4,), np.float32)
ACTIONS = gym.spaces.Discrete(2)
SMALL = [
    "device=cpu",
    "agent.batch_size=16",
    "agent.learning_starts=32",
    "agent.train_freq=1",
    "agent.hidden_sizes=[16,16]",
    "agent.target_update_every=8",
]


def agents(seeds, *overrides):
    made = []
    for seed in seeds:
        torch.manual_seed(seed)  # as the Trainer's seed_everything: each member's initial weights are its seed's
        made.append(
            build_agent(compose_cfg(f"seed={seed}", *SMALL, *overrides), OBS_SPACE, ACTIONS, torch.device("cpu"))
        )
    return made


def fill(agent, seed, steps=64, perturb=0.0):
    """The same transitions for a given seed, whichever agent stores them."""
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        obs = rng.uniform(-1, 1, (1, 4)).astype(np.float32)
        next_obs = rng.uniform(-1, 1, (1, 4)).astype(np.float32)
        rewards = rng.normal(size=1) + perturb
        agent.observe(obs, rng.integers(0, 2, 1), rewards, next_obs, rng.random(1) < 0.1, np.zeros(1, bool))


def train_side_by_side(solo, members):
    """The same data and update steps for each solo agent and, stacked as one population, for its twin member."""
    population = DQNPopulation(members)
    for seed, (alone, member) in enumerate(zip(solo, members)):
        fill(alone, seed)
        fill(member, seed)
    for step in (64, 72, 80):
        for alone in solo:
            alone.update(step, 0)
        population.update(step)


def weights(agent):
    return {name: param.detach().clone() for name, param in agent.online.named_parameters()}


@pytest.mark.parametrize(
    "variant",
    [
        "agent=dqn",
        "agent=double_dqn",
        "agent=dueling_dqn",
        "agent=per_dqn",
        "buffer.n_step=3",
        "agent.target_update=soft",
    ],
)
def test_a_members_update_equals_its_solo_update(variant):
    """Every variant: after a few gradient and target steps on the same data, each member's weights equal those
    of the same agent trained alone, up to float rounding (batched matmuls sum in another order)."""
    solo, members = agents([0, 1, 2], variant), agents([0, 1, 2], variant)
    before = [weights(alone) for alone in solo]
    train_side_by_side(solo, members)
    for alone, member, initial in zip(solo, members, before):
        for name, value in weights(alone).items():
            assert not torch.equal(value, initial[name])  # it learned
            torch.testing.assert_close(weights(member)[name], value, rtol=1e-4, atol=1e-5)


def test_members_may_differ_in_gamma_and_tau_and_each_update_is_its_own():
    """A gamma or tau grid is one population: member k bootstraps with its own gamma^n and moves its target with
    its own Polyak rate, so each equals its solo run; members that differ in anything else are refused."""
    settings = [("0.9", "0.01"), ("0.99", "0.005"), ("0.999", "0.1")]
    common = ("agent.target_update=soft", "buffer.n_step=2")

    def grid():
        return [
            agents([seed], *common, f"agent.gamma={gamma}", f"agent.tau={tau}")[0]
            for seed, (gamma, tau) in enumerate(settings)
        ]

    solo, members = grid(), grid()
    train_side_by_side(solo, members)
    for alone, member in zip(solo, members):
        for name, value in weights(alone).items():
            torch.testing.assert_close(weights(member)[name], value, rtol=1e-4, atol=1e-5)
        for (name, value), (_, mine) in zip(alone.target.named_parameters(), member.target.named_parameters()):
            torch.testing.assert_close(mine, value, rtol=1e-4, atol=1e-5, msg=name)
    # the grid mattered: member 0 (gamma 0.9, tau 0.01) is not where the same seed's gamma 0.99 run would be
    other = agents([0], *common, "agent.gamma=0.99", "agent.tau=0.005")[0]
    DQNPopulation([other, agents([1], *common)[0]])
    fill(other, 0)
    for step in (64, 72, 80):
        other.update(step, 0)
    assert not torch.allclose(weights(other)["head.weight"], weights(members[0])["head.weight"])

    with pytest.raises(ValueError, match=r"differ in agent\.batch_size"):
        DQNPopulation([agents([0])[0], agents([1], "agent.batch_size=8")[0]])


def test_members_may_differ_in_learning_rate_and_anneal_and_each_steps_at_its_own():
    """An lr grid is one population: each member takes its own Adam step (its rate, its anneal), equal to its
    solo run up to float32 rounding; the member's optimizer, as its checkpoint saves it, holds its own rate."""
    settings = [("1e-3", "null"), ("3e-4", "1e-5"), ("3e-3", "1e-4")]

    def grid():
        return [
            agents([seed], f"agent.lr={lr}", f"agent.lr_end={lr_end}", "agent.lr_decay_steps=100")[0]
            for seed, (lr, lr_end) in enumerate(settings)
        ]

    solo, members = grid(), grid()
    population = DQNPopulation(members)
    for seed, (alone, member) in enumerate(zip(solo, members)):
        fill(alone, seed)
        fill(member, seed)
    for step in (64, 72, 80):
        solo_metrics = [alone.update(step, 0) for alone in solo]
        member_metrics = population.update(step)
    for k, (alone, member) in enumerate(zip(solo, members)):
        for name, value in weights(alone).items():
            torch.testing.assert_close(weights(member)[name], value, rtol=1e-4, atol=1e-5, msg=f"member {k} {name}")
        assert ("train/lr" in member_metrics[k]) == ("train/lr" in solo_metrics[k])  # only with an anneal
        if "train/lr" in solo_metrics[k]:
            assert member_metrics[k]["train/lr"] == pytest.approx(solo_metrics[k]["train/lr"])
        population.sync_member_optimizer(k)
        assert member.optimizer.param_groups[0]["lr"] == pytest.approx(alone.optimizer.param_groups[0]["lr"])
    # the rates mattered: member 1 (3e-4) moved less than member 2 (3e-3) from where they started
    first, third = grid()[1], grid()[2]
    moved = [
        (weights(member)["head.weight"] - weights(start)["head.weight"]).abs().mean()
        for member, start in ((members[1], first), (members[2], third))
    ]
    assert moved[0] < moved[1] / 3
    # a resumed sweep fills in lr_decay_steps for its annealed members only: they still form one population
    DQNPopulation(
        [agents([0], "agent.lr_end=null")[0], agents([1], "agent.lr_end=1e-5", "agent.lr_decay_steps=400")[0]]
    )


def test_perturbing_one_members_data_leaves_the_others_bitwise_unchanged():
    runs = []
    for perturb in (0.0, 100.0):
        members = agents([0, 1, 2, 3], "agent=per_dqn")
        population = DQNPopulation(members)
        for seed, member in enumerate(members):
            fill(member, seed, perturb=perturb if seed == 2 else 0.0)
        for step in range(64, 96, 4):
            population.update(step)
        runs.append([weights(member) for member in members])
    for k in (0, 1, 3):
        for name, value in runs[0][k].items():
            assert torch.equal(runs[1][k][name], value), (k, name)
    assert not torch.equal(runs[1][2]["head.weight"], runs[0][2]["head.weight"])


def test_gradient_clipping_is_per_member():
    """Member 0's huge gradient is clipped to the max norm; member 1's small one is untouched (a global norm
    over both would shrink it too)."""
    big, small = torch.full((2, 3), 100.0), torch.full((2, 3), 0.01)
    param = torch.nn.Parameter(torch.zeros(2, 2, 3))
    param.grad = torch.stack([big, small])
    reference = [torch.nn.Parameter(torch.zeros(2, 3)) for _ in range(2)]
    for ref, grad in zip(reference, (big, small)):
        ref.grad = grad.clone()
        torch.nn.utils.clip_grad_norm_([ref], 1.0)
    clip_per_member([param], 1.0)
    torch.testing.assert_close(param.grad[0], reference[0].grad)
    torch.testing.assert_close(param.grad[1], small)
    assert param.grad[0].norm().item() == pytest.approx(1.0, rel=1e-4)


@pytest.mark.parametrize("dueling", [False, True])
def test_stacked_forward_equals_each_members_network_and_shares_its_parameters(dueling):
    torch.manual_seed(0)
    networks = [QNetwork(4, 3, [8, 8], dueling) for _ in range(3)]
    copies = copy.deepcopy(networks)
    stacked = StackedQNetwork(networks)
    obs = torch.randn(3, 5, 4)
    q = stacked(obs)
    for k, network in enumerate(copies):
        torch.testing.assert_close(q[k], network(obs[k]))
    with torch.no_grad():  # the members' parameters are views of the stack
        next(iter(stacked.parameters())).add_(1.0)
    assert not torch.equal(next(iter(networks[0].parameters())), next(iter(copies[0].parameters())))


def test_a_members_checkpoint_resumes_its_optimizer_as_a_solo_agent():
    members = agents([0, 1])
    population = DQNPopulation(members)
    for seed, member in enumerate(members):
        fill(member, seed)
    population.update(64)
    population.sync_member_optimizer(1)
    state = members[1].state_dict()
    solo = agents([5])[0]
    solo.load_state_dict(state)
    stacked_state = population.optimizer.state[population.online.stacked_parameter("head.weight")]
    torch.testing.assert_close(
        solo.optimizer.state_dict()["state"][len(state["online"]) - 2]["exp_avg"], stacked_state["exp_avg"][1]
    )
    torch.testing.assert_close(solo.online.head.weight, members[1].online.head.weight)
