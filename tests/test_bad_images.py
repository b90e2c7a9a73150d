"""A folder of broken and odd image files: the broken named and skipped, the odd used.

Every file here is real (written by Pillow or by hand, byte for byte), and
nothing is mocked: the reader and the decoder see what a user's folder of
scraped or phone photos would give them.
"""

import io
import json
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image, ImageOps

from conftest import bomb_png
from harness import train_tiny
from tfx_transfer.config import DataConfig, StageConfig
from tfx_transfer.data import decode_and_resize, read_image_folder
from tfx_transfer.data.image_header import header_pixels
from tfx_transfer.data.orientation import exif_orientation

COLOURS = {"red": (210, 40, 40), "teal": (30, 160, 150)}


def _pixels(colour, size=(24, 32), seed=0):
    noise = np.random.default_rng(seed).integers(-30, 30, size + (3,))
    return np.clip(np.array(colour) + noise, 0, 255).astype("uint8")


def _jpeg(pixels, **options):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=95, **options)
    return buffer.getvalue()


def write_odd_images(folder, colour):
    """Usable files in odd formats; returns {file name: the conversion kind expected}."""
    folder.mkdir(parents=True, exist_ok=True)
    image = Image.fromarray(_pixels(colour))
    image.convert("CMYK").save(folder / "cmyk.jpg", quality=95)
    sixteen = (np.asarray(image.convert("L"), np.uint16) * 257)
    Image.fromarray(sixteen).save(folder / "sixteen_bit.png")
    image.convert("P").save(folder / "palette_alpha.png", transparency=0)
    image.convert("LA").save(folder / "grey_alpha.png")
    image.save(folder / "animated.gif", save_all=True,
               append_images=[Image.new("RGB", image.size, "white")])
    exif = image.getexif()
    exif[0x0112] = 6
    (folder / "rotated.jpg").write_bytes(_jpeg(np.asarray(image), exif=exif))
    image.save(folder / "photo.webp", quality=95)
    image.resize((1, 1)).save(folder / "one_pixel.png")
    Image.new("RGB", (8000, 8000), colour).save(folder / "huge.jpg", quality=80)
    image.save(folder / "really_a_png.jpg", format="PNG")
    return {"cmyk.jpg": "CMYK", "sixteen_bit.png": "16-bit",
            "palette_alpha.png": "transparency", "grey_alpha.png": "transparency",
            "animated.gif": "animated", "rotated.jpg": "EXIF rotation", "photo.webp": "WebP",
            "one_pixel.png": "tiny", "huge.jpg": "very large",
            "really_a_png.jpg": "extension mismatch"}


def write_bad_files(folder, colour):
    """Unusable files; returns {file name: a part of the reason the report must give}."""
    folder.mkdir(parents=True, exist_ok=True)
    jpeg = _jpeg(_pixels(colour, (64, 64)))
    png = io.BytesIO()
    Image.fromarray(_pixels(colour)).save(png, "PNG")
    (folder / "truncated.jpg").write_bytes(jpeg[: len(jpeg) // 2])
    (folder / "zero_bytes.png").write_bytes(b"")
    (folder / "notes.jpg").write_text("a caption someone saved with an image name\n")
    (folder / "error_page.png").write_text("<!DOCTYPE html><html><body>404</body></html>")
    (folder / "png_header_then_garbage.png").write_bytes(png.getvalue()[:33] + bytes(range(256)) * 4)
    (folder / "bomb.png").write_bytes(bomb_png(30000, 30000))
    (folder / "wide_bomb.png").write_bytes(bomb_png(12000, 9000))
    return {"truncated.jpg": "cannot decode", "zero_bytes.png": "empty file",
            "notes.jpg": "plain text, not an image", "error_page.png": "HTML text",
            "png_header_then_garbage.png": "cannot decode", "bomb.png": "decompression bomb",
            "wide_bomb.png": "decompression bomb"}


@pytest.fixture(scope="module")
def messy_folder(tmp_path_factory):
    """Two classes of 16 plain PNGs each, plus the odd and the bad files in each."""
    root = tmp_path_factory.mktemp("messy")
    expected = {"odd": {}, "bad": {}}
    for index, (name, colour) in enumerate(COLOURS.items()):
        (root / name).mkdir()
        for i in range(16):
            Image.fromarray(_pixels(colour, seed=i + 100 * index)).save(root / name / f"{i:02d}.png")
        for file, kind in write_odd_images(root / name / "odd", colour).items():
            expected["odd"][str(root / name / "odd" / file)] = kind
        for file, reason in write_bad_files(root / name / "bad", colour).items():
            expected["bad"][str(root / name / "bad" / file)] = reason
    return root, expected


def test_bad_files_are_named_and_odd_ones_used(messy_folder):
    root, expected = messy_folder
    data = read_image_folder(root, val_fraction=0.2, test_fraction=0.2, seed=0)

    skipped = dict(data.skipped)
    assert set(skipped) == set(expected["bad"])
    for path, reason in expected["bad"].items():
        assert reason in skipped[path], (path, skipped[path])
    used = {path for split in data.splits.values() for path in split.items}
    assert len(used) == 2 * 16 + len(expected["odd"])
    assert set(expected["odd"]) <= used

    converted = {path: kinds for path, kinds, _ in data.converted}
    assert set(converted) == set(expected["odd"])
    for path, kind in expected["odd"].items():
        assert kind in converted[path], (path, converted[path])
    report = json.loads(json.dumps(data.report()))
    assert report["num_skipped"] == len(expected["bad"]) == 14
    assert report["num_converted"] == len(expected["odd"]) == 20
    assert report["converted"]["CMYK"] == 2 and report["converted"]["transparency"] == 4
    assert sum(report["totals"].values()) == len(used)


def test_a_decompression_bomb_is_refused_without_decoding(tmp_path):
    from tfx_transfer.data.image_check import check_image

    (tmp_path / "bomb.png").write_bytes(bomb_png(30000, 30000))
    problem, notes = check_image(str(tmp_path / "bomb.png"))
    assert problem == ("refused as a likely decompression bomb: 900,000,000 pixels is over "
                       "the limit of 89,478,485") and notes == ()
    # Allowed more pixels, the same file is an ordinary (huge) image.
    (tmp_path / "small.png").write_bytes(bomb_png(300, 200))
    assert check_image(str(tmp_path / "small.png")) == (None, ())
    problem, _ = check_image(str(tmp_path / "small.png"), max_pixels=1000)
    assert "60,000 pixels is over the limit of 1,000" in problem


@pytest.mark.parametrize("fmt, options", [
    ("PNG", {}), ("JPEG", {}), ("JPEG", {"progressive": True}), ("GIF", {}), ("BMP", {}),
    ("WEBP", {"lossless": True}), ("WEBP", {"quality": 80}),
    ("WEBP", {"exif": b"Exif\x00\x00II*\x00\x08\x00\x00\x00\x00\x00"}),  # VP8X
])
def test_the_header_gives_the_size_in_every_format(fmt, options):
    buffer = io.BytesIO()
    Image.fromarray(_pixels(COLOURS["red"], size=(37, 53))).save(buffer, fmt, **options)
    assert int(header_pixels(tf.constant(buffer.getvalue()))) == 37 * 53


def test_the_serving_decode_refuses_a_bomb_before_decoding_it():
    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def serve(image_bytes):
        return decode_and_resize(image_bytes, 16)

    # 110 KB that would decode to 2.7 GB: refused from its header, at once.
    with pytest.raises(tf.errors.InvalidArgumentError, match="decompression bomb"):
        serve(tf.constant(bomb_png(30000, 30000)))
    assert serve(tf.constant(bomb_png(300, 200))).shape == (16, 16, 3)
    assert int(header_pixels(tf.constant(b"not an image at all"))) == 0


@pytest.mark.parametrize("byte_order", ["little", "big"])
def test_exif_orientation_is_applied_as_pillow_does(byte_order):
    pixels = np.zeros((12, 20, 3), np.uint8)
    pixels[:6, :10] = (255, 0, 0)  # a red quarter top left, so every turn shows
    pixels[6:, 14:] = (0, 0, 255)

    @tf.function(input_signature=[tf.TensorSpec([], tf.string)])
    def serve(image_bytes):
        return decode_and_resize(image_bytes, 16)

    for orientation in range(1, 9):
        if byte_order == "little":
            exif = Image.Exif()
            exif[0x0112] = orientation
            exif[0x010F] = "camera"
            data = _jpeg(pixels, exif=exif.tobytes())
        else:  # Written by hand: Pillow writes little-endian TIFF headers only.
            entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
            tiff = b"MM" + struct.pack(">HI", 42, 8) + struct.pack(">H", 1) + entry + b"\0" * 4
            data = _jpeg(pixels, exif=b"Exif\x00\x00" + tiff)
        assert int(exif_orientation(tf.constant(data))) == orientation
        upright = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
        want = decode_and_resize(tf.constant(_png(upright)), 16).numpy()
        got = serve(tf.constant(data)).numpy()
        np.testing.assert_allclose(got, want, atol=24, err_msg=f"orientation {orientation}")


def _png(image):
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_files_without_exif_are_left_as_they_are():
    for data in (b"", b"\xff\xd8\xff\xe1", b"\xff\xd8Exif\x00\x00II*\x00\xff\xff\xff\x7f",
                 b"\xff\xd8Exif\x00\x00MM\x00*\x00\x00\x00\x08\xff\xff", b"\x89PNG\r\n\x1a\n"):
        assert int(exif_orientation(tf.constant(data))) == 1


@pytest.mark.slow
def test_a_run_on_the_messy_folder_reports_every_file(messy_folder, tmp_path):
    root, expected = messy_folder
    data = DataConfig(path=str(root), image_size=32, batch_size=8, val_fraction=0.2,
                      test_fraction=0.2)
    result = train_tiny("images", tmp_path, data, stages=(
        StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=3, optimizer="lbfgs"),))
    data_report = json.loads((result.run_dir / "data_report.json").read_text())
    assert {path for path, _ in data_report["skipped"]} == set(expected["bad"])
    assert {path for path, _ in data_report["converted_files"]} == set(expected["odd"])
    data = result.metrics["data"]
    assert data["num_skipped"] == len(expected["bad"])
    assert data["num_converted"] == len(expected["odd"])
    assert data["converted"]["EXIF rotation"] == 2
    assert f"skipped {len(expected['bad'])} unreadable" in result.report
    assert "converted 20 odd-format image(s): " in result.report
    assert result.metrics["accuracy"] >= 0.9
