"""TFLite export of an image run: three variants, each scored on the run's test split.

A TFLite model here is tensor-in: a `[1, size, size, 3]` image, float32
pixels in 0..255 (or uint8 for the full-integer variant), with the
backbone's normalisation inside. Decoding stays outside: a `DecodeJpeg` in
the graph converts only as a Flex op, and neither `tf.lite.Interpreter`
nor `ai-edge-litert` from PyPI can run Flex ops. So a phone app decodes
and resizes the image (bilinear, as `tfx_transfer.data.pipeline` does) and
feeds the pixels.

Variants:

- `float32`: the model as it is;
- `dynamic`: weights stored as int8, computed in float (dynamic range);
- `int8`: weights and activations int8, calibrated on training images,
  uint8 input.

Each is scored with `ai_edge_litert.interpreter.Interpreter` (the `tflite`
extra) on the run's test split, next to the SavedModel, and the figures go
to `tflite/export_report.json`.
"""

import json
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2,
)

from tfx_transfer import export, few_shot
from tfx_transfer.data.pipeline import decode_and_resize
from tfx_transfer.progress import tracked

VARIANTS = ("float32", "dynamic", "int8")
TFLITE_DIR = "tflite"
# An int8 model that loses more than this (in accuracy points) is flagged.
INT8_TOLERANCE_POINTS = 2.0


def convert(model, image_size, variant, representative_images=()):
    """Converts a Keras image classifier into TFLite bytes.

    Args:
        model: keras.Model. Float32 pixels in 0..255 -> probabilities.
        image_size: int. Input height and width.
        variant: str. One of `VARIANTS`.
        representative_images: sequence of float32 arrays `[size, size, 3]`;
            the int8 variant calibrates its activation ranges on them.

    Returns:
        The .tflite flatbuffer, as bytes.

    Example:

    >>> blob = convert(model, 224, "int8", training_images[:100])
    """
    if variant not in VARIANTS:
        raise ValueError(f"Unknown TFLite variant {variant!r}; expected one of {VARIANTS}.")
    dtype = tf.uint8 if variant == "int8" else tf.float32

    @tf.function(input_signature=[tf.TensorSpec([1, image_size, image_size, 3], dtype,
                                                name="pixels")])
    def serve(pixels):
        return {"probabilities": model(tf.cast(pixels, tf.float32), training=False)}

    # Frozen: with the model passed as the function's owner, the converter
    # keeps its variables as READ_VARIABLE ops, which fail at invoke.
    frozen = convert_variables_to_constants_v2(serve.get_concrete_function())
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen])
    if variant != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if variant == "int8":
        if not len(representative_images):
            raise ValueError("The int8 variant needs representative images to calibrate on.")

        def representative():
            for image in representative_images:
                yield [np.asarray(image, np.float32)[None].round().astype(np.uint8)]

        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
    return converter.convert()


def load_images(paths, image_size):
    """Decodes and resizes image files as the served model does: float32 `[N, size, size, 3]`."""
    return np.stack([decode_and_resize(tf.io.read_file(str(path)), image_size).numpy()
                     for path in paths])


def score_tflite(blob, images, labels, name="the TFLite model"):
    """Accuracy, mean latency (ms per image) and size (MB) of a TFLite model on `images`."""
    from ai_edge_litert.interpreter import Interpreter  # The `tflite` extra.

    interpreter = Interpreter(model_content=blob)
    interpreter.allocate_tensors()
    (given,), (answer,) = interpreter.get_input_details(), interpreter.get_output_details()
    interpreter.set_tensor(given["index"], np.zeros(given["shape"], given["dtype"]))
    interpreter.invoke()  # Warm-up: not timed.
    correct, seconds = 0, 0.0
    for image, label in tracked(zip(images, labels), len(labels),
                                f"Scoring {name} on {len(labels)} test images:", "image"):
        pixels = image[None].round().clip(0, 255).astype(given["dtype"]) if (
            given["dtype"] == np.uint8) else image[None].astype(given["dtype"])
        started = time.perf_counter()
        interpreter.set_tensor(given["index"], pixels)
        interpreter.invoke()
        probabilities = interpreter.get_tensor(answer["index"])[0]
        seconds += time.perf_counter() - started
        correct += int(np.argmax(probabilities) == label)
    return {"accuracy": correct / len(labels), "ms_per_image": 1000 * seconds / len(labels),
            "size_mb": len(blob) / 1e6, "input_dtype": np.dtype(given["dtype"]).name}


def score_saved_model(run_dir, paths, labels):
    """The same figures for the run's SavedModel, fed the raw image bytes one at a time."""
    serve = export.load_serving_model(run_dir).signatures["serving_default"]
    folder = Path(run_dir) / export.SAVED_MODEL_DIR
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    serve(image_bytes=tf.constant([Path(paths[0]).read_bytes()]))  # Warm-up: not timed.
    correct, seconds = 0, 0.0
    for path, label in tracked(zip(paths, labels), len(labels),
                               f"Scoring the SavedModel on {len(labels)} test images:", "image"):
        blob = tf.constant([Path(path).read_bytes()])
        started = time.perf_counter()
        probabilities = serve(image_bytes=blob)["probabilities"].numpy()[0]
        seconds += time.perf_counter() - started
        correct += int(np.argmax(probabilities) == label)
    return {"accuracy": correct / len(labels), "ms_per_image": 1000 * seconds / len(labels),
            "size_mb": size / 1e6, "input_dtype": "string (encoded image)"}


def export_tflite(model, run_dir, image_size, test_split, train_split, variants=VARIANTS,
                  calibration_images=100):
    """Writes the TFLite variants of an image run and scores them; returns the report.

    Args:
        model: keras.Model. The run's classifier (`model.keras`).
        run_dir: Path. The run directory; files go to `run_dir/tflite/`.
        image_size: int. The run's image size.
        test_split: `tfx_transfer.data.splits.Split` of the run's test images.
        train_split: the training split; its first images calibrate int8.
        variants: sequence of str. Which of `VARIANTS` to write.
        calibration_images: int. Training images the int8 variant sees.

    Returns:
        The dict written to `export_report.json`: per variant (and the
        SavedModel) accuracy, ms per image, size in MB, and warnings.
    """
    run_dir = Path(run_dir)
    test_images = load_images(test_split.items, image_size)
    # Evenly spaced through the split, which is sorted by path (so by class):
    # the first N would calibrate on one or two classes only.
    step = max(1, len(train_split) // calibration_images)
    calibration = load_images(train_split.items[::step][:calibration_images], image_size) if (
        "int8" in variants) else ()
    report = {"test_examples": len(test_split),
              "saved_model": score_saved_model(run_dir, test_split.items, test_split.labels),
              "variants": {}, "warnings": []}
    folder = run_dir / TFLITE_DIR
    folder.mkdir(exist_ok=True)
    for variant in variants:
        blob = convert(model, image_size, variant, calibration)
        with export.atomic_path(folder / f"model_{variant}.tflite") as tmp:
            tmp.write_bytes(blob)
        report["variants"][variant] = score_tflite(blob, test_images, test_split.labels,
                                                   name=f"model_{variant}.tflite")
    (folder / export.LABELS_FILE).write_text(
        (run_dir / export.LABELS_FILE).read_text())
    baseline = report["saved_model"]["accuracy"]
    for variant, scores in report["variants"].items():
        lost = round(100 * (baseline - scores["accuracy"]), 6)  # 3/150 is 2.0, not 2.0000001.
        if variant == "int8" and lost > INT8_TOLERANCE_POINTS:
            report["warnings"].append(
                f"int8 loses {lost:.1f} accuracy points against the SavedModel (more than "
                f"{INT8_TOLERANCE_POINTS:.0f}): calibrate on more images or ship 'dynamic'.")
    with export.atomic_path(folder / "export_report.json") as tmp:
        tmp.write_text(json.dumps(report, indent=2))
    return report


def format_report(report):
    """The export report as a table, warnings last (loud)."""
    lines = [f"{'model':<12} {'accuracy':>9} {'ms/image':>9} {'MB':>8}  input",
             _row("SavedModel", report["saved_model"])]
    lines += [_row(variant, scores) for variant, scores in report["variants"].items()]
    lines.append(f"(on the run's {report['test_examples']} test images)")
    lines += [f"WARNING: {warning}" for warning in report["warnings"]]
    return "\n".join(lines)


def _row(name, scores):
    return (f"{name:<12} {scores['accuracy']:>9.4f} {scores['ms_per_image']:>9.2f} "
            f"{scores['size_mb']:>8.2f}  {scores['input_dtype']}")


def export_run(run_dir, variants=VARIANTS):
    """Writes and scores the TFLite variants of a finished image run.

    Args:
        run_dir: str or Path. A finished run directory of the images task.
        variants: sequence of str. Which of `VARIANTS` to write.

    Returns:
        The export report (see `export_tflite`).

    Raises:
        ValueError: the run is not an image run. A text or token model's
            tokenizer is made of tensorflow-text ops, which convert only as
            Flex ops, which neither `tf.lite.Interpreter` nor ai-edge-litert
            from PyPI can run: such a file would not run, so none is written.
    """
    import keras

    from tfx_transfer import tasks
    from tfx_transfer.config_files import load_config

    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml")
    if config.task != "images":
        raise ValueError(
            f"{run_dir} is a {config.task} run: TFLite export is for image runs. The "
            "tokenizer inside a text model is made of tensorflow-text ops, which TFLite "
            "converts only as Flex ops, and neither tf.lite.Interpreter nor ai-edge-litert "
            "from PyPI can run those. Serve the SavedModel instead (python -m tfx_transfer "
            "serve), or run the encoder on a server.")
    task = tasks.get_task("images")  # Registers the custom layers model.keras holds.
    model = keras.saving.load_model(run_dir / export.KERAS_FILE)
    data = few_shot.read_data(task, config)  # As the run read it.
    # The model's own input size: config.yaml leaves it None for the backbone's native one.
    image_size = int(model.input_shape[1])
    return export_tflite(model, run_dir, image_size, data.splits["test"],
                         data.splits["train"], variants)
