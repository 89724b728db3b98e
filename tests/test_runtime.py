"""The run's random streams: one per consumer, all from the seed, none shared; old checkpoints keep theirs."""

import numpy as np

from rlrun.checkpoints import load_checkpoint
from rlrun.loop import Trainer
from rlrun.runtime import RANDOM_STREAMS, random_streams
from tests.conftest import TINY_RUN, compose_cfg, interrupt_at


def first_draws(generator: np.random.Generator) -> tuple[float, ...]:
    return tuple(generator.random(3))


def test_every_consumer_gets_its_own_stream_from_the_seed():
    streams = random_streams(7)
    assert list(streams) == list(RANDOM_STREAMS)
    draws = {name: first_draws(np.random.default_rng(stream)) for name, stream in streams.items()}
    assert len(set(draws.values())) == len(draws)  # pairwise different
    assert first_draws(np.random.default_rng(7)) not in draws.values()  # and none is the plain seed's
    assert draws == {name: first_draws(np.random.default_rng(s)) for name, s in random_streams(7).items()}
    assert draws["replay"] != first_draws(np.random.default_rng(random_streams(8)["replay"]))


def test_dqn_exploration_replay_and_the_action_space_draw_different_numbers(tmp_path):
    trainer = Trainer(compose_cfg(*TINY_RUN, "seed=3"), tmp_path)
    agent = trainer.agent
    draws = [first_draws(agent.rng), first_draws(agent.buffer.rng), first_draws(trainer.envs.action_space.np_random)]
    assert len(set(draws)) == 3, draws
    trainer.close()


def test_the_random_agents_training_and_evaluation_actions_use_different_streams(tmp_path):
    trainer = Trainer(compose_cfg("agent=random", "device=cpu", "seed=3"), tmp_path)
    agent = trainer.agent
    draws = [
        first_draws(agent.action_space.np_random),
        first_draws(agent.eval_action_space.np_random),
        first_draws(trainer.envs.action_space.np_random),
    ]
    assert len(set(draws)) == 3, draws
    trainer.close()


def test_a_checkpoint_from_before_the_split_resumes_with_its_own_streams(tmp_path):
    # Before, exploration, replay sampling and the action space were all default_rng(seed): such a last.pt holds
    # those generators' states, and a resume continues them (it does not switch to the new streams mid-run).
    cfg = compose_cfg(*TINY_RUN, "total_steps=400", "seed=5")
    old = Trainer(cfg, tmp_path)
    old.agent.rng, old.agent.buffer.rng = np.random.default_rng(5), np.random.default_rng(5)
    old.envs.action_space.seed(5)
    interrupt_at(old, 200)
    assert old.run()["steps"] == 200
    payload = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    resumed = Trainer(cfg, tmp_path, resume_from=payload)
    fresh_state = resumed.agent.rng.bit_generator.state  # the new exploration stream, before the restore
    resumed.restore(payload)
    assert resumed.agent.rng.bit_generator.state != fresh_state
    assert resumed.agent.rng.bit_generator.state == old.agent.rng.bit_generator.state
    assert resumed.agent.buffer.rng.bit_generator.state == old.agent.buffer.rng.bit_generator.state
    resumed.close()
