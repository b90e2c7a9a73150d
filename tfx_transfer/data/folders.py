"""Read a folder-per-class image tree into labelled, stratified splits."""

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor

import tensorflow as tf

from tfx_transfer.config import check_fractions
from tfx_transfer.data.splits import (
    SPLIT_NAMES,
    LabelledData,
    seeded_split,
    sorted_split,
)
from tfx_transfer.progress import bar

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")


@dataclasses.dataclass(frozen=True)
class ImageFolderData(LabelledData):
    """Class names, train/val/test splits and skipped files of an image tree.

    Args:
        class_names: tuple of str. class names; a label is an index into it.
        splits: dict. `"train"`, `"val"` and `"test"` mapped to `Split`s
            whose items are image file paths.
        skipped: tuple of `(path, reason)` pairs. files with an image
            extension that TensorFlow could not decode.
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
    with the reason instead of stopping the run.

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
    skipped = _stray_images(root)
    whole = _read_classes(root, class_names, class_names, skipped, True)
    fractions = {"test": test_fraction, "val": val_fraction}
    splits = seeded_split(whole, fractions, seed, class_names, root)
    return ImageFolderData(
        class_names=class_names,
        splits={name: splits[name] for name in SPLIT_NAMES},
        skipped=tuple(sorted(skipped)),
        split_source="seeded split",
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
    skipped = _stray_images(root) + _stray_images(train_dir)
    train = _read_classes(train_dir, class_names, class_names, skipped, True)
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
        splits[name] = _read_classes(folder, folder_classes, class_names, skipped)
    splits.update(seeded_split(train, missing, seed, class_names, train_dir))
    return ImageFolderData(
        class_names=class_names,
        splits={name: splits[name] for name in SPLIT_NAMES},
        skipped=tuple(sorted(skipped)),
        split_source="folders",
        carved_splits=tuple(name for name in SPLIT_NAMES if name in missing),
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


def _decode_problem(path):
    """Why TensorFlow cannot decode `path` as an image, or None if it can."""
    try:
        if os.path.getsize(path) == 0:
            return "empty file"
        image = tf.io.decode_image(
            tf.io.read_file(path), channels=3, expand_animations=False
        )
    except tf.errors.OpError as error:
        return f"cannot decode: {_short_message(error.message)}"
    except OSError as error:
        return f"cannot read: {error.strerror or error}"
    if image.shape[0] == 0 or image.shape[1] == 0:
        return f"image has no pixels (shape {tuple(image.shape)})"
    return None


def _short_message(message):
    # Eager op errors carry "{{function_node ...}} " in front and
    # " [Op:DecodeImage]" behind; neither helps someone fixing a file.
    if message.startswith("{{"):
        message = message.split("}} ", 1)[-1]
    return message.split(" [Op:", 1)[0].strip()


def _read_classes(folder, folder_classes, class_names, skipped, require_all=False):
    """Decode-check every image under `folder`'s class folders into a split.

    Unusable files go to `skipped` (appended in place). With `require_all`,
    a class folder left without one usable image is an error.
    """
    found = {name: _scan_class(os.path.join(folder, name)) for name in folder_classes}
    candidates = [path for paths, _ in found.values() for path in paths]
    checking = bar(len(candidates), f"Checking that {len(candidates)} image files in "
                   f"{folder} decode:", unit_name="image") if candidates else None
    problems = {}
    # TF kernels release the GIL, so threads overlap file reads and decodes;
    # for small images the eager op overhead dominates and this costs nothing.
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    try:
        for done, (path, problem) in enumerate(
                zip(candidates, pool.map(_decode_problem, candidates)), 1):
            problems[path] = problem
            if checking is not None:
                checking.update(done)
    finally:
        # On Ctrl-C, stop at once rather than decode the rest of the folder first.
        pool.shutdown(cancel_futures=True)
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
