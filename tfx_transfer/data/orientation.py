"""EXIF orientation read inside the graph, so phone photos are seen upright.

Cameras store a JPEG as the sensor saw it and record in the EXIF
`Orientation` tag (0x0112) how to turn it upright; `tf.io.decode_image`
ignores the tag. Reading it with core string ops (no Python, no Pillow)
lets the same code run in the training pipeline and in the exported
serving function, so a model is trained and served on the same upright
pixels.
"""

import tensorflow as tf

from tfx_transfer.data.image_header import read_integer

ORIENTATION_TAG = 0x0112
_MAX_ENTRIES = 64
# Enough for an APP0 segment (at most 64 KiB), the EXIF header and the
# first IFD, wherever the reads below land.
_HEAD_BYTES = 4 + 65536 + 32 + 12 * _MAX_ENTRIES
_PADDING = b"\x00" * (16 + 12 * _MAX_ENTRIES)


def _integer(buffer, position, dtype, little_endian):
    return tf.cast(read_integer(buffer, position, dtype, little_endian), tf.int32)


def _exif_start(buffer):
    """Where the TIFF header of a JPEG's EXIF segment starts in `buffer`, or -1.

    The EXIF standard puts its APP1 segment right after the start-of-image
    marker, or after a JFIF APP0 segment; files that put it elsewhere are
    read as unrotated, as most decoders read every file.
    """
    end = tf.strings.length(buffer) - len(_PADDING)
    app0 = tf.equal(tf.strings.substr(buffer, 2, 2), b"\xff\xe0")
    segment = tf.where(app0, 4 + _integer(buffer, 4, tf.uint16, tf.constant(False)), 2)
    segment = tf.minimum(segment, end)  # A short file: the reads land in the padding.
    found = tf.logical_and(
        tf.equal(tf.strings.substr(buffer, 0, 2), b"\xff\xd8"),
        tf.logical_and(tf.equal(tf.strings.substr(buffer, segment, 2), b"\xff\xe1"),
                       tf.equal(tf.strings.substr(buffer, segment + 4, 6), b"Exif\x00\x00")))
    return tf.where(found, segment + 10, -1)


def _tagged_orientation(buffer, tiff):
    """The Orientation tag's value in the first IFD of the TIFF header at `tiff`; 0 if none."""
    end = tf.strings.length(buffer) - len(_PADDING)
    little_endian = tf.equal(tf.strings.substr(buffer, tiff, 2), b"II")
    # A 4-byte offset read as int32: one past 2 GiB is garbage anyway. Every
    # read stays inside `buffer`: positions are clamped, the padding covers the rest.
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
    return tf.reduce_max(tf.where(matches, fields[:, 4], 0))


def exif_orientation(image_bytes):
    """The EXIF orientation (1 to 8) of encoded image bytes; 1 when there is none.

    Only JPEG files are read (PNG and WebP rarely carry the tag, and their
    readers ignore it too). Malformed EXIF data gives 1, never an error. A
    file without EXIF costs a few byte comparisons.

    Args:
        image_bytes: scalar string tensor. An encoded image file.

    Returns:
        A scalar int32 tensor in 1..8.

    Example:

    >>> int(exif_orientation(tf.constant(b"\\x89PNG\\r\\n\\x1a\\n")))
    1
    """
    buffer = tf.strings.join([tf.strings.substr(image_bytes, 0, _HEAD_BYTES), _PADDING])
    tiff = _exif_start(buffer)
    value = tf.cond(tiff >= 0, lambda: _tagged_orientation(buffer, tiff), lambda: 0)
    return tf.where(tf.logical_and(value >= 1, value <= 8), value, 1)


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
