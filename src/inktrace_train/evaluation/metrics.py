"""Validation metrics: skeleton F1 at 0 and 1 px, endpoint and junction F1.

Counts (matched, predicted, target) are accumulated as tensors on the model's device
over the whole validation set; ``ValidationMetrics.compute`` is the only place that
reads them back to the host, once per validation pass.

F1 is computed from pooled counts, ``2 * matched / (n_pred + n_target)``, which equals
2PR / (P + R) with P = matched / n_pred and R = matched / n_target. By convention it is
1.0 when both sets are empty (nothing to find, nothing claimed) and 0.0 when exactly
one is.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from inktrace_train.evaluation.tracing import SKELETON_THRESHOLD

KEYPOINT_THRESHOLD = 0.3  # predicted keypoint peaks must have sigmoid > this
TARGET_PEAK_THRESHOLD = 0.5  # target heat-map peaks (Gaussian, peak 1) must be > this
KEYPOINT_TOLERANCE = 2  # px, Chebyshev distance for a keypoint match

_COUNTERS = ("skeleton_f1_0px", "skeleton_f1_1px", "endpoint_f1", "junction_f1")


def _offsets(tol: int) -> List[Tuple[int, int]]:
    """All (dy, dx) with max(|dy|, |dx|) <= tol, nearest first (Euclidean, then row-major)."""
    r = range(-tol, tol + 1)
    return sorted(((dy, dx) for dy in r for dx in r), key=lambda o: (o[0] ** 2 + o[1] ** 2, o))


def match_counts(pred: torch.Tensor, target: torch.Tensor, tol: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One-to-one matching of predicted to target pixels within a Chebyshev tolerance.

    Greedy by distance: the offsets (dy, dx) with max(|dy|, |dx|) <= tol are visited in
    order of Euclidean length (0 first). At one fixed offset, pred pixel p can only pair
    with target pixel p + (dy, dx), a bijection, so the whole offset is matched at once
    with a shifted AND of the still-unmatched maps, and both matched sets are removed
    before the next offset. This is an approximation to the optimal (maximum) bipartite
    matching: a greedy choice at a short offset can block a pair that only a longer
    offset would have matched. For thin skeletons and sparse keypoints the difference is
    negligible, and the cost is (2 tol + 1)^2 elementwise passes with no host sync.

    Args:
        pred: (B, H, W) bool.
        target: (B, H, W) bool.
        tol: tolerance in pixels (>= 0).
    Returns:
        (matched, n_pred, n_target) as 0-d int64 tensors on the input device.
    """
    pred, target = pred.bool(), target.bool()
    _, h, w = pred.shape
    free_pred = pred.clone()
    # Unmatched targets, padded by tol so every shifted window is an in-bounds slice
    # (pixels beyond the border are never targets).
    free_target = target.new_zeros((target.shape[0], h + 2 * tol, w + 2 * tol))
    free_target[:, tol : tol + h, tol : tol + w] = target
    matched = torch.zeros((), dtype=torch.int64, device=pred.device)
    for dy, dx in _offsets(tol):
        window = free_target[:, tol + dy : tol + dy + h, tol + dx : tol + dx + w]  # a view
        hit = free_pred & window
        matched = matched + hit.sum()
        free_pred &= ~hit
        window &= ~hit  # in place: removes the matched targets from free_target
    return matched, pred.sum(), target.sum()


def peaks(heat: torch.Tensor, threshold: float) -> torch.Tensor:
    """Local maxima of a heat map above a threshold (3x3 max-pool non-maximum suppression).

    Args:
        heat: (B, H, W) probabilities (or any heat values).
        threshold: a peak must be strictly greater than this.
    Returns:
        (B, H, W) bool. Pixels of an exactly flat plateau are all kept (a tie is not
        broken); smooth heat maps practically never have one.
    """
    pooled = F.max_pool2d(heat.unsqueeze(1), 3, stride=1, padding=1).squeeze(1)
    return (heat == pooled) & (heat > threshold)


def f1_from_counts(matched: float, n_pred: float, n_target: float) -> float:
    """2 * matched / (n_pred + n_target); 1.0 when both are empty."""
    total = n_pred + n_target
    return 1.0 if total == 0 else 2.0 * matched / total


class ValidationMetrics:
    """Accumulates match counts over a validation set on the device; read once at the end.

    Use: ``m = ValidationMetrics(); for batch: m.update(model(batch["image"]), batch)``;
    then ``m.compute()``. ``reset()`` starts over.
    """

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self._counts = None  # (4, 3) int64 rows _COUNTERS, columns (matched, n_pred, n_target)
        self._has_keypoints = False

    @torch.no_grad()
    def update(self, outputs: Dict[str, torch.Tensor], batch: Dict[str, torch.Tensor]) -> None:
        """Add one batch. Keypoint counters are updated when ``outputs`` has ``keypoints``.

        Args:
            outputs: model outputs (logits), (B, C, H, W).
            batch: the data dict with ``skeleton`` (and ``keypoints``) targets.
        """
        logits = outputs["skeleton"].float()
        if self._counts is None:
            self._counts = torch.zeros(len(_COUNTERS), 3, dtype=torch.int64, device=logits.device)
        pred = torch.sigmoid(logits[:, 0]) >= SKELETON_THRESHOLD
        target = batch["skeleton"][:, 0] > 0.5
        rows = [torch.stack(match_counts(pred, target, 0)), torch.stack(match_counts(pred, target, 1))]
        if "keypoints" in outputs:
            self._has_keypoints = True
            heat = torch.sigmoid(outputs["keypoints"].float())
            heat_target = batch["keypoints"].float()
            for ch in range(2):  # 0 endpoints, 1 junctions
                p = peaks(heat[:, ch], KEYPOINT_THRESHOLD)
                t = peaks(heat_target[:, ch], TARGET_PEAK_THRESHOLD)
                rows.append(torch.stack(match_counts(p, t, KEYPOINT_TOLERANCE)))
        self._counts[: len(rows)] += torch.stack(rows)

    def compute(self, reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> Dict[str, float]:
        """F1 per counter (the only host-device synchronisation).

        Args:
            reduce: sums the counts over data-parallel ranks (each saw its share of the set),
                so that F1 is that of the whole set and every rank agrees on it.

        Returns:
            ``skeleton_f1_0px``, ``skeleton_f1_1px``, and when keypoints were seen
            ``endpoint_f1``, ``junction_f1``; an empty dict before the first update.
        """
        if self._counts is None:
            return {}
        counts = (reduce(self._counts) if reduce else self._counts).tolist()
        n = len(_COUNTERS) if self._has_keypoints else 2
        return {name: f1_from_counts(*counts[i]) for i, name in enumerate(_COUNTERS[:n])}


def select_metric(stage: str, metrics: Dict[str, float]) -> float:
    """The number that picks the best checkpoint of a stage (higher is better).

    Args:
        stage: ``structural`` (skeleton F1 at 1 px) or ``dense`` (mean of skeleton F1
            at 1 px, endpoint F1 and junction F1).
        metrics: the dict from :meth:`ValidationMetrics.compute`.
    """
    if stage == "structural":
        return metrics["skeleton_f1_1px"]
    if stage == "dense":
        keys = ("skeleton_f1_1px", "endpoint_f1", "junction_f1")
        return sum(metrics[k] for k in keys) / len(keys)
    raise ValueError(f"unknown stage {stage!r}: expected 'structural' or 'dense'")
