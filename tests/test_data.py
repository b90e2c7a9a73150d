"""Tests for tfx_transfer.data: folder reading, splits, tf.data, weights."""

import io
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tfx_transfer.data import IMAGE_EXTENSIONS
from tfx_transfer.data import Split
from tfx_transfer.data import build_augmentation
from tfx_transfer.data.augment import RandomAffine
from tfx_transfer.data import bundled_data_dir
from tfx_transfer.data import decode_and_resize
from tfx_transfer.data import make_image_dataset
from tfx_transfer.data import read_image_folder
from tfx_transfer.data.class_weights import class_weights


def write_image(path, value=0, size=(8, 8), mode="RGB", fmt=None):
    """Write a small real image whose pixels depend on `value`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    height, width = size
    # A gradient rather than a flat colour, so flips and rotations show.
    ramp = np.add.outer(np.arange(height) * 7, np.arange(width) * 3)
    pixels = ((ramp + value * 37) % 256).astype(np.uint8)
    if mode == "RGB":
        pixels = np.stack([pixels, 255 - pixels, pixels // 2], axis=-1)
    Image.fromarray(pixels, mode=mode).save(path, format=fmt)
    return path


def make_tree(root, counts, order=1):
    """One folder per class with `counts[class]` PNGs; `order` = write order."""
    items = [(c, i) for c, n in counts.items() for i in range(n)]
    for class_name, i in items[::order]:
        write_image(root / class_name / f"{i:03d}.png", value=i)
    return root


def relative(split, root):
    return [os.path.relpath(p, root) for p in split.items]


# read_image_folder: splits


def test_seeded_split_is_deterministic_stratified_and_disjoint(tmp_path):
    counts = {"ant": 20, "bee": 14, "cat": 10}
    root = make_tree(tmp_path / "a", counts)
    data = read_image_folder(root, seed=3)
    again = read_image_folder(root, seed=3)
    other = read_image_folder(root, seed=4)

    assert data.class_names == ("ant", "bee", "cat")
    assert data.split_source == "seeded split"
    assert data.splits == again.splits
    assert data.splits["test"].items != other.splits["test"].items
    seen = set()
    for name in ("train", "val", "test"):
        split = data.splits[name]
        assert all(count > 0 for count in split.class_counts(3)), name
        assert seen.isdisjoint(split.items)
        seen.update(split.items)
        for path, label in zip(split.items, split.labels):
            assert os.path.basename(os.path.dirname(path)) == data.class_names[label]
    assert len(seen) == sum(counts.values())
    assert len(data.splits["test"]) == 7  # ceil(0.15 * 44)

    # The same files written in the opposite order give the same split.
    reversed_root = make_tree(tmp_path / "b", counts, order=-1)
    mirrored = read_image_folder(reversed_root, seed=3)
    for name in ("train", "val", "test"):
        assert relative(mirrored.splits[name], reversed_root) == relative(
            data.splits[name], root
        )


def test_explicit_split_folders_are_used(tmp_path):
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        make_tree(tmp_path / split, {"cat": n, "dog": n})
    data = read_image_folder(tmp_path)
    assert data.split_source == "folders"
    assert data.carved_splits == ()
    assert data.class_names == ("cat", "dog")
    for split, n in (("train", 4), ("val", 2), ("test", 3)):
        assert data.splits[split].class_counts(2) == [n, n]
        assert all(f"{os.sep}{split}{os.sep}" in p for p in data.splits[split].items)


def test_missing_val_folder_is_carved_from_train(tmp_path):
    make_tree(tmp_path / "train", {"cat": 10, "dog": 10})
    make_tree(tmp_path / "test", {"cat": 2, "dog": 2})
    data = read_image_folder(tmp_path, val_fraction=0.2, seed=0)
    assert data.carved_splits == ("val",)
    assert data.splits["val"].class_counts(2) == [2, 2]
    assert data.splits["train"].class_counts(2) == [8, 8]
    assert set(data.splits["val"].items).isdisjoint(data.splits["train"].items)
    assert data.splits["test"].class_counts(2) == [2, 2]
    assert data.report()["carved_splits"] == ["val"]


def test_class_folder_unknown_to_train_is_an_error(tmp_path):
    make_tree(tmp_path / "train", {"cat": 3, "dog": 3})
    make_tree(tmp_path / "val", {"cat": 1, "emu": 1})
    with pytest.raises(ValueError, match="emu"):
        read_image_folder(tmp_path)


# read_image_folder: bad files and bad trees


def test_corrupt_files_are_skipped_and_counted(tmp_path):
    root = make_tree(tmp_path, {"cat": 6, "dog": 6})
    cat = root / "cat"
    (cat / "empty.png").write_bytes(b"")
    noise = np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)
    jpeg = io.BytesIO()
    Image.fromarray(noise).save(jpeg, format="JPEG")
    jpeg_bytes = jpeg.getvalue()
    (cat / "truncated.jpg").write_bytes(jpeg_bytes[: len(jpeg_bytes) // 2])
    (cat / "notes.JPG").write_text("not an image, just text with an image name")
    write_image(cat / "grey.png", value=5, mode="L")
    write_image(cat / "upper.PNG", value=6)
    (cat / "readme.txt").write_text("ignored: not an image extension")
    (cat / ".hidden.png").write_bytes(b"")  # hidden: ignored silently

    data = read_image_folder(root)
    skipped = dict(data.skipped)
    assert set(skipped) == {
        str(cat / "empty.png"),
        str(cat / "truncated.jpg"),
        str(cat / "notes.JPG"),
    }
    assert skipped[str(cat / "empty.png")] == "empty file"
    assert skipped[str(cat / "notes.JPG")].startswith("cannot decode")
    assert skipped[str(cat / "truncated.jpg")].startswith("cannot decode")
    every_path = [p for split in data.splits.values() for p in split.items]
    assert str(cat / "grey.png") in every_path
    assert str(cat / "upper.PNG") in every_path
    assert len(every_path) == 14

    report = json.loads(json.dumps(data.report()))
    assert report["num_skipped"] == 3
    assert dict(report["skipped"]) == skipped
    assert sum(report["totals"].values()) == 14
    assert sum(sum(c.values()) for c in report["counts"].values()) == 14

    grey = decode_and_resize(tf.io.read_file(str(cat / "grey.png")), 8)
    assert grey.shape == (8, 8, 3)


def test_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        read_image_folder(tmp_path / "nowhere")
    make_tree(tmp_path / "one", {"cat": 3})
    with pytest.raises(ValueError, match="at least 2 class folders"):
        read_image_folder(tmp_path / "one")

    root = make_tree(tmp_path / "two", {"cat": 5, "dog": 5})
    (root / "emu").mkdir()
    (root / "emu" / "broken.png").write_bytes(b"")
    with pytest.raises(ValueError, match=r"'emu' has no usable image.*1 image files"):
        read_image_folder(root)


def test_split_too_small_names_the_split_and_a_fraction(tmp_path):
    root = make_tree(tmp_path, {"cat": 4, "dog": 4, "emu": 4})
    with pytest.raises(ValueError, match=r"'test'.*test_fraction=0\.\d\d or more"):
        read_image_folder(root, val_fraction=0.1, test_fraction=0.1)


def test_extensions_are_the_documented_ones():
    assert IMAGE_EXTENSIONS == (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")


# pipeline


def test_decode_and_resize_in_a_serving_function(tmp_path):
    frames = [Image.new("RGB", (10, 6), colour) for colour in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:])

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def serve(image_bytes):
        return decode_and_resize(image_bytes, 4)

    image = serve(tf.io.read_file(str(tmp_path / "anim.gif"))).numpy()
    assert image.shape == (4, 4, 3) and image.dtype == np.float32
    # First frame only: red.
    np.testing.assert_allclose(image[..., 0], 255, atol=1)
    np.testing.assert_allclose(image[..., 2], 0, atol=1)


def test_dataset_shapes_dtypes_and_one_hot_labels(tmp_path):
    root = make_tree(tmp_path, {"cat": 5, "dog": 5, "emu": 3})
    data = read_image_folder(root, val_fraction=0, test_fraction=0)
    train = data.splits["train"]
    dataset = make_image_dataset(train, 16, 4, 3, training=False)
    batches = list(dataset.as_numpy_iterator())
    assert [len(images) for images, _ in batches] == [4, 4, 4, 1]
    images = np.concatenate([images for images, _ in batches])
    labels = np.concatenate([labels for _, labels in batches])
    assert images.shape == (13, 16, 16, 3) and images.dtype == np.float32
    assert labels.shape == (13, 3) and labels.dtype == np.float32
    assert 0 <= images.min() and images.max() <= 255 and images.max() > 1
    np.testing.assert_array_equal(labels.argmax(axis=1), train.labels)
    np.testing.assert_array_equal(labels.sum(axis=1), 1)

    def label_order(dataset):
        return [int(i) for _, y in dataset.as_numpy_iterator() for i in y.argmax(1)]

    assert label_order(dataset) == list(train.labels)
    shuffled = make_image_dataset(train, 16, 4, 3, training=True)
    orders = [label_order(shuffled) for _ in range(3)]
    assert all(sorted(order) == sorted(train.labels) for order in orders)
    assert len({tuple(order) for order in orders}) > 1


def test_augmentation_only_on_the_training_stream(tmp_path):
    # Every file holds the same picture, so shuffling alone changes nothing
    # and any difference between epochs comes from augmentation.
    paths = [str(write_image(tmp_path / f"{i}.png", size=(16, 16))) for i in range(6)]
    split = Split(items=tuple(paths), labels=(0, 1) * 3)
    augmentation = build_augmentation(rotation=0.2, zoom=0.2, contrast=0.3)

    def epoch(dataset):
        return np.concatenate([images for images, _ in dataset.as_numpy_iterator()])

    plain = epoch(make_image_dataset(split, 16, 4, 2, training=False))
    evaluation = make_image_dataset(split, 16, 4, 2, False, augmentation)
    np.testing.assert_array_equal(epoch(evaluation), plain)
    np.testing.assert_array_equal(epoch(evaluation), plain)

    unaugmented = make_image_dataset(split, 16, 4, 2, training=True)
    np.testing.assert_array_equal(epoch(unaugmented), plain)
    training = make_image_dataset(split, 16, 4, 2, True, augmentation)
    first, second = epoch(training), epoch(training)
    assert not np.allclose(first, plain)
    assert not np.allclose(first, second)
    for images in (first, second):
        assert images.min() >= 0 and images.max() <= 255


def test_build_augmentation_turns_off():
    assert build_augmentation(flip=False, rotation=0, zoom=0, contrast=0) is None
    assert [layer.name for layer in build_augmentation().layers][0] == "random_affine"
    assert len(build_augmentation().layers) == 2
    assert len(build_augmentation(zoom=0, contrast=0).layers) == 1
    assert len(build_augmentation(flip=False, rotation=0, zoom=0).layers) == 1
    with pytest.raises(ValueError, match="rotation=-0.1"):
        build_augmentation(rotation=-0.1)


def random_images(n=32, size=17, seed=0):
    return np.random.default_rng(seed).uniform(0, 255, (n, size, size, 3)).astype("float32")


def test_random_affine_flip_mirrors_some_images_exactly():
    images = random_images()
    out = np.asarray(RandomAffine(flip=True, seed=3)(images, training=True))
    same = [np.allclose(o, i, atol=1e-3) for o, i in zip(out, images)]
    mirrored = [np.allclose(o, i[:, ::-1], atol=1e-3) for o, i in zip(out, images)]
    assert all(s != m for s, m in zip(same, mirrored))  # Each image: one or the other.
    assert 0 < sum(mirrored) < len(images)


def test_random_affine_rotates_and_zooms_about_the_centre():
    images = random_images()
    out = np.asarray(RandomAffine(flip=False, rotation=0.1, zoom=0.2, seed=1)(images, training=True))
    np.testing.assert_allclose(out[:, 8, 8], images[:, 8, 8], atol=1e-2)
    assert not np.allclose(out, images)
    assert out.min() >= 0 and out.max() <= 255  # Reflection fill: no new values.


def test_random_affine_is_identity_unless_training_and_saves():
    images = random_images(4)
    layer = RandomAffine(flip=True, rotation=0.1, zoom=0.1, seed=1)
    np.testing.assert_array_equal(layer(images, training=False), images)
    still = RandomAffine(flip=False, rotation=0, zoom=0)(images, training=True)
    np.testing.assert_allclose(still, images, atol=1e-3)
    model = build_augmentation(seed=5)
    again = keras.Sequential.from_config(model.get_config())
    assert again.layers[0].get_config() == model.layers[0].get_config()


# class weights


def test_class_weights():
    assert class_weights([0, 1, 2] * 5, num_classes=3) is None
    assert class_weights([0] * 6 + [1] * 4, num_classes=2) is None  # 1.5: not above
    weights = class_weights([0] * 9 + [1] * 3, num_classes=2)
    assert weights == pytest.approx({0: 12 / 18, 1: 12 / 6})
    assert weights[1] > weights[0]
    with pytest.raises(ValueError, match=r"\[2\]"):
        class_weights([0, 1, 1], num_classes=3)


# bundled data


def test_bundled_fashion_mnist_reads_without_skips():
    root = bundled_data_dir()
    data = read_image_folder(root)
    assert data.num_classes == 10
    assert data.skipped == ()
    report = data.report()
    for class_name in data.class_names:
        per_split = [report["counts"][s][class_name] for s in data.splits]
        assert sum(per_split) == 100 and min(per_split) > 0
    assert {s: len(split) for s, split in data.splits.items()} == {
        "train": 700,
        "val": 150,
        "test": 150,
    }
    with pytest.raises(ValueError, match="pip install -e"):
        bundled_data_dir("no_such_set")
