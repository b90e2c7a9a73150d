"""tfx_transfer: pretrained backbone + small labelled data -> evaluated, served classifier.

Example:

>>> import tfx_transfer
>>> result = tfx_transfer.run(tfx_transfer.RunConfig())   # bundled demo data
>>> result.metrics["accuracy"], result.saved_model
>>> tfx_transfer.Predictor(result.run_dir).top_k(open("shoe.png", "rb").read())
"""

import os

# TensorFlow's C++ start-up chatter (CUDA probing on CPU machines) buries the
# training log; a user's own setting wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from tfx_transfer.backbones import BACKBONES, build_backbone, get_backbone_spec
from tfx_transfer.config import (
    AugmentConfig,
    DataConfig,
    ModelConfig,
    RunConfig,
    StageConfig,
    load_config,
)
from tfx_transfer.efficientnet_lite import EfficientNetLite0
from tfx_transfer.export import export_run
from tfx_transfer.predict import Predictor
from tfx_transfer.stages import run_stages
from tfx_transfer.tasks.images import build_image_classifier
from tfx_transfer.train import RunResult, run

__version__ = "0.1.0"

__all__ = [
    "AugmentConfig",
    "BACKBONES",
    "DataConfig",
    "EfficientNetLite0",
    "ModelConfig",
    "Predictor",
    "RunConfig",
    "RunResult",
    "StageConfig",
    "build_backbone",
    "build_image_classifier",
    "export_run",
    "get_backbone_spec",
    "load_config",
    "run",
    "run_stages",
]
