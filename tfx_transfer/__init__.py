"""tfx_transfer: pretrained backbone + small labelled data -> evaluated, served classifier.

Example:

>>> import tfx_transfer
>>> result = tfx_transfer.run(tfx_transfer.RunConfig())   # bundled demo data
>>> result.metrics["accuracy"], result.saved_model
>>> tfx_transfer.Predictor(result.run_dir).top_k(open("shoe.png", "rb").read())

The config classes import at once; the names that need TensorFlow load it
on first use, so that the command line's `--help` stays fast.
"""

import importlib

from tfx_transfer import startup

startup.set_environment_defaults()

from tfx_transfer.config import (  # noqa: E402 (after the TensorFlow logging default)
    AugmentConfig,
    DataConfig,
    ModelConfig,
    RunConfig,
    StageConfig,
    load_config,
)

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first use.
_LAZY = {
    "run": "tfx_transfer.train.pipeline",
    "RunResult": "tfx_transfer.train.pipeline",
    "Predictor": "tfx_transfer.predict",
    "get_task": "tfx_transfer.tasks",
    "BackboneSpec": "tfx_transfer.backbones",
    "register_backbone": "tfx_transfer.backbones",
    "register_text_backbone": "tfx_transfer.backbones",
}

__all__ = [
    "AugmentConfig",
    "DataConfig",
    "ModelConfig",
    "RunConfig",
    "StageConfig",
    "load_config",
    *_LAZY,
]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'tfx_transfer' has no attribute {name!r}")
    startup.import_tensorflow()
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
