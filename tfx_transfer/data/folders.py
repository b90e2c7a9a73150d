"""Read a folder-per-class image tree into labelled, stratified splits."""

import collections
import dataclasses
import os

from tfx_transfer.config import check_fractions
from tfx_transfer.data.image_check import check_images
from tfx_transfer.data.splits import (
    SPLIT_NAMES,
    LabelledData,
    seeded_split,
    sorted_split,
)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


@dataclasses.dataclass(frozen=True)
class ImageFolderData(LabelledData):
    """Class names, train/val/test splits and skipped files of an image tree.

    Args:
        class_names: tuple of str. class names; a label is an index into it.
        splits: dict. `"train"`, `"val"` and `"test"` mapped to `Split`s
            whose items are image file paths.
        skipped: tuple of `(path, reason)` pairs. files with an image
            extension that TensorFlow could not decode, or refused
            undecoded (a decompression bomb).
        converted: tuple of `(path, kinds, description)` triples. usable
            files in an odd format that decoding converts (CMYK, 16-bit,
            transparency, animation, EXIF rotation, ...): `kinds` is a tuple
            of short names (`image_check`'s), `description` says what is done.
        split_source: str. `"folders"` when the tree had `train/` (and
            `val/`, `test/`) folders, `"seeded split"` when the splits were
            drawn from one folder per class.
        carved_splits: tuple of str. the splits drawn from `train/` by the
            seeded split because their folder was missing (folders only).

    Example:

    ```python
    data = read_image_folder("flowers/")
    data.class_names        # ("daisy", "rose", ...)
    len(data.splits["val"])
    json.dumps(data.report())
    ```
    """

    converted: tuple[tuple[str, tuple[str, ...], str], ...] = ()

    def report(self):
        """`LabelledData.report()` plus the odd-format conversions.

        Adds `num_converted`, `converted` (kind -> number of files) and
        `converted_files` (a list of `[path, description]`).
        """
        kinds = collections.Counter(kind for _, file_kinds, _ in self.converted
                                    for kind in file_kinds)
        return {
            **super().report(),
            "num_converted": len(self.converted),
            "converted": dict(sorted(kinds.items())),
            "converted_files": [[path, description] for path, _, description in self.converted],
        }


def read_image_folder(root, val_fraction=0.15, test_fraction=0.15, seed=42):
    """Read an image tree with one folder per class into train/val/test.

    Two layouts are understood. If `root` has a `train/` folder, its class
    folders give the class names and training set, and `val/` and `test/`
    (same class folder names, any subset) give the others; a missing `val/`
    or `test/` is carved from `train/` with the stratified split below,
    `val_fraction` (and `test_fraction`) of `train/`'s images. Otherwise
    `root` holds one folder per class and every split is drawn from it: a
    stratified split (every class in every split) that depends only on the
    file paths and `seed`, not on the order the file system lists them in.

    Files are matched by `IMAGE_EXTENSIONS` (case-insensitive), nested folders
    included; hidden files and other files are ignored. Each image is decoded
    once with `tf.io.decode_image`, the decoder training uses, and a file that
    fails (empty, truncated, corrupt, not an image) is recorded in `skipped`
    with the reason instead of stopping the run. A file whose header
    promises more than `image_check.MAX_PIXELS` pixels is refused undecoded.
    Usable files in odd formats are recorded in `converted`.

    Args:
        root: str or path-like. the folder to read.
        val_fraction: float. share of images for validation, in [0, 1).
        test_fraction: float. share of images for the test set, in [0, 1).
            A fraction of 0 leaves that split empty.
        seed: int. seed of the stratified split.

    Returns:
        An `ImageFolderData` with absolute, sorted paths in each split.

    Raises:
        ValueError: `root` is missing or not a folder, it has fewer than two
            classes, a class has no usable image, or a split is too small to
            hold every class.

    Example:

    ```python
    data = read_image_folder("data/fashion_mnist", seed=0)
    data.class_names[:2]  # ("ankle_boot", "bag")
    data.report()["totals"]["test"]  # 150
    ```
    """
    check_fractions(val_fraction, test_fraction, allow_empty=True)
    root = os.path.abspath(os.fspath(root))
    if not os.path.isdir(root):
        what = "does not exist" if not os.path.exists(root) else "is not a folder"
        raise ValueError(f"Image folder {root} {what}.")
    if os.path.isdir(os.path.join(root, "train")):
        return _read_split_folders(root, val_fraction, test_fraction, seed)

    class_names = _class_folders(root)
    if class_names and set(class_names) <= set(SPLIT_NAMES):
        raise ValueError(
            f"Image folder {root} has split folders {list(class_names)} but no "
            "train/ folder; add train/, or use one folder per class instead."
        )
    _check_class_count(class_names, root)
    skipped, converted = _stray_images(root), []
    whole = _read_classes(root, class_names, class_names, skipped, converted, True)
    fractions = {"test": test_fraction, "val": val_fraction}
    splits = seeded_split(whole, fractions, seed, class_names, root)
    return ImageFolderData(
        class_names=class_names,
        splits={name: splits[name] for name in SPLIT_NAMES},
        skipped=tuple(sorted(skipped)),
        split_source="seeded split",
        converted=tuple(sorted(converted)),
    )


def _read_split_folders(root, val_fraction, test_fraction, seed):
    extra = [name for name in _class_folders(root) if name not in SPLIT_NAMES]
    if extra:
        # A class that happens to be called "train" next to other classes is
        # far less likely than a half-arranged tree; guessing either way would
        # silently drop or mislabel images.
        raise ValueError(
            f"Image folder {root} has a train/ folder, so only train/, val/ and "
            f"test/ may sit next to it. Received extra folders: {extra}. Move "
            "them into the split folders (a validation/ folder must be val/)."
        )
    train_dir = os.path.join(root, "train")
    class_names = _class_folders(train_dir)
    _check_class_count(class_names, train_dir)
    skipped, converted = _stray_images(root) + _stray_images(train_dir), []
    train = _read_classes(train_dir, class_names, class_names, skipped, converted, True)
    splits = {}
    missing = {}
    for name, fraction in (("test", test_fraction), ("val", val_fraction)):
        folder = os.path.join(root, name)
        if not os.path.isdir(folder):
            missing[name] = fraction
            continue
        folder_classes = _class_folders(folder)
        unknown = [c for c in folder_classes if c not in class_names]
        if unknown:
            raise ValueError(
                f"Class folders {unknown} in {folder} are not in {train_dir}, "
                f"so no model trained on it can predict them. Classes in "
                f"train/: {list(class_names)}"
            )
        skipped += _stray_images(folder)
        splits[name] = _read_classes(folder, folder_classes, class_names, skipped, converted)
    splits.update(seeded_split(train, missing, seed, class_names, train_dir))
    return ImageFolderData(
        class_names=class_names,
        splits={name: splits[name] for name in SPLIT_NAMES},
        skipped=tuple(sorted(skipped)),
        split_source="folders",
        carved_splits=tuple(name for name in SPLIT_NAMES if name in missing),
        converted=tuple(sorted(converted)),
    )


def _class_folders(folder):
    """Sorted names of the visible subfolders of `folder`."""
    with os.scandir(folder) as entries:
        names = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
    return tuple(sorted(names))


def _check_class_count(class_names, folder):
    if len(class_names) < 2:
        raise ValueError(
            f"Image folder {folder} needs at least 2 class folders (one "
            f"subfolder of images per class). Received: {list(class_names)}"
        )


def _is_candidate(name):
    # Hidden files (.DS_Store, macOS "._x.jpg" resource forks) are never
    # images a user meant to include, so they are not worth a skip entry.
    return not name.startswith(".") and name.lower().endswith(IMAGE_EXTENSIONS)


def _stray_images(folder):
    """Image files lying directly in `folder`, where no class can be read."""
    with os.scandir(folder) as entries:
        paths = [e.path for e in entries if e.is_file() and _is_candidate(e.name)]
    return [(path, "not inside a class folder") for path in sorted(paths)]


def _scan_class(class_dir):
    """Image-extension files under `class_dir`, and how many others there were."""
    candidates = []
    others = 0
    for dirpath, dirnames, filenames in os.walk(class_dir):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if _is_candidate(name):
                candidates.append(os.path.join(dirpath, name))
            elif not name.startswith("."):
                others += 1
    return sorted(candidates), others


def _read_classes(folder, folder_classes, class_names, skipped, converted, require_all=False):
    """Check every image under `folder`'s class folders into a split.

    Unusable files go to `skipped` and odd usable ones to `converted`
    (appended in place). With `require_all`, a class folder left without
    one usable image is an error.
    """
    found = {name: _scan_class(os.path.join(folder, name)) for name in folder_classes}
    candidates = [path for paths, _ in found.values() for path in paths]
    problems = {}
    title = f"Checking that {len(candidates)} image files in {folder} decode:"
    for path, problem, notes in check_images(candidates, title):
        problems[path] = problem
        if notes:
            converted.append((path, tuple(kind for kind, _ in notes),
                              "; ".join(text for _, text in notes)))
    paths, labels = [], []
    for name, (class_paths, others) in found.items():
        usable = [path for path in class_paths if problems[path] is None]
        bad = [(path, problems[path]) for path in class_paths if problems[path]]
        skipped.extend(bad)
        if require_all and not usable:
            detail = f"{len(bad)} image files skipped"
            if bad:
                detail += f" (first: {bad[0][0]}: {bad[0][1]})"
            if others:
                detail += f", {others} other files ignored"
            raise ValueError(
                f"Class {name!r} has no usable image in "
                f"{os.path.join(folder, name)}: {detail}. Image extensions: "
                f"{', '.join(IMAGE_EXTENSIONS)}."
            )
        paths.extend(usable)
        labels.extend([class_names.index(name)] * len(usable))
    return sorted_split(paths, labels)
