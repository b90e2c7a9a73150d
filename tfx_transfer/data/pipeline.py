"""tf.data pipelines that turn a `Split` of image paths into training batches."""

import tensorflow as tf

from tfx_transfer.data import image_header, orientation

# Raised whenever `decode_and_resize` gives other pixels for the same bytes
# (2: EXIF orientation), so cached backbone features of the old pixels are
# not reused.
DECODER_VERSION = 2


def decode_and_resize(image_bytes, image_size):
    """Decode encoded image bytes into a float32 RGB image of a fixed size.

    JPEG (CMYK too), PNG (16-bit too), BMP, GIF (first frame) and WebP are
    decoded; grey and RGBA images become 3-channel RGB (alpha dropped), and
    a JPEG is turned upright by its EXIF orientation, as photo viewers show
    it. An image whose header promises more than `image_header.MAX_PIXELS`
    pixels (a decompression bomb) raises InvalidArgumentError before it is
    decoded. Only core TensorFlow ops are used, so the same function runs in
    tf.data, in eager code and inside an exported serving `tf.function` on
    a scalar string tensor.

    Args:
        image_bytes: scalar string tensor. the encoded image file.
        image_size: int. output height and width in pixels.

    Returns:
        A float32 tensor of shape `[image_size, image_size, 3]` with values
        in 0..255, resized with bilinear interpolation.

    Example:

    ```python
    image = decode_and_resize(tf.io.read_file("cat.jpg"), 224)
    image.shape  # TensorShape([224, 224, 3])
    ```
    """
    # A header promising more than `image_header.MAX_PIXELS` is refused undecoded.
    image = tf.io.decode_image(image_header.check_pixels(image_bytes), channels=3,
                               expand_animations=False)
    # decode_image cannot know the rank inside a graph when animations are
    # folded away; resize needs it.
    image.set_shape([None, None, 3])
    image = tf.image.resize(image, (image_size, image_size), method="bilinear")
    # Turned after the resize: to a square, the two commute, and a small
    # image turns for a fraction of what the decoded photo would cost.
    return orientation.upright(image, orientation.exif_orientation(image_bytes))


def batched(dataset, batch_size, shuffle_seed=None):
    """Shuffles (when given a seed), batches and prefetches: every pipeline's tail.

    Args:
        dataset: tf.data.Dataset of single examples, of known length.
        batch_size: int. Examples per batch; the last batch may be smaller.
        shuffle_seed: int or None. For a training stream, the seed of a
            full-length shuffle redrawn every epoch; None keeps the order.

    Returns:
        A batched, prefetching `tf.data.Dataset`.

    Example:

    >>> batched(tf.data.Dataset.range(5), 2, shuffle_seed=0).cardinality().numpy()
    3
    """
    if shuffle_seed is not None:
        size = int(dataset.cardinality())
        dataset = dataset.shuffle(size, shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def make_image_dataset(
    split,
    image_size,
    batch_size,
    num_classes,
    training,
    augmentation=None,
    seed=42,
    cache=True,
    deterministic=False,
    shuffle=True,
):
    """Build a batched `tf.data.Dataset` of images and one-hot labels.

    Files are read and decoded in parallel and (with `cache`) the decoded,
    resized images are kept in memory, so later epochs skip the decoding.
    For training the examples are shuffled anew every epoch and
    `augmentation` is applied to each batch after the cache, so each epoch
    sees fresh random transforms. For evaluation the order is the split's
    own and nothing random happens.

    Args:
        split: `Split`. the image file paths and integer labels to read.
        image_size: int. height and width of the output images.
        batch_size: int. examples per batch; the last batch may be smaller.
        num_classes: int. length of the one-hot label vectors.
        training: bool. shuffle and augment when True.
        augmentation: callable or None. a Keras model such as
            `build_augmentation()`'s, called as `augmentation(x,
            training=True)` on each training batch.
        seed: int. seed of the shuffle.
        cache: bool. keep decoded images in memory after the first pass.
        deterministic: bool. augment one batch at a time, so the random
            draws fall on the same batches in every run (parallel calls
            would take them in whatever order the threads run).
        shuffle: bool. with `training`, shuffle; False keeps the split's
            order in every pass, so that the cached views of an image
            line up (few-shot mode cross-validates by image).

    Returns:
        A `tf.data.Dataset` of `(images, labels)`: float32
        `[batch, image_size, image_size, 3]` images in 0..255 and float32
        `[batch, num_classes]` one-hot labels, which label smoothing in
        `CategoricalCrossentropy` can use directly.

    Example:

    ```python
    data = read_image_folder("data/fashion_mnist")
    train_ds = make_image_dataset(
        data.splits["train"], 224, 32, data.num_classes, training=True,
        augmentation=build_augmentation(),
    )
    ```
    """
    if batch_size < 1:
        raise ValueError(
            f"`batch_size` must be at least 1. Received: batch_size={batch_size}"
        )
    if num_classes < 1:
        raise ValueError(
            f"`num_classes` must be at least 1. Received: num_classes={num_classes}"
        )

    def load(path, label):
        image = decode_and_resize(tf.io.read_file(path), image_size)
        return image, tf.one_hot(label, num_classes, dtype=tf.float32)

    shuffle = shuffle and training and len(split) > 1
    # Typed: an empty split (few-shot mode's validation) has no values to infer from.
    dataset = tf.data.Dataset.from_tensor_slices((
        tf.constant(list(split.items), tf.string), tf.constant(split.labels, dtype=tf.int32)))
    if shuffle and not cache:
        # Without a cache, shuffling the paths is as good and far cheaper than
        # holding a buffer of decoded images.
        dataset = dataset.shuffle(len(split), seed, reshuffle_each_iteration=True)
    dataset = dataset.map(
        load, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    if cache:
        dataset = dataset.cache()
        if shuffle:
            dataset = dataset.shuffle(
                len(split), seed, reshuffle_each_iteration=True
            )
    dataset = dataset.batch(batch_size)
    if training and augmentation is not None:
        dataset = dataset.map(
            lambda images, labels: (augmentation(images, training=True), labels),
            num_parallel_calls=None if deterministic else tf.data.AUTOTUNE,
        )
    return dataset.prefetch(tf.data.AUTOTUNE)
