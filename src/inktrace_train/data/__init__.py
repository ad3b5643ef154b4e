"""Training data: stroke sources, augmentation, target rendering and the Dataset.

Sources give glyphs as lists of float32 (N, 2) strokes in unit coordinates;
:class:`Augmenter` maps them to pixel coordinates and draws their
:class:`Pen`; :class:`Renderer` draws the
targets; :class:`InkDataset` ties them together per (epoch, index) key.
"""

from inktrace_train.data.augment import Augmenter
from inktrace_train.data.dataset import EpochSampler, InkDataset, patch_mask, worker_init_fn
from inktrace_train.data.glyphs import DataError
from inktrace_train.data.kanjivg import PARSER_VERSION, KanjiVGStrokes, load_corpus
from inktrace_train.data.pen import Pen, PenStyle
from inktrace_train.data.render import TARGET_CHANNELS, Renderer
from inktrace_train.data.synthetic import SyntheticStrokes

__all__ = [
    "PARSER_VERSION",
    "TARGET_CHANNELS",
    "Augmenter",
    "DataError",
    "EpochSampler",
    "InkDataset",
    "KanjiVGStrokes",
    "Pen",
    "PenStyle",
    "Renderer",
    "SyntheticStrokes",
    "load_corpus",
    "patch_mask",
    "worker_init_fn",
]
