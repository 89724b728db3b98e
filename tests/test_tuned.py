"""The tuned group: conf/tuned/<env>_<agent>.yaml applies by itself, command-line overrides beat it."""

import importlib.resources

import pytest
from omegaconf import OmegaConf

from rlrun.config import agent_presets, tuned_settings_line, validate
from tests.conftest import compose_cfg

TUNED = sorted(
    entry for entry in (importlib.resources.files("rlrun.conf") / "tuned").iterdir() if entry.name.endswith(".yaml")
)
ENV_PRESETS = sorted(
    entry.name[:-5]
    for entry in (importlib.resources.files("rlrun.conf") / "env").iterdir()
    if entry.name.endswith(".yaml")
)


def pair_of(stem: str) -> tuple[str, str]:
    """Split ``<env>_<agent>`` at the env preset it starts with (agent names contain underscores)."""
    for env in ENV_PRESETS:
        if stem.startswith(env + "_") and stem[len(env) + 1 :] in agent_presets():
            return env, stem[len(env) + 1 :]
    raise AssertionError(f"conf/tuned/{stem}.yaml names no <env preset>_<agent preset> pair")


def test_there_are_tuned_files():
    assert any(entry.name == "cartpole_dqn.yaml" for entry in TUNED)


@pytest.mark.parametrize("entry", TUNED, ids=lambda entry: entry.name)
def test_each_tuned_file_applies_to_its_pair_and_names_itself(entry):
    stem = entry.name[:-5]
    assert entry.read_text().startswith("# @package _global_")
    env, agent = pair_of(stem)
    cfg = compose_cfg(f"env={env}", f"agent={agent}")
    assert cfg.tuned_settings == stem
    validate(cfg)
    # every key the file sets arrives in the composed config
    tuned = OmegaConf.to_container(OmegaConf.load(str(entry)))
    tuned.pop("defaults", None)  # another pair's file it starts from
    for key, value in tuned.items():
        node = OmegaConf.to_container(cfg[key]) if OmegaConf.is_config(cfg[key]) else cfg[key]
        if isinstance(value, dict):
            assert {k: node[k] for k in value} == value, key
        else:
            assert node == value, key


def test_command_line_beats_the_tuned_file():
    tuned = OmegaConf.load(str(importlib.resources.files("rlrun.conf") / "tuned" / "lunarlander_dqn.yaml"))
    assert compose_cfg("env=lunarlander").agent.lr == tuned.agent.lr
    cfg = compose_cfg("env=lunarlander", "agent.lr=0.0123", f"total_steps={tuned.total_steps + 1}")
    assert cfg.agent.lr == 0.0123 and cfg.total_steps == tuned.total_steps + 1
    assert cfg.tuned_settings == "lunarlander_dqn"  # the rest of the file still applies
    assert cfg.agent.batch_size == tuned.agent.batch_size


def test_a_pair_without_a_file_keeps_the_group_defaults():
    cfg = compose_cfg("env=gym", "env.id=Pendulum-v1", "agent=random")
    assert cfg.tuned_settings is None
    assert "none for env=gym agent=random" in tuned_settings_line(cfg)
    untuned = compose_cfg("~tuned")
    assert untuned.tuned_settings is None and untuned.total_steps == 50_000
    assert untuned.agent == compose_cfg("env=gym", "env.id=Acrobot-v1").agent
    assert "conf/tuned/cartpole_dqn.yaml" in tuned_settings_line(compose_cfg())


@pytest.mark.learning
def test_tuned_taxi_reaches_what_readme_says_for_seed_0(tmp_path):
    # README "Learning over seeds": seed 0 first reaches 7.5 over 20 greedy episodes at 30k steps, final 7.8.
    from rlrun.loop import train

    cfg = compose_cfg("env=taxi", "agent=tabular_q", "seed=0", "eval.episodes=20", "device=cpu")
    assert cfg.tuned_settings == "taxi_tabular_q"
    result = train(cfg, tmp_path)
    first = min(step for step, mean in result["eval_history"] if mean >= 7.5)
    assert first <= 30_000 and result["final_eval_return"] >= 7.5, result


def test_the_run_logs_which_tuned_file_applied(tmp_path, caplog):
    from rlrun.loop import train
    from tests.conftest import TINY_RUN

    caplog.set_level("INFO", logger="rlrun.loop")
    train(compose_cfg(*TINY_RUN, "total_steps=200", "eval.every=200"), tmp_path / "tuned")
    train(compose_cfg(*TINY_RUN, "total_steps=200", "eval.every=200", "~tuned"), tmp_path / "untuned")
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("tuned settings")]
    assert len(lines) == 2
    assert lines[0].startswith("tuned settings: conf/tuned/cartpole_dqn.yaml")
    assert lines[1].startswith("tuned settings: none for env=cartpole agent=dqn")


def test_breakout_file_has_cleanrls_atari_values_where_its_header_credits_cleanrl():
    # CleanRL's dqn_atari.py: what the header credits to it must be CleanRL's; what differs must be said.
    entry = importlib.resources.files("rlrun.conf") / "tuned" / "breakout_double_dqn.yaml"
    header = "\n".join(line for line in entry.read_text().splitlines() if line.startswith("#"))
    cfg = compose_cfg("env=breakout", "agent=double_dqn")
    cleanrl = {
        "total_steps": 10_000_000,
        "agent.lr": 1e-4,
        "agent.batch_size": 32,
        "agent.gamma": 0.99,
        "agent.learning_starts": 80_000,
        "agent.train_freq": 4,
        "agent.target_update": "hard",
        "agent.target_update_every": 1000,
        "buffer.capacity": 1_000_000,
        "schedule.start": 1.0,
        "schedule.end": 0.01,
        "schedule.duration": 1_000_000,
    }
    assert {key: OmegaConf.select(cfg, key) for key in cleanrl} == cleanrl
    assert "CleanRL's dqn_atari.py" in header
    assert (cfg.agent.loss, cfg.agent.max_grad_norm) == ("huber", 10.0)  # not CleanRL's, and the header says so
    assert "CleanRL uses MSE with no gradient clipping" in header
