"""fcnet: fully-connected (MLP) classifiers on PyTorch.

>>> from fcnet import build_mlp, Trainer, EarlyStopping
"""

from fcnet._version import __version__
from fcnet.callbacks import (
    Callback,
    DisableAugmentation,
    EarlyStopping,
    EpochLogger,
    GradientClipping,
    HistoryLogger,
    ModelCheckpoint,
    ProgressBar,
    WeightAveraging,
)
from fcnet.checkpoint import load_model, save_model
from fcnet.exceptions import (
    CheckpointError,
    DatasetError,
    DatasetFormatError,
    DatasetIntegrityError,
    FcnetError,
    NonFiniteLossError,
)
from fcnet.export import export_onnx
from fcnet.history import History
from fcnet.images import load_images, predict_images
from fcnet.models import MLP, FastDropout, MLPSpec, build_mlp
from fcnet.trainer import Trainer, TrainerConfig

__all__ = [
    "__version__",
    "build_mlp",
    "MLP",
    "MLPSpec",
    "FastDropout",
    "Trainer",
    "TrainerConfig",
    "History",
    "Callback",
    "DisableAugmentation",
    "EarlyStopping",
    "EpochLogger",
    "GradientClipping",
    "HistoryLogger",
    "ProgressBar",
    "ModelCheckpoint",
    "WeightAveraging",
    "save_model",
    "load_model",
    "FcnetError",
    "DatasetError",
    "DatasetFormatError",
    "DatasetIntegrityError",
    "CheckpointError",
    "NonFiniteLossError",
    "export_onnx",
    "load_images",
    "predict_images",
]
