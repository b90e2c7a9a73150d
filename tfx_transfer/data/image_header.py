"""An encoded image's size read from its header inside the graph, before anything decodes it.

A few kilobytes of PNG can promise 30000 x 30000 pixels, which the decoder
would allocate (2.7 GB as RGB) before finding out whether the request
was worth it. The header states the size in the first bytes of every
format TensorFlow decodes, so the serving function refuses such an image
with core string ops, before the decode. The training data is checked
the same way, with Pillow, when its folder is read (`image_check`).
"""

import tensorflow as tf

# Pillow's own decompression-bomb threshold (a 9459 x 9459 image).
MAX_PIXELS = 89_478_485
_PADDING = b"\x00" * 32


def read_integer(buffer, position, dtype, little_endian):
    """The integer of `dtype` (uint16 or int32) at byte `position` of `buffer`, as int64.

    Args:
        buffer: scalar string tensor, at least `position + dtype.size` bytes.
        position: int or scalar int tensor.
        dtype: tf.uint16 or tf.int32.
        little_endian: bool or scalar bool tensor: the byte order.
    """
    raw = tf.strings.substr(buffer, position, dtype.size)
    little = tf.io.decode_raw(raw, dtype, little_endian=True)[0]
    big = tf.io.decode_raw(raw, dtype, little_endian=False)[0]
    return tf.cast(tf.where(little_endian, little, big), tf.int64)


def _starts(buffer, position, magic):
    return tf.equal(tf.strings.substr(buffer, position, len(magic)), magic)


def header_pixels(image_bytes):
    """The pixel count an encoded image's header promises; 0 when it cannot tell.

    JPEG (its frame header, wherever it lies), PNG, GIF, BMP and WebP (lossy,
    lossless and extended) are read; anything else gives 0, and the
    decoder then says what is wrong with it.

    Args:
        image_bytes: scalar string tensor. An encoded image file.

    Returns:
        A scalar int64 tensor.

    Example:

    >>> png = tf.io.encode_png(tf.zeros((3, 5, 3), tf.uint8))
    >>> int(header_pixels(png))
    15
    """
    buffer = tf.strings.join([tf.strings.substr(image_bytes, 0, 32), _PADDING])
    little, big = tf.constant(True), tf.constant(False)

    def u16(position, little_endian):
        return read_integer(buffer, position, tf.uint16, little_endian)

    def u32(position, little_endian):
        # An int32 read: a size past 2**31 is refused as negative -> abs below.
        return tf.abs(read_integer(buffer, position, tf.int32, little_endian))

    def jpeg():
        shape = tf.image.extract_jpeg_shape(image_bytes, output_type=tf.int64)
        return shape[0] * shape[1]

    vp8l = u32(21, little)
    webp = _starts(buffer, 8, b"WEBP")
    # The formats' magic bytes exclude each other; every size is a few
    # arithmetic ops on 32 bytes, so all are computed and one is picked.
    sizes = (
        (_starts(buffer, 1, b"PNG"), u32(16, big) * u32(20, big)),
        (_starts(buffer, 0, b"GIF8"), u16(6, little) * u16(8, little)),
        (_starts(buffer, 0, b"BM"), u32(18, little) * u32(22, little)),
        (tf.logical_and(webp, _starts(buffer, 12, b"VP8X")),
         (1 + u16(24, little) + 65536 * (u16(26, little) % 256))
         * (1 + u16(27, little) + 65536 * (u16(29, little) % 256))),
        (tf.logical_and(webp, _starts(buffer, 12, b"VP8L")),
         (1 + vp8l % 16384) * (1 + (vp8l // 16384) % 16384)),
        (tf.logical_and(webp, _starts(buffer, 12, b"VP8 ")),
         (u16(26, little) % 16384) * (u16(28, little) % 16384)),
    )
    pixels = tf.constant(0, tf.int64)
    for matches, count in sizes:
        pixels = tf.where(matches, count, pixels)
    # A JPEG's frame header may lie anywhere after its other segments: its own op finds it.
    return tf.cond(_starts(buffer, 0, b"\xff\xd8"), jpeg, lambda: pixels)


def check_pixels(image_bytes, max_pixels=MAX_PIXELS):
    """Raises InvalidArgumentError when the header promises more than `max_pixels` pixels.

    Returns:
        `image_bytes`, to decode once the check has run.

    Example:

    >>> png = tf.io.encode_png(tf.zeros((300, 200, 3), tf.uint8))
    >>> check_pixels(png, max_pixels=1000)
    Traceback (most recent call last):
    ...
    tensorflow.python.framework.errors_impl.InvalidArgumentError: ...
    """
    pixels = header_pixels(image_bytes)
    checked = tf.debugging.assert_less_equal(
        pixels, tf.constant(max_pixels, tf.int64),
        message=f"Refused as a likely decompression bomb: the image header promises more "
                f"than {max_pixels} pixels.")
    with tf.control_dependencies([checked]):
        return tf.identity(image_bytes)
