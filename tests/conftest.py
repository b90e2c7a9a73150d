"""Shared fixtures: small real images, a private weights cache."""

import os
import tempfile

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
