"""``mode=export``: a checkpoint's greedy policy as a TorchScript module and/or an ONNX graph, plus a JSON sidecar.

The policy module comes from the agent itself (``greedy_policy()``, see rlrun/policies.py), so everything it does at
inference is in the graph, and a user's loop is ``obs -> policy(obs) -> env.step(action)`` with Gymnasium and torch
(or onnxruntime) alone. The sidecar says what the graph expects and which env produces it.

TorchScript is written by ``torch.jit.trace`` (the policy's branches depend on its configuration only, so a trace
records all of it). ONNX by ``torch.onnx.export(dynamo=True)``, the supported exporter since torch 2.9, which needs
``onnx`` and ``onnxscript`` (the ``export`` extra); the older TorchScript-based exporter is deprecated.
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import math
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Sequence, cast

import gymnasium as gym
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

import rlrun
from rlrun.agents import build_agent, exportable_families
from rlrun.checkpoints import check_spaces, load_checkpoint, space_signature
from rlrun.config import eval_epsilon
from rlrun.envs import make_env
from rlrun.errors import ConfigError, RlrunError

EXPORT_EXTRA_HINT = 'pip install "rlrun[export]"'
SIDECAR_VERSION = 1
# Observations the written files are checked on against the policy module, drawn from the observation space.
CHECK_BATCH = 8


def require_export_extra(export_format: str) -> None:
    """Import what the ONNX export and its check need, or say which extra to install."""
    missing = []
    for module in ("onnx", "onnxscript", "onnxruntime"):
        try:
            __import__(module)
        except ImportError:
            missing.append(module)
    if missing:
        raise ConfigError(
            f"export.format={export_format} writes an ONNX graph, which needs the export extra, but "
            f"{', '.join(missing[:-1])}{' and ' if len(missing) > 1 else ''}{missing[-1]} "
            f"{'is' if len(missing) == 1 else 'are'} not installed. Install it with "
            f'{EXPORT_EXTRA_HINT} (or pip install -e ".[export]" in a checkout): it brings onnx and onnxscript '
            f"(torch.onnx's exporter) and onnxruntime (to run the graph). export.format=torchscript needs nothing "
            f"beyond torch."
        )


def output_names(policy: torch.nn.Module) -> list[str]:
    """The names of a policy module's outputs, which every policy class in rlrun/policies.py declares."""
    return list(cast(Sequence[str], policy.output_names))


def export_paths(checkpoint: Path) -> dict[str, Path]:
    """Where the files go: beside the checkpoint, named after it (best.pt -> best.torchscript.pt, best.onnx, ...)."""
    stem = checkpoint.parent / checkpoint.stem
    return {
        "torchscript": Path(f"{stem}.torchscript.pt"),
        "onnx": Path(f"{stem}.onnx"),
        "sidecar": Path(f"{stem}.policy.json"),
    }


# The keys mode=export reads from its command line; everything else comes from the checkpoint.
EXPORT_KEYS = ("mode", "checkpoint", "export")


def export_policy(cfg: DictConfig, cli_override_keys: list[str]) -> dict[str, Any]:
    """Rebuild the checkpoint's agent on the CPU from its saved config, then write the chosen formats and the sidecar.

    Only ``checkpoint`` and ``export.format`` are read from this command's config: the policy is the one trained,
    on the env it was trained on, so other keys given on the command line are refused rather than ignored.
    """
    refused = [key for key in cli_override_keys if key.split(".")[0] not in EXPORT_KEYS]
    if refused:
        raise ConfigError(
            f"mode=export takes checkpoint=PATH and export.format only, but {', '.join(refused)} "
            f"{'was' if len(refused) == 1 else 'were'} given too: the exported policy is the checkpoint's, with the "
            f"env, agent and architecture it was trained with, and it is exported on the CPU. Drop "
            f"{'it' if len(refused) == 1 else 'them'}, or train a new run to change them."
        )
    export_format = cfg.export.format
    if export_format in ("onnx", "both"):
        require_export_extra(export_format)
    checkpoint = Path(cfg.checkpoint)
    payload = load_checkpoint(checkpoint)
    run_cfg = OmegaConf.create(payload["config"])
    env = make_env(run_cfg.env)
    try:
        agent = build_agent(run_cfg, env.observation_space, env.action_space, torch.device("cpu"))
        check_spaces(
            checkpoint, payload["spaces"], space_signature(env.observation_space, env.action_space), run_cfg.env.id
        )
        agent.load_state_dict(payload["agent"])
        make_policy = getattr(agent, "greedy_policy", None)
        if make_policy is None:
            raise ConfigError(
                f"checkpoint={str(checkpoint)!r} holds agent={run_cfg.agent.name}, which has no policy to export: "
                f"random actions and hand-written (heuristic) rules are neither a network nor a table, so there is "
                f"no graph to write. Export the checkpoint of an agent of family {', '.join(exportable_families())}; "
                f"the fixed policies need no file (mode=evaluate agent={run_cfg.agent.name} plays them)."
            )
        policy = make_policy().eval()
        observations = example_observations(env.observation_space, policy.input_dtype, run_cfg.seed)
        sidecar = describe(policy, observations, env, run_cfg, checkpoint, payload)
    finally:
        env.close()

    paths = export_paths(checkpoint)
    written = {}
    if export_format in ("torchscript", "both"):
        written["torchscript"] = write_torchscript(policy, observations, paths["torchscript"])
    if export_format in ("onnx", "both"):
        written["onnx"] = write_onnx(policy, observations, paths["onnx"])
    sidecar["files"] = {name: path.name for name, path in written.items()}
    paths["sidecar"].write_text(json.dumps(sidecar, indent=2, allow_nan=False) + "\n")
    written["sidecar"] = paths["sidecar"]
    lines = [f"wrote {path}" for path in written.values()]
    lines += [
        f"left {path} as it was: it is from an earlier export, and {paths['sidecar'].name} no longer lists it"
        for name, path in paths.items()
        if name not in written and path.exists()
    ]
    print("\n".join(lines))
    return {"checkpoint": str(checkpoint), "files": {name: str(path) for name, path in written.items()}}


def example_observations(space: gym.Space, dtype: torch.dtype, seed: int) -> torch.Tensor:
    """A batch drawn from the observation space: the tracing input, and the check of the written files.

    More than one row, so the ONNX exporter keeps the batch axis dynamic instead of specialising it to 1.
    """
    space = copy.deepcopy(space)  # seeding the env's own space would shift what it samples later
    space.seed(seed)
    return torch.as_tensor(np.stack([np.asarray(space.sample()) for _ in range(CHECK_BATCH)])).to(dtype)


# ----------------------------------------------------------------------------- writing and checking
# Loggers of the ONNX exporter that talk at INFO/WARNING about its own passes (and about torchvision operators it
# cannot register, which no rlrun policy uses): nothing a user can act on, so they are held back to errors.
ONNX_EXPORTER_LOGGERS = ("torch.onnx", "onnx_ir", "onnxscript")


@contextmanager
def _quiet_exporters() -> Iterator[None]:
    """Errors still show; torch's notes on its own deprecated or changing internals do not."""
    loggers = [logging.getLogger(name) for name in ONNX_EXPORTER_LOGGERS]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def write_torchscript(policy: torch.nn.Module, observations: torch.Tensor, path: Path) -> Path:
    with torch.no_grad(), _quiet_exporters():  # torch 2.13 marks torch.jit deprecated (README, Export)
        torch.jit.trace(policy, (observations,)).save(str(path))
        loaded = torch.jit.load(str(path))
    check_same_outputs(policy, observations, loaded, "TorchScript", path)
    return path


def write_onnx(policy: torch.nn.Module, observations: torch.Tensor, path: Path) -> Path:
    """One self-contained .onnx file (weights inside), input ``obs`` with a dynamic ``batch`` axis."""
    import onnxruntime

    with torch.no_grad(), _quiet_exporters():
        torch.onnx.export(
            policy,
            (observations,),
            str(path),
            dynamo=True,
            input_names=["obs"],
            output_names=output_names(policy),
            dynamic_shapes=({0: torch.export.Dim("batch")},),
            external_data=False,
            verbose=False,
        )
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])

    def run_onnx(obs: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(torch.as_tensor(out) for out in session.run(None, {"obs": obs.numpy()}))

    check_same_outputs(policy, observations, run_onnx, "ONNX", path)
    return path


def check_same_outputs(policy: torch.nn.Module, observations: torch.Tensor, exported, kind: str, path: Path) -> None:
    """The written file must give the policy module's actions (exactly) and scores (to float32 rounding)."""
    with torch.no_grad():
        expected = policy(observations)
        got = exported(observations)
    same = len(got) == len(expected) and all(
        a.shape == b.shape
        and (
            torch.equal(a, b)
            if i == 0 and not a.is_floating_point()
            else torch.allclose(a.to(b.dtype), b, rtol=1e-4, atol=1e-5)
        )
        for i, (a, b) in enumerate(zip(got, expected))
    )
    if not same:
        raise RlrunError(
            f"the {kind} file {path} does not reproduce the policy it was exported from on {len(observations)} "
            f"observations drawn from the observation space (outputs {output_names(policy)}). This is a bug in "
            f"rlrun's export or in torch's exporter; the file is left for inspection, do not deploy it."
        )


# ----------------------------------------------------------------------------- the sidecar
def describe(
    policy: torch.nn.Module,
    observations: torch.Tensor,
    env: gym.Env,
    run_cfg: DictConfig,
    checkpoint: Path,
    payload: dict[str, Any],
) -> dict[str, Any]:
    """The JSON sidecar: what the graph takes and gives, the env it was trained on, and where it came from."""
    with torch.no_grad():
        outputs = policy(observations)
    return {
        "sidecar_version": SIDECAR_VERSION,
        "rlrun_version": rlrun.__version__,
        "source_checkpoint": {
            "path": str(checkpoint.resolve()),
            "sha256": sha256_of(checkpoint),
            **{key: payload.get("progress", {}).get(key) for key in ("step", "episode")},
        },
        "agent": OmegaConf.to_container(run_cfg.agent, resolve=True),
        "env": {"id": run_cfg.env.id, "gymnasium_spec": gymnasium_spec(env)},
        "observation_space": space_description(env.observation_space),
        "action_space": space_description(env.action_space),
        "inputs": [tensor_description("obs", observations)],
        "outputs": [tensor_description(name, out) for name, out in zip(output_names(policy), outputs)],
        "preprocessing": preprocessing(policy, env, run_cfg),
        "usage": {
            "torchscript": "policy = torch.jit.load(path); action, *scores = policy(torch.as_tensor(obs)[None]); "
            "env.step(action.numpy()[0])",
            "onnx": "session = onnxruntime.InferenceSession(path); action, *scores = session.run(None, {'obs': "
            "np.asarray(obs, dtype=<inputs[0].dtype>)[None]}); env.step(action[0])",
            "note": "a batch of observations in, one action per row out; the graph does all the computing the agent "
            "did (see preprocessing)",
        },
    }


def sha256_of(path: Path) -> str:
    """In 1 MiB chunks: a last.pt with its replay buffer can be gigabytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def gymnasium_spec(env: gym.Env) -> dict[str, Any] | None:
    """``env.spec`` as Gymnasium writes it, wrappers included: ``gym.make(EnvSpec.from_json(...))`` rebuilds the env."""
    try:
        return json.loads(env.spec.to_json())  # type: ignore[union-attr]  # no spec: the AttributeError below
    except (gym.error.Error, TypeError, ValueError, AttributeError):  # kwargs that are not plain values
        return None


def _bounds(values: np.ndarray) -> Any:
    """One number when all are equal (Atari's 0 and 255), else nested lists; infinities as "inf" / "-inf"."""
    flat = np.unique(values)
    plain = values.flat[0] if len(flat) == 1 else values
    return np.vectorize(lambda v: v if math.isfinite(v) else ("inf" if v > 0 else "-inf"), otypes=[object])(
        np.asarray(plain, dtype=np.float64)
    ).tolist()


def space_description(space: gym.Space) -> dict[str, Any]:
    if isinstance(space, gym.spaces.Discrete):
        return {"type": "Discrete", "n": int(space.n), "start": int(space.start)}
    if isinstance(space, gym.spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": str(space.dtype),
            "low": _bounds(space.low),
            "high": _bounds(space.high),
        }
    return {"type": type(space).__name__, "repr": str(space)}


def tensor_description(name: str, tensor: torch.Tensor) -> dict[str, Any]:
    return {"name": name, "shape": ["batch", *tensor.shape[1:]], "dtype": str(tensor.dtype).removeprefix("torch.")}


def preprocessing(policy: torch.nn.Module, env: gym.Env, run_cfg: DictConfig) -> dict[str, Any]:
    """What happens between the env and the graph, and what the graph does itself."""
    env_cfg = run_cfg.env
    atari = None
    if env_cfg.get("preprocessing") == "atari":
        atari = {
            "wrappers": "gymnasium.wrappers.AtariPreprocessing, then FrameStackObservation (both in "
            "env.gymnasium_spec: gym.make(EnvSpec.from_json(...)) applies them); the emulator runs "
            "with frameskip=1, frame skipping is AtariPreprocessing's",
            "noop_max": env_cfg.noop_max,
            "frame_skip": env_cfg.frame_skip,
            "screen_size": env_cfg.screen_size,
            "grayscale": True,
            "terminal_on_life_loss": False,
            "frame_stack": env_cfg.frame_stack,
            "frame_stack_padding": "reset",
            "repeat_action_probability": env_cfg.repeat_action_probability,
        }
    pixels = policy.input_dtype == torch.uint8
    clipping = None
    if isinstance(env.action_space, gym.spaces.Box):
        clipping = {
            "low": _bounds(env.action_space.low),
            "high": _bounds(env.action_space.high),
            "in_graph": True,
            "note": "the action output is min(max(mean, low), high); mean is unclipped",
        }
    return {
        "observation": (
            "uint8 pixels 0..255 as the env gives them; the graph scales them to [0, 1] (x / 255)"
            if pixels
            else f"the env's observations as they are, as {str(policy.input_dtype).removeprefix('torch.')}"
        ),
        "atari": atari,
        "observation_normalization": policy.observation_normalization,
        "action_clipping": clipping,
        "eval_epsilon": eval_epsilon(run_cfg),
        "eval_epsilon_note": "rlrun's evaluation took a random action with this probability (eval.epsilon); the "
        "exported policy is purely greedy",
    }
