"""A wide sum tree in one flat array, searched and updated by small compiled loops.

Each node holds the sum of its ``branching`` children. At batch size 64, NumPy's per-call overhead, not
arithmetic, set the cost of a vectorised descent (~200 us for a million leaves, twenty NumPy calls).
Walking the tree one value at a time in a loop compiled by numba takes a few microseconds instead: the
loop touches only the nodes on each path (README, Performance). Branching 16 keeps each step inside
two cache lines and a million leaves five levels deep.

numba is imported on the first tree built, so runs without prioritized replay never pay its import.
"""

from __future__ import annotations

import functools
import math

import numpy as np


@functools.cache
def _kernels():
    """The compiled descent and update, built on the first tree (numba caches the machine code on disk)."""
    import numba

    @numba.njit(cache=True, nogil=True)
    def find(nodes, offsets, branching, values, out):
        # Level by level over the whole batch, not path by path: the batch's reads at one level are
        # independent, so the CPU overlaps their cache misses (1.5-2x faster at a million leaves).
        depth = len(offsets) - 2
        remaining = values.copy()
        for b in range(len(values)):
            # top level: the first node whose running sum passes the value (or the last node)
            node, last, below = 0, offsets[1] - 1, 0.0
            while node < last and below + nodes[node] <= remaining[b]:
                below += nodes[node]
                node += 1
            remaining[b] -= below
            out[b] = node
        for d in range(1, depth + 1):
            for b in range(len(values)):
                first_child = offsets[d] + (out[b] - offsets[d - 1]) * branching
                choice, below = 0, 0.0
                while choice < branching - 1 and below + nodes[first_child + choice] <= remaining[b]:
                    below += nodes[first_child + choice]
                    choice += 1
                remaining[b] -= below
                out[b] = first_child + choice
        out -= offsets[depth]  # flat positions -> leaf indices

    @numba.njit(cache=True, nogil=True)
    def update(nodes, offsets, branching, indices, values):
        depth = len(offsets) - 2
        for i in range(len(indices)):
            nodes[offsets[depth] + indices[i]] = values[i]
        for i in range(len(indices)):
            node = indices[i]  # index within its level
            for d in range(depth, 0, -1):
                node //= branching
                first_child = offsets[d] + node * branching
                total = 0.0
                for child in range(first_child, first_child + branching):
                    total += nodes[child]
                nodes[offsets[d - 1] + node] = total

    # Compile now (or load numba's disk cache, ~0.3 s), while the run is being set up, not in its first step.
    tiny_nodes, tiny_offsets = np.zeros(3), np.array([0, 1, 3], dtype=np.int64)
    update(tiny_nodes, tiny_offsets, 2, np.array([1], dtype=np.int64), np.array([1.0]))
    find(tiny_nodes, tiny_offsets, 2, np.array([0.5]), np.empty(1, dtype=np.int64))
    return find, update


class SumTree:
    """Leaf values (e.g. priorities ** alpha) with every prefix sum reachable in a few steps."""

    def __init__(self, capacity: int, branching: int = 16, top_size: int = 16):
        self.capacity = capacity
        self.branching = branching
        # the fewest levels below a top level of at most top_size nodes
        self.depth = 0
        while math.ceil(capacity / branching**self.depth) > top_size:
            self.depth += 1
        top_nodes = math.ceil(capacity / branching**self.depth)
        sizes = [top_nodes * branching**d for d in range(self.depth + 1)]
        # offsets[d] is where level d starts in the flat array; levels[0] is the top, levels[depth] the
        # leaves (padded with zeros past capacity)
        self._offsets = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        self._nodes = np.zeros(self._offsets[-1], dtype=np.float64)
        self.levels = [self._nodes[start:end] for start, end in zip(self._offsets[:-1], self._offsets[1:])]
        self._find, self._update = _kernels()

    @property
    def leaves(self) -> np.ndarray:
        return self.levels[-1]

    @property
    def total(self) -> float:
        return float(self.levels[0].sum())

    def update(self, indices: np.ndarray, values: np.ndarray | float) -> None:
        """Set leaves and re-sum their ancestors from their children.

        Re-summing (rather than adding deltas) makes repeated indices in one batch harmless (the last
        value wins, as with NumPy assignment) and keeps rounding error from accumulating.
        """
        indices = np.ascontiguousarray(indices, dtype=np.int64).reshape(-1)
        values = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
        if len(values) != len(indices):
            if len(values) != 1:
                raise ValueError(
                    f"SumTree.update got {len(values)} values for {len(indices)} indices; pass one "
                    f"value per index, or a single value for all of them"
                )
            values = np.full(len(indices), values[0])  # np.broadcast_to would cost 6 us
        self._update(self._nodes, self._offsets, self.branching, indices, values)

    def find(self, values: np.ndarray) -> np.ndarray:
        """Leaf index for each value in ``[0, total)``: the leaf whose prefix-sum interval holds it.

        Rounding can carry a value at the very right edge into zero-valued padding past the last
        filled leaf; callers clamp the result to their filled size.
        """
        values = np.ascontiguousarray(values, dtype=np.float64).reshape(-1)
        leaves = np.empty(len(values), dtype=np.int64)
        self._find(self._nodes, self._offsets, self.branching, values, leaves)
        return leaves
