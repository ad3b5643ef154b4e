"""The values the training step records (its loss terms every micro-batch, the gradient norm
every optimizer step), read once per log interval.

Where the values live decides how they are kept. On the CPU a value is read at no cost (there is
no device to wait for), so each row becomes plain floats at once. On an accelerator a read would
wait for the device at every step, so each row stays there, stacked into one tensor outside
autograd, and the rows are copied to the host in one go when read (one op, one sync). Either way
the means and the NaN checks are then plain Python over a few hundred floats.
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
        on_device: keep rows on the device (an accelerator) instead of reading them at once.
        reduce: sums over data-parallel ranks (None: one process). Every rank holds equally many
            rows, so a NaN on any rank makes the sum NaN on all, and they stop together.
    """

    def __init__(self, names: Sequence[str] = (), on_device: bool = False, reduce: Optional[Reduce] = None) -> None:
        self.names: List[str] = list(names)
        self.on_device, self.reduce = on_device, reduce
        self.rows: List[torch.Tensor | List[float]] = []  # since the last read
        self.checked = 0  # rows already looked at by nonfinite()

    def add(self, values: torch.Tensor | Dict[str, torch.Tensor]) -> None:
        if isinstance(values, dict):
            if not self.names:
                self.names = list(values)
            values = list(values.values())
        else:
            values = [values]
        if not self.on_device:
            self.rows.append([v.item() for v in values])
            return
        if len(values) == 1:  # a bare value (the gradient norm) is its own row
            self.rows.append(values[0])
            return
        with torch.no_grad():  # a row of plain values: stacking records nothing for autograd
            self.rows.append(torch.stack(values))

    def __bool__(self) -> bool:
        return bool(self.rows)

    def _stacked(self, rows: List[torch.Tensor | List[float]]) -> torch.Tensor:
        """The rows as one (rows, values) tensor, where the rows are."""
        stacked = torch.stack(rows).float() if self.on_device else torch.tensor(rows, dtype=torch.float64)
        return stacked.reshape(len(rows), len(self.names))

    def _host(self, rows: List[torch.Tensor | List[float]]) -> List[List[float]]:
        """The rows as lists of floats, summed over the ranks."""
        if not self.on_device and self.reduce is None:
            return rows
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
