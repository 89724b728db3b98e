"""Uniform experience replay on preallocated NumPy arrays.

Storage is one array per field of shape ``(capacity, ...)`` in the env's own dtype, filled as a ring.
A sampled batch is gathered into preallocated NumPy arrays that share memory with torch tensors made
once at construction, so sampling allocates nothing and converts NumPy -> torch once per batch (only
the copy to an accelerator remains, when there is one).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from rlrun.buffers.n_step import NStepWindow

if TYPE_CHECKING:
    from rlrun.buffers.frames import FrameStackStore


class Batch(NamedTuple):
    """A batch of transitions as tensors on the learner's device.

    ``weights`` are importance-sampling weights (all ones for uniform replay) and ``indices`` the
    buffer slots, for buffers that update priorities after the learning step.
    """

    obs: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor
    weights: torch.Tensor
    indices: np.ndarray
    discounts: torch.Tensor  # gamma^k for the k rewards summed into ``rewards`` (gamma for 1-step)


class ObservationArrays:
    """The default observation storage: ``obs`` and ``next_obs`` each in a ``(capacity, *obs_shape)`` array.

    This is the seam through which observation storage plugs into :class:`ReplayBuffer`: the buffer
    calls ``write(slots, obs, next_obs)`` in ``add()``, ``gather(indices, obs_out, next_obs_out)`` in
    ``sample()`` (into its preallocated batch arrays), ``state_dict(size)`` / ``load_state_dict(state,
    size)`` for checkpoints (keys merged into the buffer's own), and reads ``nbytes``. Stacked Atari
    frames use ``rlrun.buffers.frames.FrameStackStore`` instead, which keeps each frame once.
    """

    def __init__(self, capacity: int, obs_shape: tuple[int, ...], obs_dtype: np.dtype):
        self.obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)
        self.next_obs = np.zeros((capacity, *obs_shape), dtype=obs_dtype)

    def write(self, slots: np.ndarray, obs: np.ndarray, next_obs: np.ndarray) -> None:
        self.obs[slots] = obs
        self.next_obs[slots] = next_obs

    def gather(self, indices: np.ndarray, obs_out: np.ndarray, next_obs_out: np.ndarray) -> None:
        np.take(self.obs, indices, axis=0, out=obs_out)
        np.take(self.next_obs, indices, axis=0, out=next_obs_out)

    @property
    def nbytes(self) -> int:
        return self.obs.nbytes + self.next_obs.nbytes

    def state_dict(self, size: int) -> dict:
        """Views of the filled part, no copies (see ``ReplayBuffer.state_dict``)."""
        return {"obs": torch.from_numpy(self.obs[:size]), "next_obs": torch.from_numpy(self.next_obs[:size])}

    def load_state_dict(self, state: dict, size: int) -> None:
        self.obs[:size] = state["obs"].numpy()
        self.next_obs[:size] = state["next_obs"].numpy()


class ReplayBuffer:
    """Fixed-capacity ring of transitions, sampled uniformly.

    Only termination is stored: a truncated episode (time limit) still bootstraps from its next
    observation, because the state itself was not terminal.

    ``observe()`` takes env steps; with ``n_step > 1`` they go through an :class:`NStepWindow` and
    ``rewards`` holds discounted n-step returns, ``discounts`` the ``gamma^k`` to bootstrap with.
    ``add()`` stores finished transitions directly.
    """

    def __init__(
        self,
        capacity: int,
        obs_shape: tuple[int, ...],
        obs_dtype: np.dtype,
        batch_size: int,
        device: torch.device,
        seed: int | np.random.SeedSequence,
        observations: ObservationArrays | FrameStackStore | None = None,
        *,
        gamma: float = 0.99,
        n_step: int = 1,
        num_envs: int = 1,
    ):
        self.capacity = capacity
        self.batch_size = batch_size
        self.device = device
        self.rng = np.random.default_rng(seed)
        # where obs and next_obs live: two plain arrays, or e.g. a FrameStackStore (rlrun/buffers/frames.py)
        self.observations = observations or ObservationArrays(capacity, obs_shape, obs_dtype)
        self.actions = np.zeros(capacity, dtype=np.int64)
        self.rewards = np.zeros(capacity, dtype=np.float32)
        self.terminated = np.zeros(capacity, dtype=np.float32)
        self.discounts = np.zeros(capacity, dtype=np.float32)
        self.gamma = gamma
        self.n_step = n_step
        self.window = NStepWindow(n_step, gamma, num_envs, obs_shape, obs_dtype) if n_step > 1 else None
        self.position = 0  # next slot to write
        self.size = 0

        # Batch arrays are NumPy views of tensors allocated once; on CUDA in pinned memory, so each sampled
        # batch crosses to the GPU in one asynchronous copy per field (non_blocking) instead of a staged one.
        batch_shapes = {
            "obs": (obs_shape, obs_dtype),
            "next_obs": (obs_shape, obs_dtype),
            **{name: (array.shape[1:], array.dtype) for name, array in self._fields().items()},
        }
        pin = device.type == "cuda"
        self._batch_tensors = {
            name: torch.from_numpy(np.zeros((batch_size, *shape), dtype=dtype)).pin_memory()
            if pin
            else torch.from_numpy(np.zeros((batch_size, *shape), dtype=dtype))
            for name, (shape, dtype) in batch_shapes.items()
        }
        self._batch_arrays = {name: tensor.numpy() for name, tensor in self._batch_tensors.items()}
        # CUDA event after the last batch's copies: pinned memory is reused only once done
        self._copied: torch.cuda.Event | None = None
        self._ones = torch.ones(batch_size, dtype=torch.float32, device=device)

    def _fields(self) -> dict[str, np.ndarray]:
        """The per-transition arrays besides the observations (those are ``self.observations``'s)."""
        return {
            "actions": self.actions,
            "rewards": self.rewards,
            "terminated": self.terminated,
            "discounts": self.discounts,
        }

    def __len__(self) -> int:
        return self.size

    def observe(self, obs, actions, rewards, next_obs, terminated, truncated) -> np.ndarray:
        """Take one env step of every sub-env; store the transitions it completes and return their slots."""
        if self.window is None:
            return self.add(obs, actions, rewards, next_obs, terminated)
        completed = self.window.push(obs, actions, rewards, next_obs, terminated, truncated)
        if completed is None:
            return np.zeros(0, dtype=np.int64)
        return self.add(*completed)

    def add(self, obs, actions, rewards, next_obs, terminated, discounts=None) -> np.ndarray:
        """Store a batch of finished transitions; returns the slots written.

        ``discounts`` (gamma^k per transition) defaults to ``gamma``: one-step transitions.
        """
        n = len(actions)
        slots = (self.position + np.arange(n)) % self.capacity
        self.observations.write(slots, obs, next_obs)
        self.actions[slots] = actions
        self.rewards[slots] = rewards
        self.terminated[slots] = terminated
        self.discounts[slots] = self.gamma if discounts is None else discounts
        self.position = (self.position + n) % self.capacity
        self.size = min(self.size + n, self.capacity)
        return slots

    def sample_indices(self, step: int) -> tuple[np.ndarray, torch.Tensor]:
        """Slots to replay and their importance weights. Prioritized replay overrides this."""
        return self.rng.integers(0, self.size, size=self.batch_size), self._ones

    def sample(self, step: int) -> Batch:
        """A batch of ``batch_size`` transitions; the tensors are reused by the next call."""
        indices, weights = self.sample_indices(step)
        if self._copied is not None:
            self._copied.synchronize()  # that copy (and what was queued before it), not the learning step on it
        self.observations.gather(indices, self._batch_arrays["obs"], self._batch_arrays["next_obs"])
        for name, array in self._fields().items():
            np.take(array, indices, axis=0, out=self._batch_arrays[name])
        t = {name: tensor.to(self.device, non_blocking=True) for name, tensor in self._batch_tensors.items()}
        if self.device.type == "cuda":
            self._copied = torch.cuda.Event()
            self._copied.record()
        return Batch(
            t["obs"], t["actions"], t["rewards"], t["next_obs"], t["terminated"], weights, indices, t["discounts"]
        )

    def episodes_restarted(self) -> None:
        """The envs start fresh episodes mid-window (a resume that could not continue them): drop the
        unfinished n-step windows rather than join their first steps to another episode's rewards."""
        if self.window is not None:
            self.window.drop_pending()

    def update_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """Uniform replay has no priorities; prioritized replay overrides this."""

    def metrics(self) -> dict[str, float]:
        return {}

    @property
    def nbytes(self) -> int:
        """Memory the stored transitions take (observations and every per-transition array)."""
        return self.observations.nbytes + sum(array.nbytes for array in self._fields().values())

    def state_dict(self) -> dict:
        """The stored transitions (filled part only) as tensors, the ring position, the sampling RNG and
        the n-step windows in progress.

        The tensors are views of the buffer's arrays, not copies: ``torch.save`` writes a view's bytes straight
        from the array's memory, so a checkpoint of a 7 GB buffer does not need another 7 GB. Save the state
        before the buffer changes again (the training loop saves at once).
        """
        state = {
            **{name: torch.from_numpy(array[: self.size]) for name, array in self._fields().items()},
            **self.observations.state_dict(self.size),
            "position": self.position,
            "size": self.size,
            "rng": self.rng.bit_generator.state,
        }
        if self.window is not None:
            state["n_step_window"] = self.window.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.size, self.position = state["size"], state["position"]
        for name, array in self._fields().items():
            if name in state:
                array[: self.size] = state[name].numpy()
            elif name == "discounts":  # a checkpoint from before n-step returns: all one-step
                array[: self.size] = self.gamma
        self.observations.load_state_dict(state, self.size)
        self.rng.bit_generator.state = state["rng"]
        if self.window is not None:
            self.window.load_state_dict(state["n_step_window"])
