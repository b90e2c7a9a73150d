"""EXIF orientation read inside the graph, so phone photos are seen upright.

Cameras store a JPEG as the sensor saw it and record in the EXIF
`Orientation` tag (0x0112) how to turn it upright; `tf.io.decode_image`
ignores the tag. Reading it with core string ops (no Python, no Pillow)
lets the same code run in the training pipeline and in the exported
serving function, so a model is trained and served on the same upright
pixels.
"""

import tensorflow as tf

ORIENTATION_TAG = 0x0112
# The APP1 segment holding EXIF comes first or after APP0 (JFIF); a segment
# is at most 64 KiB, so the marker always starts within this many bytes.
_SEARCH_BYTES = 65536
_MAX_ENTRIES = 64
_PADDING = b"\x00" * (2 + 12 * _MAX_ENTRIES)


def _integer(buffer, position, dtype, little_endian):
    """The integer of `dtype` at byte `position` of `buffer`, in either byte order."""
    raw = tf.strings.substr(buffer, position, dtype.size)
    little = tf.io.decode_raw(raw, dtype, little_endian=True)[0]
    big = tf.io.decode_raw(raw, dtype, little_endian=False)[0]
    return tf.cast(tf.where(little_endian, little, big), tf.int32)


def exif_orientation(image_bytes):
    """The EXIF orientation (1 to 8) of encoded image bytes; 1 when there is none.

    Only JPEG files are read (PNG and WebP rarely carry the tag, and their
    readers ignore it too). Malformed EXIF data gives 1, never an error.

    Args:
        image_bytes: scalar string tensor. An encoded image file.

    Returns:
        A scalar int32 tensor in 1..8.

    Example:

    >>> int(exif_orientation(tf.constant(b"\\x89PNG\\r\\n\\x1a\\n")))
    1
    """
    head = tf.strings.substr(image_bytes, 0, _SEARCH_BYTES)
    before = tf.strings.split(head, sep=b"Exif\x00\x00", maxsplit=1)
    found = tf.logical_and(tf.equal(tf.strings.substr(head, 0, 2), b"\xff\xd8"),
                           tf.size(before) == 2)
    # Every read below stays inside `buffer`: positions are clamped to its
    # unpadded length and the padding covers the longest read.
    buffer = tf.strings.join([head, _PADDING])
    end = tf.strings.length(head)
    tiff = tf.minimum(tf.strings.length(before[0]) + 6, end)
    little_endian = tf.equal(tf.strings.substr(buffer, tiff, 2), b"II")
    # A 4-byte offset read as int32: one past 2 GiB is garbage anyway.
    ifd = tf.clip_by_value(tiff + _integer(buffer, tiff + 4, tf.int32, little_endian), 0, end)
    count = tf.minimum(_integer(buffer, ifd, tf.uint16, little_endian), _MAX_ENTRIES)
    entries = tf.strings.substr(buffer, ifd + 2, 12 * _MAX_ENTRIES)
    little = tf.reshape(tf.io.decode_raw(entries, tf.uint16, little_endian=True), (-1, 6))
    big = tf.reshape(tf.io.decode_raw(entries, tf.uint16, little_endian=False), (-1, 6))
    # Each 12-byte entry: tag, type, count (2 words), value; a SHORT value
    # sits in the value field's first two bytes in either byte order.
    fields = tf.cast(tf.where(little_endian, little, big), tf.int32)
    matches = tf.logical_and(tf.equal(fields[:, 0], ORIENTATION_TAG),
                             tf.range(_MAX_ENTRIES) < count)
    value = tf.reduce_max(tf.where(matches, fields[:, 4], 0))
    valid = tf.logical_and(found, tf.logical_and(value >= 1, value <= 8))
    return tf.where(valid, value, 1)


def _transpose(image):
    return tf.transpose(image, (1, 0, 2))


# Orientation n turns upright with _UPRIGHT[n - 1], as Pillow's exif_transpose does.
_UPRIGHT = (
    lambda image: image,
    lambda image: image[:, ::-1],  # mirrored
    lambda image: image[::-1, ::-1],  # rotated 180
    lambda image: image[::-1],  # mirrored vertically
    _transpose,
    lambda image: tf.image.rot90(image, k=3),  # rotated 90 counter-clockwise
    lambda image: _transpose(image)[::-1, ::-1],
    lambda image: tf.image.rot90(image, k=1),  # rotated 90 clockwise
)


def upright(image, orientation):
    """Turns a decoded `[H, W, C]` image upright for its EXIF `orientation` (1 to 8).

    Example:

    >>> image = tf.reshape(tf.range(6), (2, 3, 1))
    >>> upright(image, tf.constant(6)).shape
    TensorShape([3, 2, 1])
    """
    branches = [lambda turn=turn: turn(image) for turn in _UPRIGHT]
    return tf.switch_case(orientation - 1, branches)
