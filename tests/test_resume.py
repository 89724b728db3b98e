"""Nothing lost: exact resume, signals, SIGKILL at random moments, divergence, a full disk."""

import errno
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from rlrun.checkpoints import load_checkpoint
from rlrun.cli import run
from rlrun.errors import ConfigError, TrainingDiverged
from rlrun.loop import Trainer, train
from tests.conftest import TINY_RUN, compose_cfg, interrupt_at, poison_td_loss, run_cli


def scalars(run_dir: Path, tag: str) -> list[tuple[int, float]]:
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    return [(e.step, e.value) for e in events.Scalars(tag)]


@pytest.mark.parametrize("agent", ["agent=dqn", "agent=per_dqn", "agent=per_dqn buffer.n_step=3 env.num_envs=2"])
def test_stopped_and_resumed_run_equals_the_uninterrupted_run(tmp_path, agent):
    cfg = compose_cfg(*TINY_RUN, *agent.split(), "env.max_episode_steps=60", "seed=5", "total_steps=1200")
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train(cfg, whole)

    interrupted = Trainer(cfg, parts)
    interrupt_at(interrupted, 600)  # as if Ctrl-C arrived during step 600
    assert interrupted.run() == {"interrupted_by": signal.SIGINT, "steps": 600}
    result = run(compose_cfg(f"resume={parts}"), tmp_path / "hydra-dir", [f"resume={parts}"])
    assert result["steps"] == 1200
    for tag in ("charts/episodic_return", "eval/mean_return", "losses/td_loss"):
        assert scalars(parts, tag) == scalars(whole, tag), tag  # same values, no gap, no duplicated steps
    a = load_checkpoint(whole / "checkpoints" / "last.pt")["agent"]
    b = load_checkpoint(parts / "checkpoints" / "last.pt")["agent"]
    for key in a["online"]:
        assert torch.equal(a["online"][key], b["online"][key])


def test_resume_refuses_changes_to_what_is_learned(tmp_path):
    train(compose_cfg(*TINY_RUN), tmp_path)
    for override in ("agent.lr=0.1", "agent=double_dqn", "env=acrobot", "seed=3"):
        key = override.split("=")[0]
        with pytest.raises(ConfigError, match=f"cannot change {key}"):
            run(compose_cfg(f"resume={tmp_path}", override), tmp_path / "x", [f"resume={tmp_path}", override])


def test_resume_of_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(ConfigError, match="is not an rlrun run folder"):
        run(compose_cfg(f"resume={tmp_path}"), tmp_path / "x", [f"resume={tmp_path}"])


def test_nan_loss_stops_with_the_step_and_last_good_checkpoint(tmp_path, monkeypatch):
    trainer = Trainer(compose_cfg(*TINY_RUN, "total_steps=900", "save_every=200"), tmp_path)
    poison_td_loss(monkeypatch, lambda: trainer.step > 450)
    # looked for on the steps that log (log_every=50): the first look after the loss went non-finite, at 500
    with pytest.raises(
        TrainingDiverged,
        match=r"diverged at env step 500: a TD loss between env steps 450 and 500 "
        r"was not finite.*last good checkpoint is .*last\.pt",
    ):
        trainer.run()
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["progress"]["step"] == 400


def test_nan_policy_skip_drops_bad_batches_and_goes_on(tmp_path, monkeypatch):
    trainer = Trainer(compose_cfg(*TINY_RUN, "train.nan_policy=skip"), tmp_path)
    poison_td_loss(monkeypatch, lambda: trainer.step % 8 == 0)
    assert trainer.run()["steps"] == 600
    assert trainer.agent.skipped_batches > 0
    assert all(torch.isfinite(p).all() for p in trainer.agent.online.parameters())


def start_training(run_dir: Path, *extra: str) -> subprocess.Popen:
    args = [*TINY_RUN, "total_steps=200000", "save_every=200", "eval.every=100000", f"hydra.run.dir={run_dir}", *extra]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, "-m", "rlrun", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert time.time() < deadline, f"{path} never appeared"
        time.sleep(0.1)


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_checkpoints_and_exits_with_the_shell_code(tmp_path, sig, code):
    process = start_training(tmp_path)
    wait_for(tmp_path / "checkpoints" / "last.pt")
    process.send_signal(sig)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == code, stderr
    assert f"Continue with: rlrun resume={tmp_path}" in stdout + stderr
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert checkpoint["progress"]["step"] > 0 and "run_state" in checkpoint


def test_sigkill_at_random_moments_leaves_a_loadable_checkpoint_and_resume_finishes(tmp_path):
    rng = random.Random(0)
    checkpoint = tmp_path / "checkpoints" / "last.pt"
    steps_seen = []
    for attempt in range(3):
        process = (
            start_training(tmp_path)
            if attempt == 0
            else subprocess.Popen(
                [sys.executable, "-m", "rlrun", f"resume={tmp_path}", "total_steps=200000"],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
        wait_for(checkpoint)
        time.sleep(rng.uniform(0.5, 3.0))
        process.kill()
        process.communicate()
        steps_seen.append(load_checkpoint(checkpoint)["progress"]["step"])  # loads: never half-written
    final_steps = steps_seen[-1] + 400
    result = run_cli(f"resume={tmp_path}", f"total_steps={final_steps}")
    assert result.returncode == 0, result.stderr
    assert load_checkpoint(checkpoint)["progress"]["step"] == final_steps
    assert steps_seen == sorted(steps_seen) and steps_seen[-1] > 0


@pytest.mark.parametrize("sig,code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_a_long_evaluation_checkpoints_and_exits(tmp_path, sig, code):
    # At env step 1 a greedy episode starts on CliffWalking-v1 (no time limit) that would last 10^9 steps.
    args = [
        "agent=tabular_q",
        "env=gym",
        "env.id=CliffWalking-v1",
        "total_steps=1000",
        "eval.every=1",
        "eval.episodes=1",
        "eval.max_episode_steps=1000000000",
        "device=cpu",
        f"hydra.run.dir={tmp_path}",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "rlrun", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    deadline = time.time() + 60
    while not list(tmp_path.glob("events.out.tfevents*")):  # the logger exists: training has started
        assert time.time() < deadline and process.poll() is None, "training never started"
        time.sleep(0.1)
    time.sleep(2.0)  # well into the evaluation
    process.send_signal(sig)
    try:
        stdout, stderr = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        pytest.fail(f"{sig.name} did not stop an evaluation in progress")
    assert process.returncode == code, stderr
    assert f"Continue with: rlrun resume={tmp_path}" in stdout + stderr
    checkpoint = load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert checkpoint["progress"]["step"] == 1 and "run_state" in checkpoint


def stop_at_400_of_800_then_resume_to_600_and_1200(tmp_path, *overrides: str) -> None:
    """A run of 800 env steps stopped at 400, then resumed shortened (600) and extended past its end (1200)."""
    cfg = compose_cfg(*TINY_RUN, *overrides, "total_steps=800", "log_every=100", "seed=1")
    interrupted = Trainer(cfg, tmp_path)
    interrupt_at(interrupted, 400)
    assert interrupted.run()["steps"] == 400
    for total in (600, 1200):
        args = [f"resume={tmp_path}", f"total_steps={total}"]
        assert run(compose_cfg(*args), tmp_path / "hydra-dir", args)["steps"] == total


def test_per_beta_keeps_its_schedule_when_a_resume_changes_total_steps(tmp_path):
    # beta anneals over the total_steps the run started with (800), whatever later resumes ask for.
    stop_at_400_of_800_then_resume_to_600_and_1200(tmp_path, "agent=per_dqn")
    betas = scalars(tmp_path, "train/beta")
    assert [step for step, _ in betas] == list(range(100, 1300, 100))
    for step, beta in betas:
        assert beta == pytest.approx(min(1.0, 0.4 + 0.6 * step / 800), abs=1e-6), step


def test_learning_rate_keeps_its_anneal_when_a_resume_changes_total_steps(tmp_path):
    # agent.lr_end: the learning rate anneals over the total_steps the run started with (800), like PER's beta.
    stop_at_400_of_800_then_resume_to_600_and_1200(tmp_path, "~tuned", "agent.lr=1e-3", "agent.lr_end=1e-4")
    rates = scalars(tmp_path, "train/lr")
    assert [step for step, _ in rates] == list(range(100, 1300, 100))
    for step, rate in rates:
        assert rate == pytest.approx(1e-3 + (1e-4 - 1e-3) * min(1.0, step / 800), rel=1e-6), step


def assert_same_state(a, b, where="agent"):
    """Nested checkpoint states equal: tensors exactly, dicts key by key, anything else with ==."""
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for key in a:
            assert_same_state(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same_state(x, y, f"{where}[{i}]")
    else:
        assert a == b, where


@pytest.mark.parametrize(
    "overrides",
    [
        ["agent=random"],
        ["agent=reinforce", "agent.episodes_per_update=2"],
        ["agent=tabular_q", "env=gym", "env.id=FrozenLake-v1", "+env.kwargs.is_slippery=true"],
        # rollouts of 2 x 64 steps: the stop at 600 falls in the fifth one
        ["agent=ppo", "~tuned", "agent.n_steps=64", "agent.batch_size=32", "agent.n_epochs=2"],
        [
            "agent=ppo",
            "env=pendulum",
            "env.max_episode_steps=50",
            "agent.n_steps=64",
            "agent.batch_size=32",
            "agent.n_epochs=2",
            "agent.normalize_obs=true",
            "agent.normalize_reward=true",
        ],
        ["agent=a2c", "~tuned"],
    ],
    ids=["random", "reinforce", "tabular_q", "ppo", "ppo_box_normalized", "a2c"],
)
def test_every_agent_family_resumes_exactly(tmp_path, overrides):
    cfg = compose_cfg(
        *overrides,
        "env.num_envs=2",
        "total_steps=1200",
        "eval.every=300",
        "eval.episodes=2",
        "save_every=300",
        "log_every=50",
        "device=cpu",
        "seed=5",
    )
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train(cfg, whole)

    interrupted = Trainer(cfg, parts)
    act = interrupted.agent.act

    def act_then_stop_at_598(obs, step, episode):  # as if Ctrl-C arrived mid-run, between two checkpoints
        if step >= 598:
            interrupted.stop_signal = signal.SIGINT
        return act(obs, step, episode)

    interrupted.agent.act = act_then_stop_at_598
    assert interrupted.run() == {"interrupted_by": signal.SIGINT, "steps": 600}
    result = run(compose_cfg(f"resume={parts}"), tmp_path / "hydra-dir", [f"resume={parts}"])
    assert result["steps"] == 1200
    for tag in ("charts/episodic_return", "charts/episodic_length", "eval/mean_return"):
        assert scalars(parts, tag) == scalars(whole, tag), tag
    assert len(scalars(whole, "charts/episodic_return")) > 10
    assert_same_state(
        load_checkpoint(whole / "checkpoints" / "last.pt")["agent"],
        load_checkpoint(parts / "checkpoints" / "last.pt")["agent"],
    )


def test_a_full_disk_under_the_event_files_stops_with_the_checkpoint_and_the_way_to_continue(tmp_path, monkeypatch):
    # TensorBoard's writer thread reports a failed write at the next call; here add_scalar raises it, past step 450.
    from torch.utils.tensorboard import SummaryWriter

    from rlrun.errors import OutputWriteError

    trainer = Trainer(compose_cfg(*TINY_RUN, "total_steps=900", "save_every=200", "eval.every=100000"), tmp_path)
    real_add_scalar = SummaryWriter.add_scalar

    def add_scalar(writer, tag, value, step=None, *args, **kwargs):
        if step is not None and step > 450:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_add_scalar(writer, tag, value, step, *args, **kwargs)

    monkeypatch.setattr(SummaryWriter, "add_scalar", add_scalar)
    with pytest.raises(OutputWriteError) as raised:
        trainer.run()
    message = str(raised.value)
    assert f"could not write the TensorBoard event file in {tmp_path}: No space left on device" in message
    assert "GB free" in message and f"continue with: rlrun resume={tmp_path}" in message
    assert "(env step 400), is left in place" in message
    assert load_checkpoint(tmp_path / "checkpoints" / "last.pt")["progress"]["step"] == 400


def test_a_full_disk_before_any_checkpoint_says_to_start_again(tmp_path, monkeypatch):
    from rlrun.errors import OutputWriteError

    def no_space(obj, f):
        f.write(b"x" * 100)
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(
        OutputWriteError,
        match=r"could not write the checkpoint .*last\.pt: No space left on device "
        r"\(ENOSPC\).*before any checkpoint was written.*start the run again",
    ):
        train(compose_cfg(*TINY_RUN, "total_steps=300", "save_every=200", "eval.every=100000"), tmp_path)
    assert list((tmp_path / "checkpoints").iterdir()) == []  # no temporary file left behind
