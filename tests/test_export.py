import io

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from conftest import lite0_classifier, serve_in_fresh_process
from tfx_transfer import export
from tfx_transfer.data import pipeline
from tfx_transfer.predict import Predictor
from tfx_transfer.tasks import get_task

SIZE = 64
CLASSES = ["ant", "bee", "cat"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    classifier = lite0_classifier(size=SIZE)
    run_dir = tmp_path_factory.mktemp("run")
    serving_fn = get_task("images").serving_fn(classifier, CLASSES)
    export.export_run(classifier.model, serving_fn, CLASSES, run_dir)
    return classifier.model, run_dir


def png_bytes(seed, size=(50, 70), mode="RGB"):
    rng = np.random.default_rng(seed)
    shape = (size[0], size[1], 3) if mode == "RGB" else size
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, shape).astype("uint8"), mode).save(buffer, "PNG")
    return buffer.getvalue()


def test_saved_model_in_fresh_process_matches_in_process_model(exported, tmp_path):
    model, run_dir = exported
    blobs = [png_bytes(0), png_bytes(1, mode="L"), png_bytes(2, size=(300, 120))]
    for i, blob in enumerate(blobs):
        (tmp_path / f"{i}.png").write_bytes(blob)
    expected = model.predict(
        tf.stack([pipeline.decode_and_resize(b, SIZE) for b in blobs]), verbose=0
    )
    served = serve_in_fresh_process(run_dir / "saved_model", image_bytes=blobs)
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
    assert [label.decode() for label in served["label"]] == [CLASSES[i] for i in expected.argmax(-1)]


def test_signature_takes_bytes_named_for_tf_serving_rest(exported):
    _, run_dir = exported
    serve = export.load_serving_model(run_dir).signatures["serving_default"]
    (name, spec), = serve.structured_input_signature[1].items()
    assert name.endswith("_bytes") and spec.dtype == tf.string and spec.shape.as_list() == [None]
    assert set(serve.structured_outputs) == {"probabilities", "label"}


def test_run_dir_holds_keras_model_and_labels(exported):
    model, run_dir = exported
    assert (run_dir / "labels.txt").read_text().splitlines() == CLASSES
    reloaded = keras.saving.load_model(run_dir / "model.keras")
    x = np.random.default_rng(0).uniform(0, 255, (2, SIZE, SIZE, 3)).astype("float32")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert not list(run_dir.glob(".*")), "temporary export folders left behind"


def test_garbage_bytes_give_a_clear_error(exported):
    _, run_dir = exported
    predictor = Predictor(run_dir)
    assert predictor.top_k(png_bytes(3), k=2)[0][0] in CLASSES
    with pytest.raises(ValueError, match="Could not decode the image bytes"):
        predictor.predict([b"this is not an image"])


def test_failed_export_leaves_previous_export_untouched(tmp_path):
    target = tmp_path / "saved_model"
    with export.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "v1").write_text("one")
    with pytest.raises(RuntimeError):
        with export.atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "half").write_text("half-written")
            raise RuntimeError("disk full")
    assert [p.name for p in target.iterdir()] == ["v1"]
    with export.atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "v2").write_text("two")
    assert [p.name for p in target.iterdir()] == ["v2"]
    assert [p.name for p in tmp_path.iterdir()] == ["saved_model"]
