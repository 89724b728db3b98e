"""Frame-stack observations stored one frame at a time: replay memory that fits Atari.

A transition of 4 stacked 84 x 84 frames holds 8 frames (obs and next_obs), but only one of them is
new: ``next_obs`` is ``obs`` shifted by one frame, and the next transition's ``obs`` is this one's
``next_obs``. Storing stacks as they come would cost 8 x 7 KB per transition (56 GB for a million);
:class:`FrameStackStore` keeps each distinct frame once, in a pool, and every stack as ``k`` indices
into it, so a transition costs about one frame (7,056 bytes at 84 x 84) plus 32 bytes of indices.

Frames are found again by content: each new frame's CRC-32 is looked up among the recently stored
frames and reused only if the pixels are equal. So a sampled stack is exactly the stack the env gave,
whatever order transitions are added in (one sub-env or many, one-step or n-step transitions), and
a stack never holds frames of another episode unless the env's own stack did. With Gymnasium's
``FrameStackObservation`` (``padding_type="reset"``, as rlrun's Atari presets use) the first stacks of
an episode repeat its first frame; those repeats are one frame in the pool.

Pool frames are reference-counted: overwriting a transition releases its frames, and a new frame takes
a free pool slot. The pool has ``capacity * (1 + slack)`` frames; should it fill (only with episodes a
few dozen steps long, each starting on a frame seen nowhere recently) it grows, with a warning.
"""

from __future__ import annotations

import logging
import zlib
from collections import deque

import numpy as np
import torch

log = logging.getLogger(__name__)


class FrameStackStore:
    """Observation storage for a replay buffer whose observations are stacks of frames ``(k, H, W)``.

    Implements the buffer's observation-storage seam (see ``rlrun.buffers.replay.ObservationArrays``):
    ``write(slots, obs, next_obs)``, ``gather(indices, obs_out, next_obs_out)``, ``state_dict(size)``,
    ``load_state_dict(state, size)`` and ``nbytes``.
    """

    def __init__(
        self, capacity: int, stack_shape: tuple[int, ...], dtype: np.dtype, slack: float = 0.04, recent: int = 8192
    ):
        self.capacity = capacity
        self.stack_size, *frame_shape = stack_shape
        self.frame_shape = tuple(frame_shape)
        pool_size = capacity + int(capacity * slack) + 16 * self.stack_size
        self.frames = np.zeros((pool_size, *self.frame_shape), dtype=dtype)
        self.refcount = np.zeros(pool_size, dtype=np.int32)  # stacks (slot, obs or next_obs) using each frame
        self.keys = np.zeros(pool_size, dtype=np.uint32)  # CRC-32 of each pool frame
        # a stack is k pool indices, oldest frame first; -1: the slot holds nothing yet
        self.obs_refs = np.full((capacity, self.stack_size), -1, dtype=np.int32)
        self.next_refs = np.full((capacity, self.stack_size), -1, dtype=np.int32)
        self.cursor = 0  # where the search for a free pool slot starts
        self.used = 0  # pool slots written at least once (what a checkpoint saves)
        # CRC-32 -> pool index of recently stored frames, bounded: a frame's duplicates arrive within a few steps
        self.index: dict[int, int] = {}
        self.recent: deque[int] = deque()
        self.recent_limit = recent
        self._previous_next_refs: dict[int, np.ndarray] = {}  # row -> next_obs refs of the last write() call

    # ------------------------------------------------------------------ the seam
    def write(self, slots: np.ndarray, obs: np.ndarray, next_obs: np.ndarray) -> None:
        """Store the stacks of transitions written to ``slots`` (releasing what those slots held)."""
        previous = self._previous_next_refs
        self._previous_next_refs = {}
        for row, slot in enumerate(slots):
            self._release(self.obs_refs[slot])
            self._release(self.next_refs[slot])
            obs_refs, next_refs = self.obs_refs[slot], self.next_refs[slot]
            # Fast paths, both checked on the pixels: this obs is the last call's next_obs of the same row
            # (one sub-env per row, one-step transitions), and next_obs is obs shifted by one new frame.
            candidate = previous.get(row)
            if candidate is not None and np.array_equal(self.frames[candidate], obs[row]):
                self._reuse(candidate, obs_refs)
            else:
                self._store_frames(obs[row], obs_refs, 0)
            if np.array_equal(next_obs[row][:-1], obs[row][1:]):
                self._reuse(obs_refs[1:], next_refs[:-1])
                self._store_frames(next_obs[row], next_refs, self.stack_size - 1)
            else:
                self._store_frames(next_obs[row], next_refs, 0)
            self._previous_next_refs[row] = next_refs.copy()

    def gather(self, indices: np.ndarray, obs_out: np.ndarray, next_obs_out: np.ndarray) -> None:
        """Rebuild the stacks of ``indices`` into preallocated ``(batch, k, H, W)`` arrays, one gather each."""
        flat_shape = (len(indices) * self.stack_size, *self.frame_shape)
        np.take(self.frames, self.obs_refs[indices].reshape(-1), axis=0, out=obs_out.reshape(flat_shape))
        np.take(self.frames, self.next_refs[indices].reshape(-1), axis=0, out=next_obs_out.reshape(flat_shape))

    @property
    def nbytes(self) -> int:
        return sum(a.nbytes for a in (self.frames, self.refcount, self.keys, self.obs_refs, self.next_refs))

    def state_dict(self, size: int) -> dict:
        """The pool's written part and the stacks of the first ``size`` slots (the filled ones), as views of the
        arrays, not copies (see ``ReplayBuffer.state_dict``). The uint32 CRC keys travel as int32 bit patterns,
        torch's nearest dtype."""
        used = self.used
        return {
            "frames": torch.from_numpy(self.frames[:used]),
            "frame_refcount": torch.from_numpy(self.refcount[:used]),
            "frame_keys": torch.from_numpy(self.keys[:used].view(np.int32)),
            "obs_refs": torch.from_numpy(self.obs_refs[:size]),
            "next_obs_refs": torch.from_numpy(self.next_refs[:size]),
            "frame_cursor": self.cursor,
        }

    def load_state_dict(self, state: dict, size: int) -> None:
        used = len(state["frames"])
        while used > len(self.frames):  # the saved run's pool had grown
            self._grow()
        self.frames[:used] = state["frames"].numpy()
        self.refcount[:used] = state["frame_refcount"].numpy()
        self.keys[:used] = state["frame_keys"].numpy().astype(np.uint32)  # int32 bits, or int64 from older checkpoints
        self.obs_refs[:size] = state["obs_refs"].numpy()
        self.next_refs[:size] = state["next_obs_refs"].numpy()
        self.used, self.cursor = used, state["frame_cursor"]
        self.index.clear()
        self.recent.clear()
        self._previous_next_refs = {}

    # ------------------------------------------------------------------ frames
    def _release(self, refs: np.ndarray) -> None:
        if refs[0] >= 0:
            np.subtract.at(self.refcount, refs, 1)  # .at: a stack may use one frame several times

    def _reuse(self, refs: np.ndarray, refs_out: np.ndarray) -> None:
        for j, position in enumerate(refs):
            self.refcount[position] += 1
            refs_out[j] = position

    def _store_frames(self, stack: np.ndarray, refs_out: np.ndarray, first: int) -> None:
        """Frames ``first..k-1`` of ``stack``: found among the recent frames by content, else written to the pool."""
        for j in range(first, self.stack_size):
            frame = stack[j]
            key = zlib.crc32(np.ascontiguousarray(frame))  # type: ignore[arg-type]  # an array is a buffer
            position = self.index.get(key)
            if position is None or self.keys[position] != key or not np.array_equal(self.frames[position], frame):
                position = self._allocate()
                self.frames[position] = frame
                self.keys[position] = key
                self.index[key] = position
                self.recent.append(position)
                if len(self.recent) > self.recent_limit:
                    old = self.recent.popleft()
                    if self.index.get(int(self.keys[old])) == old:
                        del self.index[int(self.keys[old])]
            self.refcount[position] += 1
            refs_out[j] = position

    def _allocate(self) -> int:
        """A pool slot no stored stack uses, searching on from the cursor (frames die in about the order written)."""
        if self.refcount[self.cursor] != 0:
            free = np.flatnonzero(self.refcount[self.cursor :] == 0)
            if len(free):
                self.cursor += int(free[0])
            else:
                free = np.flatnonzero(self.refcount[: self.cursor] == 0)
                self.cursor = int(free[0]) if len(free) else self._grow()
        position = self.cursor
        old_key = int(self.keys[position])
        if self.index.get(old_key) == position:  # the frame about to be overwritten can no longer be found
            del self.index[old_key]
        self.cursor = (position + 1) % len(self.frames)
        self.used = max(self.used, position + 1)
        return position

    def _grow(self) -> int:
        """Enlarge the pool by a quarter; returns the first new slot."""
        old = len(self.frames)
        new = old + max(old // 4, 16 * self.stack_size)
        log.warning(
            "replay frame pool full (%d frames, for %d transitions): growing it to %d frames. Episodes "
            "are unusually short for the pool's slack.",
            old,
            self.capacity,
            new,
        )
        frames = np.zeros((new, *self.frame_shape), dtype=self.frames.dtype)
        frames[:old] = self.frames
        self.frames = frames
        self.refcount = np.concatenate([self.refcount, np.zeros(new - old, dtype=np.int32)])
        self.keys = np.concatenate([self.keys, np.zeros(new - old, dtype=np.uint32)])
        return old
