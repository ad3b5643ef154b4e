"""inktrace_train: the training framework of InkTrace (raster ink in, stroke structure out)."""

__version__ = "0.1.0"
