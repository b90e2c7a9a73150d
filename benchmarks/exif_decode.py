"""What reading the EXIF orientation in the graph costs a decode: ratio to a plain decode.

Both pipelines read the same JPEGs (the bundled demo's images, enlarged to
`--size` pixels and saved as camera JPEGs: once without an orientation tag,
once with every other one rotated) through tf.data with the same parallelism; the plain one
is `tf.io.decode_image` and a resize, the other `decode_and_resize`, which
also reads the tag and turns the image upright.

    python benchmarks/exif_decode.py --images 400 --size 640
"""

import argparse
import io
import tempfile
import time
from pathlib import Path

import tensorflow as tf
from PIL import Image

from tfx_transfer.data import bundled_data_dir, decode_and_resize


def write_jpegs(folder, count, size, rotated):
    sources = sorted(bundled_data_dir().glob("*/*.png"))[:count]
    paths = []
    for i, source in enumerate(sources):
        image = Image.open(source).convert("RGB").resize((size, size * 3 // 4))
        exif = image.getexif()
        if rotated and i % 2:
            exif[0x0112] = 6
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90, exif=exif.tobytes())
        path = Path(folder) / f"{i:04d}.jpg"
        path.write_bytes(buffer.getvalue())
        paths.append(str(path))
    return paths


def plain(image_bytes, size):
    image = tf.io.decode_image(image_bytes, channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return tf.image.resize(image, (size, size))


def seconds(paths, decode, repeats):
    dataset = (tf.data.Dataset.from_tensor_slices(paths).map(tf.io.read_file)
               .map(lambda data: decode(data, 224), num_parallel_calls=tf.data.AUTOTUNE)
               .batch(32))
    for _ in dataset:  # Warm-up: tracing and file cache.
        pass
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        for _ in dataset:
            pass
        best = min(best, time.perf_counter() - started)
    return best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--size", type=int, default=640, help="JPEG width in pixels")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    for rotated in (False, True):
        with tempfile.TemporaryDirectory() as folder:
            paths = write_jpegs(folder, args.images, args.size, rotated)
            base = seconds(paths, plain, args.repeats)
            upright = seconds(paths, decode_and_resize, args.repeats)
        print(f"{len(paths)} JPEGs of {args.size} px ({'half' if rotated else 'none'} with an "
              f"EXIF rotation), best of {args.repeats}: plain decode "
              f"{1000 * base / len(paths):.2f} ms/image, decode_and_resize "
              f"{1000 * upright / len(paths):.2f} ms/image; ratio {upright / base:.2f}")


if __name__ == "__main__":
    main()
