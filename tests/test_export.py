"""mode=export: every family's greedy policy, loaded by a process that cannot import rlrun, acts as the agent does.

Each family trains a tiny checkpoint, exports it in both formats, and a subprocess with ``rlrun`` blocked loads the
files with ``torch.jit.load`` and onnxruntime. Its actions must equal ``act_greedy``'s, one observation at a time as
``mode=evaluate`` calls it, on observations of greedy episodes; its scores (Q-values, logits, mean and std) must
equal the agent's networks' to float32 rounding. Bad input to the mode is one paragraph each.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from rlrun.agents import build_agent
from rlrun.checkpoints import load_checkpoint
from rlrun.cli import run
from rlrun.config import eval_step_cap
from rlrun.envs import make_eval_env
from rlrun.evaluation import run_greedy_episodes
from tests.conftest import compose_cfg, run_cli

# the page that shows how to load an exported policy (it moved from README.md with the docs site)
EXPORT_PAGE = Path(__file__).resolve().parents[1] / "docs" / "evaluation.md"
HAVE_EXPORT_EXTRA = all(importlib.util.find_spec(name) for name in ("onnx", "onnxscript", "onnxruntime"))
HAVE_ATARI_EXTRA = all(importlib.util.find_spec(name) for name in ("ale_py", "cv2"))


def require(available: bool, extra: str) -> None:
    """Skip without the extra on a developer's machine; in CI (CI=true, where make test installs it) fail instead."""
    if available:
        return
    message = f'needs the {extra} extra: pip install -e ".[{extra}]" (make test installs it)'
    if os.environ.get("CI"):
        pytest.fail(f"{message}; CI must run these tests, not skip them")
    pytest.skip(message)


TINY = ["eval.episodes=2", "save_every=300", "log_every=100", "device=cpu", "seed=1"]
# the tuned CartPole file with a constant learning rate: its anneal to 1e-5 would leave a 600-step run's greedy
# actions nearly untrained (all alike), and the test needs observations whose actions differ
DQN_TINY = [
    "total_steps=600",
    "eval.every=300",
    "agent.learning_starts=100",
    "agent.batch_size=32",
    "agent.lr_end=null",
]
# running observation statistics from 512 env steps, applied in act_greedy: the graph must hold them
PPO_TINY = [
    "~tuned",
    "agent.normalize_obs=true",
    "agent.n_steps=128",
    "agent.batch_size=64",
    "agent.n_epochs=2",
    "env.num_envs=2",
    "total_steps=512",
    "eval.every=256",
]
# family -> the training overrides of its tiny checkpoint
FAMILIES = {
    "dqn_mlp": ["agent=dqn", *DQN_TINY],
    "dqn_dueling": ["agent=dueling_dqn", *DQN_TINY],
    "dqn_atari_cnn": [
        "env=breakout",
        "agent=dqn",
        "buffer.capacity=500",
        "agent.learning_starts=100",
        "agent.batch_size=8",
        "agent.train_freq=16",
        "total_steps=300",
        "eval.every=300",
        "eval.episodes=1",
        "env.max_episode_steps=150",
    ],
    # long enough that the greedy policy uses both actions (the comparison below needs more than one)
    "reinforce_softmax": [
        "agent=reinforce",
        "agent.episodes_per_update=2",
        "agent.temperature=2.0",
        "total_steps=2000",
        "eval.every=1000",
    ],
    "reinforce_gaussian": [
        "agent=reinforce",
        "env=gym",
        "env.id=Pendulum-v1",
        "agent.episodes_per_update=1",
        "total_steps=600",
        "eval.every=300",
    ],
    "tabular_q": ["agent=tabular_q", "env=taxi", "total_steps=3000", "eval.every=1500"],
    "ppo_normalized": ["agent=ppo", *PPO_TINY],
    "ppo_gaussian": ["agent=ppo", "env=pendulum", *PPO_TINY],
}
OBSERVATIONS = 48  # per family with array observations, from greedy episodes of the trained agent


def train(name: str, base: Path) -> Path:
    run_dir = base / name
    overrides = [*FAMILIES[name], *TINY]
    run(compose_cfg(*overrides), run_dir, overrides)
    return run_dir / "checkpoints" / "best.pt"


# Gaussian family -> (its mean layer's weight and bias in the checkpoint's agent state, the factor they are scaled by)
MEAN_LAYERS = {
    "reinforce_gaussian": (("policy", "mean.1"), 50.0),
    # PPO's policy head starts at gain 0.01: its means are ~100x smaller than REINFORCE's
    "ppo_gaussian": (("networks", "policy.1"), 2000.0),
}


def widen_gaussian_means(checkpoint: Path, name: str) -> Path:
    """The same checkpoint with the mean layer scaled up, so that many greedy actions are clipped to [-2, 2]."""
    payload = load_checkpoint(checkpoint)
    (state, layer), factor = MEAN_LAYERS[name]
    for key in (f"{layer}.weight", f"{layer}.bias"):
        payload["agent"][state][key] = payload["agent"][state][key] * factor
    wide = checkpoint.with_name("wide.pt")
    torch.save(payload, wide)
    return wide


def agent_as_evaluate_builds_it(checkpoint: Path):
    """The agent and env of ``mode=evaluate checkpoint=...`` (its saved config, greedy, on the CPU)."""
    payload = load_checkpoint(checkpoint)
    cfg = OmegaConf.create(payload["config"])
    env = make_eval_env(cfg.env, eval_step_cap(cfg))
    agent = build_agent(cfg, env.observation_space, env.action_space, torch.device("cpu"))
    agent.load_state_dict(payload["agent"])
    return agent, env, cfg


def observations_to_compare(agent, env, count: int, seed: int) -> np.ndarray:
    """Every state of a Discrete observation space (a table has nothing else); else ``count`` observations of
    greedy episodes, from ``seed`` on."""
    if hasattr(env.observation_space, "n"):
        return np.arange(env.observation_space.n, dtype=np.int64)
    observations = []
    obs, _ = env.reset(seed=seed)
    while len(observations) < count:
        observations.append(np.asarray(obs))
        obs, _, terminated, truncated, _ = env.step(agent.act_greedy(np.asarray(obs)[None])[0])
        if terminated or truncated:
            seed += 1
            obs, _ = env.reset(seed=seed)
    return np.stack(observations)


@torch.no_grad()
def agent_scores(agent, obs: np.ndarray) -> list[np.ndarray]:
    """What the exported graph's outputs after the action must equal, from the agent's own networks and table."""
    algo = type(agent).__name__
    if algo == "DQNAgent":
        dtype = torch.uint8 if obs.dtype == np.uint8 else torch.float32
        return [agent.online(torch.as_tensor(obs, dtype=dtype)).numpy()]
    if algo == "TabularQAgent":
        return [agent.q_table[obs]]
    if algo == "ActorCriticAgent":  # policy_input: the normalised observations act_greedy feeds the policy MLP
        out = agent.networks.policy(torch.as_tensor(agent.policy_input(obs)))
        if agent.discrete:
            return [out.numpy()]
        mean = out.numpy().reshape(len(obs), *agent.action_shape)
        return [mean, np.broadcast_to(agent.networks.log_std.exp().numpy(), mean.shape)]
    out = agent.policy(agent.observations(obs))
    if agent.discrete:
        return [(out / agent.cfg.temperature).numpy()]
    mean = out.numpy().reshape(len(obs), *agent.action_shape)
    return [mean, np.broadcast_to(agent.policy.log_std.exp().numpy(), mean.shape)]


# Runs in a process where `import rlrun` fails: the exported files must stand alone.
LOADER = """
import json, sys
sys.modules["rlrun"] = None
import numpy as np, onnxruntime, torch
for job in json.loads(sys.argv[1]):
    obs = np.load(job["obs"])
    policy = torch.jit.load(job["torchscript"])
    session = onnxruntime.InferenceSession(job["onnx"], providers=["CPUExecutionProvider"])
    with torch.no_grad():
        torchscript = [out.numpy() for out in policy(torch.as_tensor(obs))]
        torchscript_one = [out.numpy() for out in policy(torch.as_tensor(obs[:1]))]
    onnx = session.run(None, {"obs": obs})
    onnx_one = session.run(None, {"obs": obs[:1]})
    np.savez(job["out"], *torchscript, *torchscript_one, *onnx, *onnx_one)
assert not any(name == "rlrun" or name.startswith("rlrun.") for name in sys.modules if sys.modules[name])
"""


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Per family: its files, the agent's actions and scores on the observations, and what the subprocess got."""
    require(HAVE_EXPORT_EXTRA, "export")
    base = tmp_path_factory.mktemp("export")
    families = {}
    for name in FAMILIES:
        if name == "dqn_atari_cnn" and not HAVE_ATARI_EXTRA:
            continue  # its own test reports the skip (or, in CI, the failure)
        checkpoint = train(name, base)
        if name in MEAN_LAYERS:
            checkpoint = widen_gaussian_means(checkpoint, name)
        overrides = ["mode=export", f"checkpoint={checkpoint}", "export.format=both"]
        result = run(compose_cfg(*overrides), base / f"{name}_export", overrides)
        agent, env, _ = agent_as_evaluate_builds_it(checkpoint)
        obs = observations_to_compare(agent, env, OBSERVATIONS, seed=7)
        env.close()
        np.save(base / f"{name}_obs.npy", obs)
        families[name] = {
            "files": result["files"],
            "sidecar": json.loads(Path(result["files"]["sidecar"]).read_text()),
            "actions": np.concatenate([agent.act_greedy(row[None]) for row in obs]),  # as mode=evaluate calls it
            "scores": agent_scores(agent, obs),
            "obs": obs,
            "agent": agent,
            "job": {
                "obs": str(base / f"{name}_obs.npy"),
                "out": str(base / f"{name}_out.npz"),
                **{key: result["files"][key] for key in ("torchscript", "onnx")},
            },
        }
    loader = subprocess.run(
        [sys.executable, "-c", LOADER, json.dumps([f["job"] for f in families.values()])],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=base,
    )
    assert loader.returncode == 0, loader.stderr[-3000:]
    for family in families.values():
        outputs = list(np.load(family["job"]["out"]).values())
        n = len(outputs) // 4  # action + scores, for each of the four runs
        family["loaded"] = {
            "torchscript": outputs[:n],
            "torchscript, one row": outputs[n : 2 * n],
            "onnx": outputs[2 * n : 3 * n],
            "onnx, one row": outputs[3 * n :],
        }
    return families


@pytest.mark.parametrize("name", FAMILIES)
def test_exported_policy_acts_as_the_agent_without_rlrun(exported, name):
    if name == "dqn_atari_cnn":
        require(HAVE_ATARI_EXTRA, "atari")
    family = exported[name]
    for kind, (actions, *scores) in family["loaded"].items():
        rows = 1 if "one row" in kind else len(family["obs"])
        if actions.dtype.kind == "f":  # Box actions: float32 rounding of the mean, then the same clipping
            np.testing.assert_allclose(actions, family["actions"][:rows], rtol=1e-5, atol=1e-5, err_msg=kind)
        else:  # discrete actions: exactly the agent's
            np.testing.assert_array_equal(actions, family["actions"][:rows], err_msg=kind)
        assert len(scores) == len(family["scores"]), kind
        for got, expected in zip(scores, family["scores"]):
            assert got.dtype == expected.dtype, kind
            np.testing.assert_allclose(got, expected[:rows], rtol=1e-5, atol=1e-5, err_msg=kind)
    # the observations are not all alike: some actions differ, or the check above would prove little
    assert len(np.unique(family["actions"], axis=0)) > 1 or name == "dqn_atari_cnn"


@pytest.mark.parametrize("name", MEAN_LAYERS)
def test_gaussian_export_clips_to_the_box_and_says_so(exported, name):
    family = exported[name]
    actions, means = family["loaded"]["onnx"][0], family["loaded"]["onnx"][1]
    assert np.abs(means).max() > 2.0 and np.abs(actions).max() == pytest.approx(2.0)  # clipping was exercised
    sidecar = family["sidecar"]
    assert sidecar["preprocessing"]["action_clipping"]["low"] == -2.0
    assert [out["name"] for out in sidecar["outputs"]] == ["action", "mean", "std"]
    assert sidecar["action_space"] == {"type": "Box", "shape": [1], "dtype": "float32", "low": -2.0, "high": 2.0}


@pytest.mark.parametrize("name", ["ppo_normalized", "ppo_gaussian"])
@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_observation_statistics_are_in_the_graph_and_the_sidecar(exported, name):
    """The exported policy takes raw observations: the running statistics are constant buffers of the graph, the
    sidecar records them, and they matter (the policy MLP on raw observations acts otherwise)."""
    family = exported[name]
    stats = family["agent"].obs_normalizer.stats
    assert np.abs(np.log(stats.var)).max() > 1.0  # far from the initial (0, 1): normalising changes the input
    recorded = family["sidecar"]["preprocessing"]["observation_normalization"]
    assert (recorded["mean"], recorded["var"]) == (stats.mean.tolist(), stats.var.tolist())
    assert (recorded["epsilon"], recorded["clip"], recorded["in_graph"]) == (1e-8, 10.0, True)
    buffers = dict(torch.jit.load(family["files"]["torchscript"]).named_buffers())
    np.testing.assert_array_equal(buffers["obs_mean"].numpy(), stats.mean)
    np.testing.assert_array_equal(buffers["obs_var"].numpy(), stats.var)
    assert (float(buffers["obs_epsilon"]), float(buffers["obs_clip"])) == (1e-8, 10.0)
    agent, obs = family["agent"], family["obs"]
    with torch.no_grad():  # what a graph without the statistics would compute
        raw = agent.networks.policy(torch.as_tensor(obs, dtype=torch.float32)).numpy()
    if agent.discrete:
        assert (raw.argmax(axis=1) != family["actions"]).any()
    else:
        unnormalised = np.clip(raw, agent.action_low, agent.action_high)
        assert np.abs(unnormalised - family["actions"]).max() > 0.1


def test_atari_sidecar_names_the_frame_stack_and_uint8_input(exported):
    require(HAVE_ATARI_EXTRA, "atari")
    sidecar = exported["dqn_atari_cnn"]["sidecar"]
    assert sidecar["inputs"] == [{"name": "obs", "shape": ["batch", 4, 84, 84], "dtype": "uint8"}]
    atari = sidecar["preprocessing"]["atari"]
    assert (atari["frame_stack"], atari["screen_size"], atari["frame_skip"]) == (4, 84, 4)
    assert "/ 255" in sidecar["preprocessing"]["observation"]
    wrappers = [w["name"] for w in sidecar["env"]["gymnasium_spec"]["additional_wrappers"]]
    assert wrappers == ["AtariPreprocessing", "FrameStackObservation"]


def test_sidecar_says_where_the_policy_came_from(exported):
    sidecar = exported["tabular_q"]["sidecar"]
    source = Path(sidecar["source_checkpoint"]["path"])
    assert source.name == "best.pt" and source.is_file() and len(sidecar["source_checkpoint"]["sha256"]) == 64
    assert sidecar["rlrun_version"] and sidecar["env"]["id"] == "Taxi-v4"
    assert sidecar["inputs"][0]["dtype"] == "int64" and sidecar["outputs"][1]["dtype"] == "float64"
    assert sidecar["files"] == {"torchscript": "best.torchscript.pt", "onnx": "best.onnx"}
    assert sidecar["preprocessing"]["observation_normalization"] is None  # only actor-critic agents normalise


def readme_example() -> str:
    """The docs' Python block that loads an exported policy and plays an episode."""
    blocks = [b for b in re.findall(r"```python\n(.*?)```", EXPORT_PAGE.read_text(), re.S) if "torch.jit.load" in b]
    assert len(blocks) == 1, f"{EXPORT_PAGE.name} should show one example that loads an exported policy"
    return blocks[0]


@pytest.mark.parametrize("name", ["dqn_mlp", "tabular_q", "reinforce_gaussian", "ppo_normalized"])
def test_readme_example_plays_the_episode_evaluate_plays(exported, name, tmp_path):
    """The docs' ten lines, with gymnasium and torch alone, score what rlrun's greedy evaluation scores on that seed."""
    folder = Path(exported[name]["files"]["torchscript"]).parent
    stem = Path(exported[name]["files"]["torchscript"]).name.removesuffix(".torchscript.pt")
    code = readme_example()
    assert 'folder = "outputs/2026-11-21/10-00-00/checkpoints"' in code and "best." in code
    code = code.replace("outputs/2026-11-21/10-00-00/checkpoints", str(folder)).replace("best.", f"{stem}.")
    played = subprocess.run(
        [sys.executable, "-c", f"import sys\nsys.modules['rlrun'] = None\n{code}"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert played.returncode == 0, played.stderr[-3000:]
    checkpoint = folder / f"{stem}.pt"
    agent, env, _ = agent_as_evaluate_builds_it(checkpoint)
    expected = run_greedy_episodes(agent, env, [0])["returns"][0]  # the docs' example plays seed 0
    env.close()
    assert float(played.stdout.split()[-1]) == pytest.approx(expected, rel=1e-6)


# ----------------------------------------------------------------------------- bad input, one paragraph each
# A folder that shadows the export extra's packages: importing any of them fails, as if it were not installed.
HIDE_EXTRA = {
    f"{module}.py": "raise ImportError('hidden by tests/test_export.py')\n"
    for module in ("onnx", "onnxscript", "onnxruntime")
}
BAD_CASES = [
    ("no checkpoint", ["mode=export"], [r"mode=export needs checkpoint=PATH"]),
    ("missing checkpoint", ["mode=export", "checkpoint=/no/such/best.pt"], [r"/no/such/best\.pt", r"does not exist"]),
    (
        "unknown format",
        ["mode=export", "checkpoint={ckpt}", "export.format=tflite"],
        [r"export\.format='tflite'", r"torchscript, onnx, both"],
    ),
    ("random agent", ["mode=export", "checkpoint={random_ckpt}"], [r"agent=random", r"no policy to export"]),
    ("heuristic agent", ["mode=export", "checkpoint={heuristic_ckpt}"], [r"agent=heuristic", r"no policy to export"]),
    (
        "another env on the command line",
        ["mode=export", "checkpoint={ckpt}", "env=acrobot"],
        [r"mode=export takes checkpoint=PATH and export\.format only, but env was given"],
    ),
    (
        "missing export extra",
        ["mode=export", "checkpoint={ckpt}", "export.format=onnx"],
        [r"export\.format=onnx", r"onnx, onnxscript and onnxruntime are not installed", r"rlrun\[export\]"],
    ),
]


@pytest.fixture(scope="module")
def bad_results(tmp_path_factory):
    base = tmp_path_factory.mktemp("export_bad")
    checkpoints = {}
    for agent in ("dqn", "random", "heuristic"):
        overrides = (
            [f"agent={agent}", *DQN_TINY, *TINY]
            if agent == "dqn"
            else [f"agent={agent}", "total_steps=300", "eval.every=300", *TINY]
        )
        run(compose_cfg(*overrides), base / agent, overrides)
        checkpoints[agent] = base / agent / "checkpoints" / "best.pt"
    hidden = base / "hidden_extra"
    hidden.mkdir()
    for filename, text in HIDE_EXTRA.items():
        (hidden / filename).write_text(text)
    fill = {
        "ckpt": checkpoints["dqn"],
        "random_ckpt": checkpoints["random"],
        "heuristic_ckpt": checkpoints["heuristic"],
    }

    def run_case(case):
        name, args, _ = case
        env = {"PYTHONPATH": str(hidden)} if name == "missing export extra" else {}
        return name, run_cli_with(env, *[a.format(**fill) for a in args], f"hydra.run.dir={base / 'runs'}")

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = dict(pool.map(run_case, BAD_CASES))
    # and without the extra, the default format still exports: TorchScript needs only torch
    results["torchscript without the extra"] = run_cli_with(
        {"PYTHONPATH": str(hidden)}, "mode=export", f"checkpoint={checkpoints['dqn']}", f"hydra.run.dir={base / 'runs'}"
    )
    return results, checkpoints


def run_cli_with(extra_env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    if not extra_env:
        return run_cli(*args)
    env = {**os.environ, **extra_env, "PYTHONUNBUFFERED": "1"}
    env.pop("HYDRA_FULL_ERROR", None)
    from tests.conftest import RLRUN

    return subprocess.run([RLRUN, *args], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize("name,args,patterns", BAD_CASES, ids=[case[0] for case in BAD_CASES])
def test_bad_export_input_is_one_paragraph(bad_results, name, args, patterns):
    result = bad_results[0][name]
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr
    message = result.stderr.strip()
    assert message.startswith("rlrun: error: ") and "\n\n" not in message and len(message) < 1500, message
    for pattern in patterns:
        assert re.search(pattern, message), (pattern, message)


def test_torchscript_export_needs_nothing_beyond_torch(bad_results):
    result, checkpoints = bad_results[0]["torchscript without the extra"], bad_results[1]
    assert result.returncode == 0, result.stderr[-2000:]
    folder = checkpoints["dqn"].parent
    assert (folder / "best.torchscript.pt").is_file() and (folder / "best.policy.json").is_file()
    assert not (folder / "best.onnx").exists()
