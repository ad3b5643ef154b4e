"""The values the training step records (its loss terms every micro-batch, the gradient norm
every optimizer step), read once per log interval.

A step only keeps the tensors it is handed (a list append: no op, no device sync, no copy). A read
stacks every row's values into one tensor, outside autograd, and copies it to the host in one go
(one op, one sync on an accelerator); the means and the NaN checks are then plain Python over a
few hundred floats. Keeping a loss term alive until the read keeps only itself and the autograd
nodes that made it: the backward pass has already freed what they saved.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

Reduce = Callable[[torch.Tensor], torch.Tensor]  # sums a tensor over data-parallel ranks


class StepLog:
    """Rows of named values since the last read.

    Args:
        names: the values' names when rows are bare tensors (else the first dict's keys).
        reduce: sums over data-parallel ranks (None: one process). Every rank holds equally many
            rows, so a NaN on any rank makes the sum NaN on all, and they stop together.
    """

    def __init__(self, names: Sequence[str] = (), reduce: Optional[Reduce] = None) -> None:
        self.names: List[str] = list(names)
        self.reduce = reduce
        self.rows: List[List[torch.Tensor]] = []  # since the last read: 0-d tensors, as handed in
        self.checked = 0  # rows already looked at by nonfinite()

    def add(self, values: torch.Tensor | Dict[str, torch.Tensor]) -> None:
        if isinstance(values, torch.Tensor):  # a bare value (the gradient norm) is its own row
            self.rows.append([values])
            return
        if not self.names:
            self.names = list(values)
        self.rows.append(list(values.values()))

    def __bool__(self) -> bool:
        return bool(self.rows)

    def _stacked(self, rows: List[List[torch.Tensor]]) -> torch.Tensor:
        """The rows as one float (rows, values) tensor, on the device they were made on."""
        with torch.no_grad():  # plain values: stacking records nothing for autograd
            flat = torch.stack([v for row in rows for v in row])  # promotes mixed dtypes (autocast)
        return flat.float().reshape(len(rows), len(self.names))

    def _host(self, rows: List[List[torch.Tensor]]) -> List[List[float]]:
        """The rows as lists of floats, summed over the ranks."""
        stacked = self._stacked(rows)
        return (self.reduce(stacked) if self.reduce else stacked).tolist()

    def _first_bad(self, values: List[List[float]]) -> Optional[Tuple[int, List[str]]]:
        """(1-based row, names of its non-finite values) of the first row with any; None if none."""
        for i, row in enumerate(values):
            if not all(map(math.isfinite, row)):
                return i + 1, [name for name, v in zip(self.names, row, strict=True) if not math.isfinite(v)]
        return None

    def nonfinite(self) -> Optional[Tuple[int, List[str]]]:
        """(rows since the last check up to the first non-finite one, its non-finite values), or None."""
        new = self.rows[self.checked :]
        if not new:
            return None
        self.checked = len(self.rows)
        return self._first_bad(self._host(new))

    def read(self, world: int = 1, check: bool = False) -> Tuple[Dict[str, float], Optional[Tuple[int, List[str]]]]:
        """The mean of each value since the last read over the ``world`` ranks that ``reduce``
        sums over, and with ``check`` what :meth:`nonfinite` would say of the rows it has not
        seen; then starts over."""
        if not self.rows:
            return {}, None
        values = self._host(self.rows)
        sums = [sum(column) for column in zip(*values, strict=True)]
        bad = None
        if check and not all(map(math.isfinite, sums)):  # rare: find the row (or a sum overflowed)
            bad = self._first_bad(values[self.checked :])
        n = len(values) * world
        self.rows, self.checked = [], 0
        return {name: total / n for name, total in zip(self.names, sums, strict=True)}, bad

    def read_uneven(self) -> Dict[str, float]:
        """The means over ranks that may hold different numbers of rows (validation shares)."""
        if not self.rows:
            return {}
        stacked = self._stacked(self.rows)
        packed = torch.cat([stacked.sum(0), stacked.new_full((1,), len(self.rows))])
        packed = (self.reduce(packed) if self.reduce else packed).tolist()
        self.rows, self.checked = [], 0
        return {name: total / packed[-1] for name, total in zip(self.names, packed, strict=False)}
