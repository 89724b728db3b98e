"""A wide sum tree in flat NumPy arrays, sampled and updated for a whole batch at once.

Each node holds the sum of its ``branching`` children. At batch size 64, NumPy's per-call overhead,
not arithmetic, sets the cost, so the tree is shaped to need few calls:

- The top level is a plain array of at most ``top_size`` nodes. All values in a batch search that
  same array, so one ``cumsum`` and one ``searchsorted`` place the whole batch.
- Below it, levels of branching 32 need one vectorised step each, a gather of ``(batch, 32)``
  children. A million leaves need only two such steps (a binary tree would need twenty).
"""

from __future__ import annotations

import math

import numpy as np


class SumTree:
    """Leaf values (e.g. priorities ** alpha) with every prefix sum reachable in a few batched steps."""

    def __init__(self, capacity: int, branching: int = 32, top_size: int = 2048):
        self.capacity = capacity
        self.branching = branching
        # the fewest row levels below a top level of at most top_size nodes
        self.depth = 0
        while math.ceil(capacity / branching**self.depth) > top_size:
            self.depth += 1
        top_nodes = math.ceil(capacity / branching**self.depth)
        # levels[0] is the top, levels[depth] the leaves (padded with zeros past capacity)
        self.levels = [np.zeros(top_nodes * branching**d, dtype=np.float64) for d in range(self.depth + 1)]
        # The same memory seen as rows of siblings: row i of _children[d] holds the children of node i
        # of levels[d - 1].
        self._children = [None] + [level.reshape(-1, branching) for level in self.levels[1:]]

    @property
    def leaves(self) -> np.ndarray:
        return self.levels[-1]

    @property
    def total(self) -> float:
        return float(self.levels[0].sum())

    def update(self, indices: np.ndarray, values: np.ndarray) -> None:
        """Set leaves and re-sum their ancestors from their children.

        Re-summing (rather than adding deltas) makes repeated indices in one batch harmless and keeps
        rounding error from accumulating over millions of updates.
        """
        self.leaves[indices] = values
        nodes = np.asarray(indices)
        for depth in range(self.depth, 0, -1):
            nodes = nodes // self.branching
            self.levels[depth - 1][nodes] = self._children[depth][nodes].sum(axis=1)

    def find(self, values: np.ndarray) -> np.ndarray:
        """Leaf index for each value in ``[0, total)``: the leaf whose prefix-sum interval holds it.

        Rounding can carry a value at the very right edge into zero-valued padding past the last
        filled leaf; callers clamp the result to their filled size.
        """
        values = np.array(values, dtype=np.float64)
        top = self.levels[0]
        top_prefix = np.cumsum(top)
        nodes = np.searchsorted(top_prefix, values, side="right")
        np.minimum(nodes, len(top) - 1, out=nodes)
        values -= top_prefix[nodes] - top[nodes]
        rows = np.arange(len(values))
        for depth in range(1, self.depth + 1):
            children = self._children[depth][nodes]  # (batch, branching)
            prefix = np.cumsum(children, axis=1)
            choice = (prefix <= values[:, None]).sum(axis=1)
            np.minimum(choice, self.branching - 1, out=choice)  # a value just past a row's total
            values -= prefix[rows, choice] - children[rows, choice]
            nodes = nodes * self.branching + choice
        return nodes
