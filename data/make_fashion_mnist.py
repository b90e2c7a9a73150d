"""Regenerate the bundled Fashion-MNIST demo as a folder-per-class PNG tree.

Reads the IDX files shipped by the Debian package `dataset-fashion-mnist`
and writes the first `--per-class` images of each class from the TRAIN split
as 8-bit grey PNGs, `<out>/<class_name>/<index>.png`, where `index` is the
image's position in the IDX file. Needs numpy and Pillow only.

Example:

    python data/make_fashion_mnist.py
    python data/make_fashion_mnist.py --per-class 20 --out /tmp/fmnist
"""

import argparse
import gzip
import pathlib
import struct
import sys

import numpy as np
from PIL import Image

CLASS_NAMES = (
    "t-shirt_top",
    "trouser",
    "pullover",
    "dress",
    "coat",
    "sandal",
    "shirt",
    "sneaker",
    "bag",
    "ankle_boot",
)
DEFAULT_SOURCE = "/usr/share/datasets/fashion-mnist"
# IDX magic numbers: 0x0801 = unsigned byte vector, 0x0803 = unsigned byte
# 3-D tensor (count, rows, cols).
LABELS_MAGIC = 0x00000801
IMAGES_MAGIC = 0x00000803


def read_idx_labels(path):
    """Read an IDX1 label file into a uint8 array of shape [N]."""
    with gzip.open(path, "rb") as f:
        magic, count = struct.unpack(">II", f.read(8))
        if magic != LABELS_MAGIC:
            raise ValueError(
                f"{path} is not an IDX label file. Received: magic={magic:#x}"
            )
        return np.frombuffer(f.read(count), dtype=np.uint8)


def read_idx_images(path):
    """Read an IDX3 image file into a uint8 array of shape [N, rows, cols]."""
    with gzip.open(path, "rb") as f:
        magic, count, rows, cols = struct.unpack(">IIII", f.read(16))
        if magic != IMAGES_MAGIC:
            raise ValueError(
                f"{path} is not an IDX image file. Received: magic={magic:#x}"
            )
        data = np.frombuffer(f.read(count * rows * cols), dtype=np.uint8)
        return data.reshape(count, rows, cols)


def write_demo(source, out, per_class):
    """Write the first `per_class` train images of each class; return the count."""
    source = pathlib.Path(source)
    out = pathlib.Path(out)
    labels = read_idx_labels(source / "train-labels-idx1-ubyte.gz")
    images = read_idx_images(source / "train-images-idx3-ubyte.gz")
    if len(labels) != len(images):
        raise ValueError(
            f"Label and image counts differ in {source}: "
            f"{len(labels)} labels, {len(images)} images."
        )
    width = len(str(len(labels) - 1))
    written = 0
    for class_id, class_name in enumerate(CLASS_NAMES):
        indices = np.flatnonzero(labels == class_id)[:per_class]
        if len(indices) < per_class:
            raise ValueError(
                f"Class {class_name!r} has only {len(indices)} train images; "
                f"asked for {per_class}."
            )
        class_dir = out / class_name
        class_dir.mkdir(parents=True, exist_ok=True)
        for index in indices:
            path = class_dir / f"{index:0{width}d}.png"
            # A 2-D uint8 array becomes an 8-bit grey ("L") image; optimize=True
            # keeps the committed demo small without touching the pixels.
            Image.fromarray(images[index]).save(path, optimize=True)
            written += 1
    return written


def main(argv=None):
    here = pathlib.Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--source",
        default=DEFAULT_SOURCE,
        help="folder holding train-images-idx3-ubyte.gz and "
        "train-labels-idx1-ubyte.gz (default: %(default)s)",
    )
    parser.add_argument(
        "--out",
        default=str(here / "fashion_mnist"),
        help="output folder, one subfolder per class (default: %(default)s)",
    )
    parser.add_argument(
        "--per-class",
        type=int,
        default=100,
        help="images per class, the first ones in file order (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    if args.per_class < 1:
        parser.error(f"--per-class must be at least 1. Received: {args.per_class}")
    written = write_demo(args.source, args.out, args.per_class)
    print(f"Wrote {written} PNGs to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
