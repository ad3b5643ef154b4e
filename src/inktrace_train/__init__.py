"""inktrace_train: the training framework of InkTrace (raster ink in, stroke structure out).

The Python API::

    from inktrace_train import Tracer
    strokes = Tracer.from_checkpoint("outputs/<date>/<run>").trace("page.png")
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Tracer"]


def __getattr__(name: str):
    # Loaded on first use: `python -m inktrace_train --help` and validation stay free of numpy and
    # OpenCV (and Tracer itself loads torch only in from_checkpoint).
    if name == "Tracer":
        from inktrace_train.evaluation.tracer import Tracer

        return Tracer
    raise AttributeError(f"module 'inktrace_train' has no attribute {name!r}")
