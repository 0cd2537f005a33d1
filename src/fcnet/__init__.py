"""fcnet: fully-connected classifiers on PyTorch."""

__version__ = "0.1.0"
