"""The Nature-DQN CNN, how DQN picks CNN or MLP, the lean MLP forward and the NumPy greedy policy (its argmax is
the module's, for plain and dueling heads, and it follows weight changes), and the flat parameter buffer of the
actor-critic family (its gradients, clipping and optimizer state equal the per-parameter ones)."""

import numpy as np
import pytest
import torch
from torch import nn

from rlrun.agents.dqn import resolve_network
from rlrun.errors import ConfigError
from rlrun.networks import ActorCriticNetworks, FlatParameters, NatureCNN, NumpyGreedyPolicy, QNetwork


@pytest.mark.parametrize("dueling", [False, True])
def test_cnn_q_network_gives_one_q_value_per_action(dueling):
    torch.manual_seed(0)
    net = QNetwork(4 * 84 * 84, n_actions=6, hidden_sizes=[128], dueling=dueling, network="cnn", obs_shape=(4, 84, 84))
    frames = torch.randint(0, 256, (5, 4, 84, 84), dtype=torch.uint8)
    q = net(frames)
    assert q.shape == (5, 6) and q.dtype == torch.float32
    assert isinstance(net.trunk, NatureCNN)
    assert net.trunk.out_features == (7 * 7 * 64 if dueling else 512)  # Nature DQN's flattened size at 84 x 84
    if dueling:  # Q = V + A - mean(A): the mean over actions is V
        features = net.trunk(frames)
        torch.testing.assert_close(q.mean(dim=1, keepdim=True), net.value(features))


def test_cnn_scales_uint8_pixels_to_unit_range_itself():
    torch.manual_seed(0)
    cnn = NatureCNN((2, 36, 36))
    frames = torch.randint(0, 256, (3, 2, 36, 36), dtype=torch.uint8)
    manual = cnn.fc(cnn.convs(frames.float() / 255.0))
    torch.testing.assert_close(cnn(frames), manual)
    torch.testing.assert_close(cnn(frames.float()), manual)  # float pixel values 0..255 give the same


def test_network_is_picked_from_the_observation_shape_or_the_key():
    assert resolve_network("auto", (4, 84, 84)) == "cnn"
    assert resolve_network("auto", (8,)) == "mlp"
    assert resolve_network("mlp", (4, 84, 84)) == "mlp"
    with pytest.raises(ConfigError, match=r"agent\.network=cnn"):
        resolve_network("cnn", (8,))


def test_numpy_greedy_is_refused_for_the_dueling_head():
    # Near-ties in float32: V + A - mean(A) (the module) and A alone round differently, so a NumPy path built on
    # A would pick other actions than the module for some observations (a review reproduced 140 in 4096).
    with pytest.raises(ValueError, match="dueling"):
        NumpyGreedyPolicy(QNetwork(6, 5, [16], dueling=True))


@pytest.mark.parametrize("hidden_sizes", [[128, 128], [16], [64, 32, 16]])
def test_numpy_greedy_equals_the_modules_argmax(hidden_sizes):
    torch.manual_seed(0)
    network = QNetwork(6, 5, hidden_sizes)
    policy = NumpyGreedyPolicy(network)
    obs = np.random.default_rng(0).standard_normal((500, 6)).astype(np.float32)
    with torch.no_grad():
        expected = network(torch.from_numpy(obs)).argmax(dim=1).numpy()
    np.testing.assert_array_equal(policy(obs), expected)
    np.testing.assert_array_equal(policy(obs[:1]), expected[:1])  # one observation, as when acting


@pytest.mark.parametrize("hidden_sizes", [[128, 128], [16], [64, 32, 16]])
def test_numpy_greedy_computes_float64_observations_in_float32_like_the_module(hidden_sizes):
    # Box spaces declared float64 hand out float64 observations; the torch path casts them to float32.
    torch.manual_seed(0)
    network = QNetwork(6, 5, hidden_sizes)
    policy = NumpyGreedyPolicy(network)
    obs = 3 * np.random.default_rng(0).standard_normal((200, 6))  # float64
    q = np.concatenate([policy.q_values(obs[i : i + 1]) for i in range(len(obs))])  # one at a time, as when acting
    assert q.dtype == np.float32
    # the cast comes first: exactly what the float32 observations give
    np.testing.assert_array_equal(q, np.concatenate([policy.q_values(row[None].astype(np.float32)) for row in obs]))
    with torch.no_grad():
        expected = network(torch.as_tensor(obs, dtype=torch.float32)).numpy()
    # equal to the module's up to float32 rounding: NumPy's BLAS and torch's sum in different orders
    np.testing.assert_allclose(q, expected, rtol=0, atol=16 * np.finfo(np.float32).eps * np.abs(expected).max())
    np.testing.assert_array_equal(policy(obs), expected.argmax(axis=1))


def test_numpy_greedy_sees_optimizer_steps_and_loaded_weights_without_a_refresh():
    torch.manual_seed(0)
    network, other = QNetwork(4, 3, [32, 32]), QNetwork(4, 3, [32, 32])
    policy = NumpyGreedyPolicy(network)
    obs = np.random.default_rng(1).standard_normal((300, 4)).astype(np.float32)
    network.load_state_dict(other.state_dict())
    with torch.no_grad():
        np.testing.assert_array_equal(policy(obs), other(torch.from_numpy(obs)).argmax(dim=1).numpy())
    optimizer = torch.optim.Adam(network.parameters(), lr=0.5, fused=True)
    network(torch.from_numpy(obs))[:, 0].sum().backward()  # push every observation away from action 0
    optimizer.step()
    with torch.no_grad():
        after = network(torch.from_numpy(obs)).argmax(dim=1).numpy()
        before = other(torch.from_numpy(obs)).argmax(dim=1).numpy()
    assert (after != before).any()  # the step changed some choices, and the NumPy view followed
    np.testing.assert_array_equal(policy(obs), after)


def test_numpy_greedy_pays_only_below_the_blas_threading_size():
    small, wide = NumpyGreedyPolicy(QNetwork(8, 4, [128, 128])), NumpyGreedyPolicy(QNetwork(8, 4, [1024, 1024]))
    assert small.pays_for(1) and small.pays_for(16) and not small.pays_for(17)  # 16 x 128 x 128 = 2**18
    assert not wide.pays_for(1)


@pytest.mark.parametrize("dueling", [False, True])
def test_lean_forward_computes_what_the_submodules_compute(dueling):
    """forward() calls F.linear on the layers' own parameters: same values, same state-dict keys as before."""
    torch.manual_seed(0)
    network = QNetwork(5, 3, [32, 16], dueling)
    obs = torch.randn(20, 5)
    features = network.trunk(obs)
    if dueling:
        advantage = network.advantage(features)
        expected = network.value(features) + advantage - advantage.mean(dim=1, keepdim=True)
    else:
        expected = network.head(features)
    torch.testing.assert_close(network(obs), expected)
    assert {key.split(".")[0] for key in network.state_dict()} == (
        {"trunk", "value", "advantage"} if dueling else {"trunk", "head"}
    )


def test_numpy_greedy_refuses_the_cnn():
    cnn_q = QNetwork(2 * 36 * 36, 3, [16], network="cnn", obs_shape=(2, 36, 36))
    with pytest.raises(ValueError, match="MLP Q-networks only"):
        NumpyGreedyPolicy(cnn_q)


def linear_shapes(module):
    return [(layer.in_features, layer.out_features) for layer in module.modules() if isinstance(layer, nn.Linear)]


@pytest.mark.parametrize("hidden_sizes,torso", [([64, 32], [(6, 64)]), ([16], []), ([64, 48, 32], [(6, 64), (64, 48)])])
def test_dueling_mlp_streams_each_have_their_own_hidden_layer(hidden_sizes, torso):
    # Wang et al. 2016: a shared torso, then value and advantage streams with a fully connected layer each.
    network = QNetwork(6, 5, hidden_sizes, dueling=True)
    shared_width, last = (torso[-1][1] if torso else 6), hidden_sizes[-1]
    assert linear_shapes(network.trunk) == torso
    assert linear_shapes(network.value) == [(shared_width, last), (last, 1)]
    assert linear_shapes(network.advantage) == [(shared_width, last), (last, 5)]
    plain = QNetwork(6, 5, hidden_sizes)
    assert linear_shapes(plain.trunk) == list(zip([6, *hidden_sizes[:-1]], hidden_sizes))  # the plain head keeps all


def test_dueling_cnn_streams_each_have_their_own_512_unit_layer():
    network = QNetwork(4 * 84 * 84, 6, [128], dueling=True, network="cnn", obs_shape=(4, 84, 84))
    assert linear_shapes(network.trunk) == []  # the shared torso is the conv layers
    assert linear_shapes(network.value) == [(7 * 7 * 64, 512), (512, 1)]
    assert linear_shapes(network.advantage) == [(7 * 7 * 64, 512), (512, 6)]


@pytest.mark.parametrize("network,obs_shape", [("mlp", (6,)), ("cnn", (2, 36, 36))])
def test_dueling_q_is_value_plus_advantage_minus_its_mean(network, obs_shape):
    torch.manual_seed(0)
    net = QNetwork(int(np.prod(obs_shape)), 4, [32, 16], dueling=True, network=network, obs_shape=obs_shape)
    obs = torch.rand(7, *obs_shape) * (255 if network == "cnn" else 1)
    features = net.trunk(obs)
    value, advantage = net.value(features), net.advantage(features)  # streams as plain module calls
    torch.testing.assert_close(net(obs), value + advantage - advantage.mean(dim=1, keepdim=True))
    assert value.shape == (7, 1) and advantage.shape == (7, 4)


def two_copies_of_actor_critic_networks():
    torch.manual_seed(0)
    separate = ActorCriticNetworks(3, 2, [16, 8], gaussian=True)
    flat_net = ActorCriticNetworks(3, 2, [16, 8], gaussian=True)
    flat_net.load_state_dict(separate.state_dict())
    return separate, flat_net, FlatParameters(list(flat_net.parameters()))


def actor_critic_loss(networks, obs):
    policy_part = networks.policy_output(obs).pow(2).sum() + networks.log_std.sum()
    return policy_part + 3.0 * networks.state_value(obs).pow(2).sum()


def test_flat_parameters_keep_the_values_and_backward_fills_the_one_gradient_buffer():
    separate, flat_net, flat = two_copies_of_actor_critic_networks()
    for a, b in zip(separate.parameters(), flat_net.parameters()):
        assert torch.equal(a, b)
    obs = torch.randn(5, 3)
    for _ in range(2):  # a second backward after zero_grad must not add to the first
        flat.zero_grad()
        actor_critic_loss(flat_net, obs).backward()
    actor_critic_loss(separate, obs).backward()
    offset = 0
    for a, b in zip(separate.parameters(), flat_net.parameters()):
        assert b.grad is not None and b.grad.data_ptr() == flat.flat.grad[offset:].data_ptr()  # still the buffer
        assert b.data_ptr() == flat.flat[offset:].data_ptr()
        torch.testing.assert_close(a.grad, b.grad)
        offset += b.numel()
    assert offset == flat.flat.numel()


def test_flat_gradient_clipping_and_adam_equal_torch_s_over_the_separate_parameters():
    separate, flat_net, flat = two_copies_of_actor_critic_networks()
    per_param = torch.optim.Adam(separate.parameters(), lr=1e-2)
    one_tensor = torch.optim.Adam([flat.flat], lr=1e-2)
    for _ in range(3):
        obs = torch.randn(5, 3) * 10  # large enough that the norm is above 0.5 and clipping acts
        per_param.zero_grad()
        actor_critic_loss(separate, obs).backward()
        norm = nn.utils.clip_grad_norm_(list(separate.parameters()), 0.5)
        per_param.step()
        flat.zero_grad()
        actor_critic_loss(flat_net, obs).backward()
        flat_norm = flat.clip_grad_norm_(0.5)
        one_tensor.step()
        assert norm > 0.5
        torch.testing.assert_close(flat_norm, norm)
        for a, b in zip(separate.parameters(), flat_net.parameters()):
            torch.testing.assert_close(a, b)


def test_an_optimizer_state_saved_per_parameter_continues_over_the_flat_buffer():
    separate, flat_net, flat = two_copies_of_actor_critic_networks()
    per_param = torch.optim.Adam(separate.parameters(), lr=1e-2)
    obs = torch.randn(5, 3)
    actor_critic_loss(separate, obs).backward()
    per_param.step()  # a checkpoint from before the flat buffer: moments for each parameter
    flat_net.load_state_dict(separate.state_dict())
    one_tensor = torch.optim.Adam([flat.flat], lr=1e-2)
    one_tensor.load_state_dict(flat.flat_optimizer_state(per_param.state_dict()))
    assert one_tensor.state[flat.flat]["exp_avg"].shape == flat.flat.shape
    per_param.zero_grad()
    actor_critic_loss(separate, obs).backward()
    per_param.step()
    flat.zero_grad()
    actor_critic_loss(flat_net, obs).backward()
    one_tensor.step()
    for a, b in zip(separate.parameters(), flat_net.parameters()):
        torch.testing.assert_close(a, b)
    # a state already over the flat buffer passes through unchanged
    assert flat.flat_optimizer_state(one_tensor.state_dict())["param_groups"][0]["params"] == [0]
