"""The torch Dataset (augment + render + patch mask) and its epoch-keyed sampler.

Every random draw of a sample comes from ``np.random.default_rng([seed, stream,
epoch, index])``: a batch depends only on (seed, epoch, index), never on the
number of workers, their scheduling, or where an interrupted run resumed.
"""

from __future__ import annotations

from typing import Dict, Iterator, Protocol, Tuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from inktrace_train.data import degrade as scan
from inktrace_train.data.augment import Augmenter
from inktrace_train.data.render import TARGET_CHANNELS, Renderer
from inktrace_train.run.signals import ignore_stop_signals


class StrokeSource(Protocol):
    """What InkDataset needs from a data source (KanjiVGStrokes, StrokeFiles, SyntheticStrokes, ...).
    A user's own class implements the simpler :class:`.custom.GlyphSource`, adapted by CustomSource."""

    def __len__(self) -> int: ...

    def glyph(self, index: int, rng: np.random.Generator) -> list: ...


def patch_mask(img_size: int, patch_size: int, mask_ratio: float, rng: np.random.Generator) -> np.ndarray:
    """A {0, 1} float32 (H, W) visibility map with round(mask_ratio * n) patches hidden.

    Args:
        img_size: image side, pixels; a multiple of patch_size.
        patch_size: side of a square patch, pixels.
        mask_ratio: fraction of patches to hide.
        rng: the generator that chooses them.
    """
    if img_size % patch_size:
        raise ValueError(f"img_size={img_size} is not a multiple of patch_size={patch_size}")
    grid = img_size // patch_size
    n = grid * grid
    hidden = round(mask_ratio * n)
    visible = np.ones(n, np.float32)
    if hidden:
        visible[rng.choice(n, size=hidden, replace=False)] = 0.0
    return visible.reshape(grid, grid).repeat(patch_size, axis=0).repeat(patch_size, axis=1)


class InkDataset(Dataset):
    """Samples keyed by (epoch, index): image, visibility and every target.

    Args:
        source: a glyph source (``__len__`` and ``glyph(index, rng)``).
        augment: turns a unit-coordinate glyph into pixel strokes and their pen.
        render: turns those into targets (:class:`Renderer`), or into centerlines that the
            training device renders batch by batch (:class:`Centerlines`).
        seed: the run's seed.
        stream: separates data streams of one seed (e.g. 0 train, 1 validation).
        mask_ratio: fraction of patches hidden from the input.
        patch_size: mask patch side, pixels.
        fixed: the same sample for an index whatever the epoch (validation);
            glyphs are then taken in order, ``index % len(source)``.
        degrade: share of samples whose input is made scan-like (:mod:`.degrade`).
    """

    def __init__(
        self,
        source: StrokeSource,
        augment: Augmenter,
        render: Renderer,
        *,
        seed: int,
        stream: int,
        mask_ratio: float,
        patch_size: int,
        fixed: bool,
        degrade: float = 0.0,
    ) -> None:
        self.source = source
        self.augment = augment
        self.render = render
        self.seed = int(seed)
        self.stream = int(stream)
        self.mask_ratio = float(mask_ratio)
        self.patch_size = int(patch_size)
        self.fixed = bool(fixed)
        self.degrade = float(degrade)

    def __len__(self) -> int:
        return len(self.source)

    def sample(self, epoch: int, index: int) -> Dict[str, np.ndarray]:
        """The sample as numpy arrays (what __getitem__ wraps in tensors): image, visible and the
        targets; or, when ``render`` is the workers' half of the device renderer, the glyph's
        centerlines and visible (the device draws the rest)."""
        if self.fixed:
            epoch = 0
        rng = np.random.default_rng([self.seed, self.stream, epoch, index])
        n = len(self.source)
        choice = index % n if self.fixed else int(rng.integers(n))
        strokes, pen = self.augment(self.source.glyph(choice, rng), rng)
        targets = self.render(strokes, pen)
        size = self.render.img_size
        visible = patch_mask(size, self.patch_size, self.mask_ratio, rng)[None]
        fields = {}
        if self.degrade > 0:
            fields = scan.draw(rng, size) if rng.uniform() < self.degrade else scan.identity(size)
        if self.render.on_device:
            return {**targets, **fields, "visible": visible}
        ink = targets["ink"]
        if fields:
            batch = {k: torch.from_numpy(v)[None] for k, v in fields.items()}
            ink = scan.apply(torch.from_numpy(ink)[None], batch)[0].numpy()
        out = {"image": np.concatenate([ink * visible, visible]), "visible": visible}
        out.update(targets)
        return out

    def __getitem__(self, key: Tuple[int, int]) -> Dict[str, torch.Tensor]:
        epoch, index = key
        return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in self.sample(int(epoch), int(index)).items()}


class EpochSampler(Sampler):
    """Yields this rank's (epoch, i) keys, global batch by global batch.

    Global batch ``b`` holds the indices ``[b * batch_size, (b + 1) * batch_size)`` whatever
    the number of ranks; each rank takes one contiguous share of it. So the sequence of
    global batches is the same on 1, 2 or 4 ranks, and a run resumed on another number of
    ranks continues it.

    Args:
        num_samples: samples in the epoch.
        epoch: the epoch number given to every key.
        batch_size: samples per global batch (over all ranks).
        drop_last: leave out a last incomplete global batch (training); keep it (validation).
        rank, world_size: this process's share.
        start_batch: first global batch, e.g. the micro-batches done on a mid-epoch resume.
    """

    def __init__(
        self,
        num_samples: int,
        epoch: int,
        batch_size: int,
        drop_last: bool,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
    ) -> None:
        self.num_samples, self.epoch, self.batch_size = int(num_samples), int(epoch), int(batch_size)
        self.drop_last, self.rank, self.world_size = drop_last, rank, world_size
        self.start_batch = int(start_batch)

    def _global_batches(self) -> range:
        full, rest = divmod(self.num_samples, self.batch_size)
        return range(min(self.start_batch, full + 1), full + (0 if self.drop_last or not rest else 1))

    def _share(self, b: int) -> range:
        lo, hi = b * self.batch_size, min((b + 1) * self.batch_size, self.num_samples)
        n, r, w = hi - lo, self.rank, self.world_size
        return range(lo + n * r // w, lo + n * (r + 1) // w)

    def __iter__(self) -> Iterator[Tuple[int, int]]:
        return ((self.epoch, i) for b in self._global_batches() for i in self._share(b))

    def __len__(self) -> int:
        """In O(1): every full global batch splits alike (a loop over batches hung on huge epochs)."""
        batches, full = self._global_batches(), self.num_samples // self.batch_size
        n_full = max(0, min(batches.stop, full) - batches.start)
        tail = len(self._share(full)) if batches.start <= full < batches.stop else 0
        return n_full * len(self._share(0)) + tail if full else tail


def worker_init_fn(worker_id: int) -> None:
    """Keep each data-loader worker's torch single-threaded (it would oversubscribe
    the cores that the other workers and the trainer use), and leave stop signals sent to the
    whole process group (Slurm, ``timeout``, Ctrl-C) to the main process, which saves first.

    OpenCV is not touched here: calling cv2.setNumThreads in a forked child whose
    parent had started OpenCV's thread pool deadlocks; Renderer makes OpenCV
    single-threaded in the parent instead.
    """
    torch.set_num_threads(1)
    ignore_stop_signals()


__all__ = ["TARGET_CHANNELS", "EpochSampler", "InkDataset", "StrokeSource", "patch_mask", "worker_init_fn"]
