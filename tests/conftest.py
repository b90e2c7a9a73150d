"""Shared fixtures: small real images, a private weights cache."""

import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zlib

import numpy as np
import pytest
from PIL import Image

# Converted weights go to a per-session cache, never the user's.
os.environ.setdefault("TFX_TRANSFER_HOME", tempfile.mkdtemp(prefix="tfx_transfer_test_"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

COLOURS = {"red": (200, 30, 30), "green": (30, 180, 40), "blue": (30, 50, 210)}


def write_colour_images(root, per_class=12, size=40, seed=0):
    """Writes a folder per class of noisy, easily separable colour PNGs."""
    rng = np.random.default_rng(seed)
    for name, colour in COLOURS.items():
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            noise = rng.integers(-40, 40, size=(size, size, 3))
            pixels = np.clip(np.array(colour) + noise, 0, 255).astype("uint8")
            Image.fromarray(pixels).save(folder / f"{i:03d}.png")
    return root


@pytest.fixture(scope="session")
def colour_folder(tmp_path_factory):
    """Three classes x 12 PNGs: red, green, blue."""
    return write_colour_images(tmp_path_factory.mktemp("colours"))


_SERVE_SCRIPT = """
import pickle, sys
import tensorflow as tf
if sys.argv[3] == "text_ops":
    import tensorflow_text  # registers the tokenizer's ops
serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
with open(sys.argv[2], "rb") as f:
    inputs = pickle.load(f)
out = serve(**{name: tf.constant(values) for name, values in inputs.items()})
with open(sys.argv[2], "wb") as f:
    pickle.dump({name: value.numpy() for name, value in out.items()}, f)
"""


def serve_in_fresh_process(saved_model, text_ops=False, **inputs):
    """Calls a SavedModel's `serving_default` in a new Python process.

    Nothing of this process reaches it (no model code, no registered ops):
    only what the SavedModel carries, plus tensorflow_text's ops when
    `text_ops`, as a text model's loader must import them.

    Returns:
        A dict of the signature's outputs as NumPy arrays (strings as bytes).
    """
    with tempfile.TemporaryDirectory() as folder:
        exchange = os.path.join(folder, "exchange.pkl")
        with open(exchange, "wb") as f:
            pickle.dump(inputs, f)
        subprocess.run(
            [sys.executable, "-c", _SERVE_SCRIPT, str(saved_model), exchange,
             "text_ops" if text_ops else "core"],
            capture_output=True, text=True, check=True,
        )
        with open(exchange, "rb") as f:
            return pickle.load(f)


def lite0_classifier(num_classes=3, size=64, model_config=None):
    """EfficientNet-Lite0 with its real ImageNet weights and a new head, as a `Classifier`.

    Real weights: with random ones the activations saturate ReLU6 and no
    gradient reaches the backbone.
    """
    from tfx_transfer import backbones
    from tfx_transfer.classifier import Classifier
    from tfx_transfer.config import ModelConfig
    from tfx_transfer.tasks.images import build_image_classifier

    spec = backbones.get_backbone_spec("efficientnet_lite0")
    backbone = backbones.build_backbone(spec, backbones.resolve_weights(spec, "imagenet"), size)
    model = build_image_classifier(spec, backbone, num_classes, model_config or ModelConfig(), size)
    return Classifier(model, backbone, spec.unfreeze_groups)


def _png_chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width, height):
    """A valid 1-bit PNG of `width` x `height` black pixels: kilobytes that inflate to gigabytes."""
    packer = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)
    pixels = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", pixels)
            + _png_chunk(b"IEND", b""))
