"""Stratified, seeded train/val/test splits of labelled files."""

import dataclasses
import math

import numpy as np
from sklearn.model_selection import train_test_split


@dataclasses.dataclass(frozen=True)
class ImageSplit:
    """Image file paths and their integer labels, in a fixed order.

    Args:
        paths: tuple of str. image file paths.
        labels: tuple of int. the class index of each path, same length.

    Example:

    ```python
    split = ImageSplit(paths=("cat/1.png", "dog/1.png"), labels=(0, 1))
    len(split)  # 2
    ```
    """

    paths: tuple[str, ...] = ()
    labels: tuple[int, ...] = ()

    def __post_init__(self):
        if len(self.paths) != len(self.labels):
            raise ValueError(
                "`paths` and `labels` must have the same length. Received: "
                f"{len(self.paths)} paths, {len(self.labels)} labels."
            )

    def __len__(self):
        return len(self.paths)

    def class_counts(self, num_classes):
        """Return a list with the number of examples of each class."""
        labels = np.asarray(self.labels, dtype=np.int64)
        counts = np.bincount(labels, minlength=num_classes)
        return [int(count) for count in counts]



def sorted_split(paths, labels):
    """Returns an `ImageSplit` of `paths` and `labels`, ordered by path."""
    order = sorted(range(len(paths)), key=paths.__getitem__)
    return ImageSplit(
        paths=tuple(paths[i] for i in order),
        labels=tuple(int(labels[i]) for i in order),
    )


def seeded_split(whole, fractions, seed, class_names, folder):
    """Carve each `{split name: fraction of whole}` from `whole`, stratified.

    Returns a dict with the carved splits and `"train"`, what is left.
    """
    rest = whole
    rest_share = 1.0
    splits = {}
    for name, fraction in fractions.items():
        if fraction == 0:
            splits[name] = ImageSplit()
            continue
        cut = _Cut(name, fraction, rest_share, class_names, folder)
        rest, splits[name] = _carve(rest, cut, seed)
        rest_share -= fraction
    splits["train"] = rest
    return splits


@dataclasses.dataclass(frozen=True)
class _Cut:
    """One stratified cut: `fraction` of the whole, taken from `rest_share`."""

    name: str
    fraction: float
    rest_share: float
    class_names: tuple[str, ...]
    folder: str


def _carve(split, cut, seed):
    """Split `split` into (rest, carved) with every class in both."""
    indices = np.arange(len(split))
    labels = np.asarray(split.labels)
    # Each cut takes from what earlier cuts left, so the fraction of the
    # whole becomes a larger share of the rest.
    share = cut.fraction / cut.rest_share
    try:
        keep, take = train_test_split(
            indices, test_size=share, random_state=seed, stratify=labels
        )
    except ValueError:
        # sklearn refuses when a part would hold fewer images than there are
        # classes, or a class has one image. Its own count of the carved part
        # tells which part is short; the error below says what to do.
        carved_too_small = math.ceil(share * len(split)) < len(cut.class_names)
        part_name = cut.name if carved_too_small else "train"
        raise _too_small_error(split, part_name, cut) from None
    for part_name, part in ((cut.name, take), ("train", keep)):
        if len(set(labels[part].tolist())) < len(cut.class_names):
            raise _too_small_error(split, part_name, cut)
    return _subset(split, keep), _subset(split, take)


def _subset(split, indices):
    return sorted_split(
        [split.paths[i] for i in indices], [split.labels[i] for i in indices]
    )


def _too_small_error(split, part_name, cut):
    counts = split.class_counts(len(cut.class_names))
    smallest = int(np.argmin(counts))
    head = (
        f"Split {part_name!r} is too small to hold every class of {cut.folder} "
        f"with {cut.name}_fraction={cut.fraction}: class "
        f"{cut.class_names[smallest]!r} has only {counts[smallest]} usable "
        f"images of the {len(split)} being split."
    )
    if counts[smallest] < 3:
        return ValueError(
            f"{head} Every class needs a usable image in every split (3 for "
            "train, val and test); add images to it."
        )
    if part_name == "train":
        return ValueError(
            f"{head} Use a smaller {cut.name}_fraction, or add images to the "
            "smallest classes."
        )
    # The carved part needs one image of the smallest class and one image per
    # class overall; the larger bound decides, scaled back to the whole.
    needed = max(1 / counts[smallest], len(cut.class_names) / len(split))
    suggestion = math.ceil(needed * cut.rest_share * 20) / 20
    return ValueError(
        f"{head} Use {cut.name}_fraction={suggestion:.2f} or more, or add "
        "images to the smallest classes."
    )
