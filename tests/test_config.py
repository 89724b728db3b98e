"""Every group option composes and validates; bad values are rejected with the key named."""

import pytest

from rlrun.config import validate
from rlrun.errors import ConfigError
from tests.conftest import compose_cfg

GROUP_OPTIONS = {
    "env": [
        "cartpole",
        "lunarlander",
        "acrobot",
        "mountaincar",
        "breakout",
        "pong",
        "pendulum",
        "lunarlander_continuous",
    ],
    "agent": [
        "dqn",
        "double_dqn",
        "dueling_dqn",
        "per_dqn",
        "random",
        "reinforce",
        "tabular_q",
        "heuristic",
        "ppo",
        "a2c",
    ],
    "buffer": ["uniform", "prioritized"],
    "schedule": ["linear", "exponential", "multiplicative", "constant"],
    "device": ["auto", "cpu", "cuda", "mps"],
}


@pytest.mark.parametrize("group,option", [(g, o) for g, options in GROUP_OPTIONS.items() for o in options])
def test_every_group_option_composes_and_validates(group, option):
    cfg = compose_cfg(f"{group}={option}")
    validate(cfg)
    if group == "device":
        assert cfg.device.type == option
    else:
        assert cfg[group].name == option


def test_per_dqn_picks_the_prioritized_buffer_but_the_command_line_wins():
    assert compose_cfg("agent=per_dqn").buffer.name == "prioritized"
    assert compose_cfg("agent=per_dqn", "buffer=uniform").buffer.name == "uniform"
    assert compose_cfg("agent=double_dqn", "buffer=prioritized", "buffer.alpha=0.7").buffer.alpha == 0.7


def test_gym_env_takes_any_id():
    cfg = compose_cfg("env=gym", "env.id=Pendulum-v1")
    assert cfg.env.id == "Pendulum-v1"


def test_env_kwargs_are_free_form():
    cfg = compose_cfg("env=lunarlander", "+env.kwargs.gravity=-5.0")
    assert cfg.env.kwargs.gravity == -5.0


@pytest.mark.parametrize(
    "override,key",
    [
        ("agent.lr=0", "agent.lr"),
        ("agent.lr_end=0", "agent.lr_end"),
        ("agent.lr_decay_steps=0", "agent.lr_decay_steps"),
        ("agent.lr=-1e-3", "agent.lr"),
        ("agent.gamma=1.5", "agent.gamma"),
        ("agent.batch_size=0", "agent.batch_size"),
        ("buffer.capacity=0", "buffer.capacity"),
        ("buffer.n_step=0", "buffer.n_step"),
        ("total_steps=0", "total_steps"),
        ("schedule.start=1.2", "schedule.start"),
        ("agent.target_update=sometimes", "agent.target_update"),
        ("agent.loss=l1", "agent.loss"),
        ("mode=play", "mode"),
        ("eval.episodes=0", "eval.episodes"),
        ("agent.hidden_sizes=[]", "agent.hidden_sizes"),
        ("buffer=prioritized buffer.alpha=1.5", "buffer.alpha"),
        ("buffer=prioritized buffer.beta_start=-0.1", "buffer.beta_start"),
    ],
)
def test_bad_values_name_their_key(override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        validate(compose_cfg(*override.split()))


def test_batch_larger_than_capacity_is_rejected():
    with pytest.raises(ConfigError, match=r"agent\.batch_size=128 is larger than buffer\.capacity=100"):
        validate(compose_cfg("agent.batch_size=128", "buffer.capacity=100"))
