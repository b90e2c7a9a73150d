"""Check one image file before training: usable or not, and what is odd about it.

TensorFlow's decoder is the judge of what training can read, since training
and serving decode with it. Pillow reads only the file's header first, so a
decompression bomb is refused before anything decodes it, and so the odd
formats that the decoder converts (CMYK, 16-bit, palettes, animations,
EXIF rotation, a misleading extension) are named and counted in the run's
data report instead of passing unseen.
"""

import os
import re
import warnings
from concurrent.futures import ThreadPoolExecutor

import tensorflow as tf
from PIL import Image, UnidentifiedImageError

from tfx_transfer.data import image_header
from tfx_transfer.progress import tracked

# An 8000 x 8000 photo passes, a PNG that inflates to gigabytes does not; the
# serving function refuses the same (`image_header`).
MAX_PIXELS = image_header.MAX_PIXELS
# Which formats each extension promises, for the mismatch note.
_FORMATS_OF_EXTENSION = {
    ".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".gif": "GIF",
    ".webp": "WEBP",
}
_TINY_SIDE = 8
_HUGE_SIDE = 4096


def check_images(paths, title, max_pixels=MAX_PIXELS):
    """Checks image files in parallel behind a progress bar; yields `(path, problem, notes)`.

    Args:
        paths: list of str. The files, yielded back in this order.
        title: str. The progress bar's title.
        max_pixels: int. Larger images are refused undecoded.

    Example:

    >>> [problem for _, problem, _ in check_images([os.devnull], "Checking:")]
    Checking:
    1/1 - ...
    ['empty file']
    """
    if not paths:
        return
    # TF kernels release the GIL, so threads overlap file reads and decodes;
    # for small images the eager op overhead dominates and this costs nothing.
    pool = ThreadPoolExecutor(max_workers=os.cpu_count() or 1)
    try:
        with warnings.catch_warnings():
            # Pillow warns between one and two times its own bomb limit, and
            # MAX_PIXELS refuses those. Set here, in one thread: the filters are global.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            results = pool.map(lambda path: check_image(path, max_pixels), paths)
            for path, (problem, notes) in tracked(zip(paths, results), len(paths), title,
                                                  "image"):
                yield path, problem, notes
    finally:
        # On Ctrl-C, stop at once rather than decode the rest of the folder first.
        pool.shutdown(cancel_futures=True)


def check_image(path, max_pixels=MAX_PIXELS):
    """Says whether training can use an image file, and what conversions it needs.

    Args:
        path: str. The image file.
        max_pixels: int. Larger images are refused undecoded.

    Returns:
        A `(problem, notes)` pair: `problem` is why the file is unusable, or
        None; `notes` is a tuple of `(kind, description)` pairs, the
        odd-format conversions a usable file goes through (e.g.
        `("CMYK", "CMYK JPEG converted to RGB")`).

    Example:

    >>> check_image(os.devnull)
    ('empty file', ())
    """
    try:
        if os.path.getsize(path) == 0:
            return "empty file", ()
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError as error:
        return f"cannot read: {error.strerror or error}", ()
    notes = ()
    try:
        notes, pixels = _header_notes(path, head)
    except Image.DecompressionBombError as error:
        # Pillow refuses past twice its own limit, naming the size in its message.
        found = re.search(r"\((\d+) pixels\)", str(error))
        notes, pixels = (), int(found.group(1)) if found else max_pixels + 1
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        # Not for Pillow; TensorFlow's decoder below has the last word.
        pixels = 0
    if pixels > max_pixels:
        return (f"refused as a likely decompression bomb: {pixels:,} pixels is over the "
                f"limit of {max_pixels:,}"), ()
    problem = _decode_problem(path)
    if problem and not notes:
        problem += _sniffed(head)
    return problem, (() if problem else notes)


def _header_notes(path, head):
    """Odd-format notes and the pixel count, from the header alone (nothing decoded)."""
    with Image.open(path) as image:
        fmt, mode, (width, height) = image.format, image.mode, image.size
        frames = getattr(image, "n_frames", 1)
        orientation = image.getexif().get(0x0112, 1) if fmt == "JPEG" else 1
        alpha = mode in ("RGBA", "LA", "La", "PA") or "transparency" in image.info
    notes = []
    expected = _FORMATS_OF_EXTENSION.get(os.path.splitext(path)[1].lower())
    if expected and fmt != expected:
        notes.append(("extension mismatch",
                      f"{fmt} file named {os.path.splitext(path)[1]}, read as {fmt}"))
    if mode == "CMYK":
        notes.append(("CMYK", f"CMYK {fmt} converted to RGB"))
    if fmt == "PNG" and head[24:25] == b"\x10":  # IHDR's bit depth
        notes.append(("16-bit", "16-bit PNG reduced to 8 bits"))
    if alpha:
        kind = {"P": "palette", "PA": "palette", "L": "greyscale", "LA": "greyscale",
                "La": "greyscale"}.get(mode, mode)
        notes.append(("transparency", f"{kind} {fmt} with transparency, alpha dropped"))
    if frames > 1:
        notes.append(("animated", f"animated {fmt}, first of {frames} frames used"))
    if orientation in range(2, 9):
        notes.append(("EXIF rotation", f"EXIF orientation {orientation}, turned upright"))
    if fmt == "WEBP":
        notes.append(("WebP", "WebP decoded"))
    if min(width, height) < _TINY_SIDE:
        notes.append(("tiny", f"tiny image ({width}x{height} pixels), upscaled"))
    if max(width, height) > _HUGE_SIDE:
        notes.append(("very large", f"very large image ({width}x{height} pixels), downscaled"))
    return tuple(notes), width * height


def _decode_problem(path):
    """Why TensorFlow cannot decode `path` as an image, or None if it can."""
    try:
        image = tf.io.decode_image(tf.io.read_file(path), channels=3,
                                   expand_animations=False)
    except tf.errors.OpError as error:
        return f"cannot decode: {_short_message(error.message)}"
    if image.shape[0] == 0 or image.shape[1] == 0:
        return f"image has no pixels (shape {tuple(image.shape)})"
    return None


def _short_message(message):
    # Eager op errors carry "{{function_node ...}} " in front and
    # " [Op:DecodeImage]" behind; neither helps someone fixing a file.
    if message.startswith("{{"):
        message = message.split("}} ", 1)[-1]
    return message.split(" [Op:", 1)[0].strip()


def _sniffed(head):
    """What an undecodable file seems to be, from its first bytes: ' (HTML text)'."""
    start = head.lstrip().lower()
    if start.startswith((b"<!doctype html", b"<html", b"<head", b"<body")):
        return " (the file is HTML text, not an image)"
    if start.startswith(b"pk\x03\x04"):
        return " (the file is a ZIP archive, not an image)"
    if head and all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head):
        return " (the file is plain text, not an image)"
    return ""
