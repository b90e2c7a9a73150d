"""Stratified, seeded train/val/test splits of labelled examples."""

import dataclasses
import math

import numpy as np
from sklearn.model_selection import train_test_split


# Every reader returns these splits, in this order.
SPLIT_NAMES = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class Split:
    """Examples and their integer labels, in a fixed order.

    An example is whatever the reader hands on: an image file path, or the
    text itself for text data.

    Args:
        items: tuple. the examples: image file paths or texts.
        labels: tuple of int. the class index of each item, same length.

    Example:

    ```python
    split = Split(items=("cat/1.png", "dog/1.png"), labels=(0, 1))
    len(split)  # 2
    ```
    """

    items: tuple = ()
    labels: tuple[int, ...] = ()

    def __post_init__(self):
        if len(self.items) != len(self.labels):
            raise ValueError(
                "`items` and `labels` must have the same length. Received: "
                f"{len(self.items)} items, {len(self.labels)} labels."
            )

    def __len__(self):
        return len(self.items)

    def class_counts(self, num_classes):
        """Return a list with the number of examples of each class."""
        labels = np.asarray(self.labels, dtype=np.int64)
        counts = np.bincount(labels, minlength=num_classes)
        return [int(count) for count in counts]


def sorted_split(items, labels):
    """Returns a `Split` of `items` and `labels`, ordered by item.

    Sorting by the item (a path or a text) makes a split independent of the
    order files were listed or rows were written in.
    """
    order = sorted(range(len(items)), key=items.__getitem__)
    return Split(
        items=tuple(items[i] for i in order),
        labels=tuple(int(labels[i]) for i in order),
    )


@dataclasses.dataclass(frozen=True)
class LabelledData:
    """Class names, train/val/test splits and skipped examples: what every reader returns.

    One class holds them, so image and text data report the same keys.

    Args:
        class_names: tuple of str. a label is an index into it.
        splits: dict. `"train"`, `"val"` and `"test"` mapped to `Split`s.
        skipped: tuple of `(where, reason)` pairs. examples left out.
        split_source: str. how the splits were made.
        carved_splits: tuple of str. splits drawn by the seeded split
            while the others were given.
    """

    class_names: tuple[str, ...]
    splits: dict[str, Split]
    skipped: tuple[tuple[str, str], ...] = ()
    split_source: str = "seeded split"
    carved_splits: tuple[str, ...] = ()

    @property
    def num_classes(self):
        return len(self.class_names)

    def report(self):
        """Return a JSON-ready summary: per-split class counts and skips.

        Returns:
            A dict of plain values: `class_names`, `split_source`,
            `carved_splits`, `counts` (split name -> class name -> count),
            `totals` (split name -> count), `num_skipped` and `skipped` (a
            list of `[where, reason]`).
        """
        counts = {
            name: dict(zip(self.class_names, split.class_counts(self.num_classes)))
            for name, split in self.splits.items()
        }
        return {
            "class_names": list(self.class_names),
            "split_source": self.split_source,
            "carved_splits": list(self.carved_splits),
            "counts": counts,
            "totals": {name: len(split) for name, split in self.splits.items()},
            "num_skipped": len(self.skipped),
            "skipped": [[where, reason] for where, reason in self.skipped],
        }


def seeded_split(whole, fractions, seed, class_names, source):
    """Carve each `{split name: fraction of whole}` from `whole`, stratified.

    Items must be distinct: the split depends on their sorted order, the
    labels and `seed` only. `source` (a folder or file) names the data in
    errors. Returns a dict with the carved splits and `"train"`, what is left.
    """
    rest = whole
    rest_share = 1.0
    splits = {}
    for name, fraction in fractions.items():
        if fraction == 0:
            splits[name] = Split()
            continue
        cut = _Cut(name, fraction, rest_share, class_names, source)
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
    source: str


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
        # sklearn refuses when a part would hold fewer examples than there are
        # classes, or a class has one example. Its own count of the carved part
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
        [split.items[i] for i in indices], [split.labels[i] for i in indices]
    )


class SplitTooSmall(ValueError):
    """Carving a split left a part without every class; `carving` names the split ("val", "test")."""

    def __init__(self, message, carving):
        super().__init__(message)
        self.carving = carving


def _too_small_error(split, part_name, cut):
    counts = split.class_counts(len(cut.class_names))
    smallest = int(np.argmin(counts))
    head = (
        f"Split {part_name!r} is too small to hold every class of {cut.source} "
        f"with {cut.name}_fraction={cut.fraction}: class "
        f"{cut.class_names[smallest]!r} has only {counts[smallest]} usable "
        f"examples of the {len(split)} being split."
    )
    if counts[smallest] < 3:
        return SplitTooSmall(
            f"{head} Every class needs a usable example in every split (3 for "
            "train, val and test); add examples to it.", cut.name
        )
    if part_name == "train":
        return SplitTooSmall(
            f"{head} Use a smaller {cut.name}_fraction, or add examples to "
            "the smallest classes.", cut.name
        )
    # The carved part needs one example of the smallest class and one per
    # class overall; the larger bound decides, scaled back to the whole.
    needed = max(1 / counts[smallest], len(cut.class_names) / len(split))
    suggestion = math.ceil(needed * cut.rest_share * 20) / 20
    return SplitTooSmall(
        f"{head} Use {cut.name}_fraction={suggestion:.2f} or more, or add "
        "examples to the smallest classes.", cut.name
    )
