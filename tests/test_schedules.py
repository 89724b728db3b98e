import math

import pytest

from rlrun.schedules import (
    ConstantSchedule,
    ExponentialSchedule,
    LinearSchedule,
    MultiplicativeSchedule,
    build_schedule,
)
from tests.conftest import compose_cfg


@pytest.mark.parametrize("step", [0, 1, 250, 999, 1000, 5000])
def test_linear_matches_closed_form(step):
    schedule = LinearSchedule(start=1.0, end=0.1, duration=1000)
    expected = 1.0 - 0.9 * min(step, 1000) / 1000
    assert schedule(step) == pytest.approx(expected)


@pytest.mark.parametrize("step", [0, 10, 500, 2000, 100_000])
def test_exponential_matches_closed_form(step):
    schedule = ExponentialSchedule(start=0.9, end=0.05, decay=500.0)
    assert schedule(step) == pytest.approx(0.05 + 0.85 * math.exp(-step / 500.0))


def test_multiplicative_decays_per_episode_and_floors():
    schedule = MultiplicativeSchedule(start=1.0, end=0.01, factor=0.995)
    assert schedule(step=12345, episode=0) == 1.0  # steps alone do not decay it
    assert schedule(0, 100) == pytest.approx(0.995**100)
    assert schedule(0, 10_000) == 0.01


def test_constant():
    assert ConstantSchedule(0.2)(10**9, 10**6) == 0.2


@pytest.mark.parametrize(
    "name,kind",
    [
        ("linear", LinearSchedule),
        ("exponential", ExponentialSchedule),
        ("multiplicative", MultiplicativeSchedule),
        ("constant", ConstantSchedule),
    ],
)
def test_config_group_builds_its_schedule(name, kind):
    schedule = build_schedule(compose_cfg(f"schedule={name}").schedule)
    assert isinstance(schedule, kind)
    assert 0.0 <= schedule(0, 0) <= 1.0


def test_exponential_override_from_command_line():
    schedule = build_schedule(compose_cfg("schedule=exponential", "schedule.decay=2000").schedule)
    assert schedule(2000) == pytest.approx(0.05 + 0.95 * math.exp(-1))
