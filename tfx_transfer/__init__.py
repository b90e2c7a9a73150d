"""tfx_transfer: pretrained backbone + small labelled data -> evaluated, served classifier.

Example (the four lines of Model Maker, with TF Serving's export):

```python
import tfx_transfer
run = tfx_transfer.fine_tune("photos/", task="images", backbone="efficientnet_lite0")
run.evaluate("new_photos/").report          # a fresh report on new data
run.export("exported/", format="savedmodel")
```

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
)
from tfx_transfer.config_files import load_config  # noqa: E402

__version__ = "0.1.0"

# Public name -> the module that defines it, imported on first use.
_LAZY = {
    "fine_tune": "tfx_transfer.api",
    "load_run": "tfx_transfer.api",
    "run_config": "tfx_transfer.api",
    "Run": "tfx_transfer.api",
    "run": "tfx_transfer.train.pipeline",
    "RunResult": "tfx_transfer.train.pipeline",
    "Predictor": "tfx_transfer.predict",
    "get_task": "tfx_transfer.tasks",
    "BackboneSpec": "tfx_transfer.backbones",
    "register_backbone": "tfx_transfer.backbones",
    "register_text_backbone": "tfx_transfer.backbones",
}

# The public API. The config sections (DataConfig, ...), `run`, `RunResult`
# and `get_task` stay importable for code written against them.
__all__ = [
    "fine_tune",
    "load_run",
    "Run",
    "run_config",
    "RunConfig",
    "load_config",
    "Predictor",
    "BackboneSpec",
    "register_backbone",
    "register_text_backbone",
]


def __getattr__(name):
    if name not in _LAZY:
        raise AttributeError(f"module 'tfx_transfer' has no attribute {name!r}")
    startup.import_tensorflow()
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value
