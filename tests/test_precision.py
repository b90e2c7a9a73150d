"""Mixed precision: the switch, what it builds, and a run that trains under it."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfx_transfer import export, precision, tasks, train
from tfx_transfer.config import DataConfig, RunConfig, StageConfig
from tfx_transfer.config import ModelConfig
from tfx_transfer.tasks import get_task

images, text = get_task("images"), get_task("text")

SIZE = 64


def test_policy_is_restored_even_when_the_block_fails():
    assert keras.config.dtype_policy().name == "float32"
    with pytest.raises(RuntimeError):
        with precision.dtype_policy("float16"):
            assert keras.config.dtype_policy().name == "mixed_float16"
            raise RuntimeError("boom")
    assert keras.config.dtype_policy().name == "float32"


def test_unknown_setting_is_refused_by_name():
    with pytest.raises(ValueError, match="mixed_precision='fp8'"):
        RunConfig(mixed_precision="fp8")
    with pytest.raises(ValueError, match="mixed_precision='half'"):
        precision.policy_name("half")


def image_classifier():
    config = tasks.resolve(RunConfig(data=DataConfig(image_size=SIZE)))
    classifier = images.build_classifier(images.prepare_backbone(config), 3, ModelConfig())
    return classifier.model, classifier.backbone


def test_bfloat16_classifier_computes_in_bfloat16_and_answers_in_float32():
    x = np.random.default_rng(0).uniform(0, 255, (4, SIZE, SIZE, 3)).astype("float32")
    reference, _ = image_classifier()
    with precision.dtype_policy("bfloat16"):
        model, backbone = image_classifier()
    model.set_weights(reference.get_weights())
    convolutions = [layer for layer in backbone.layers if isinstance(layer, keras.layers.Conv2D)]
    assert {layer.compute_dtype for layer in convolutions} == {"bfloat16"}
    # Weights stay float32: the optimizer updates full-precision copies.
    assert {w.dtype for w in model.weights} == {"float32"}
    probabilities = model(x)
    assert probabilities.dtype == "float32"
    np.testing.assert_allclose(np.sum(probabilities, -1), 1.0, atol=1e-6)
    np.testing.assert_allclose(probabilities, reference(x), atol=0.05)


def test_text_encoder_is_built_under_the_policy():
    config = tasks.resolve(RunConfig(task="text", data=DataConfig(sequence_length=16)))
    with precision.dtype_policy("float16"):
        prepared = text.prepare_backbone(config)
        classifier = text.build_classifier(prepared, 2, config.model)
    model, encoder = classifier.model, classifier.backbone
    assert encoder.compute_dtype == "float16"
    out = model(prepared.preprocessor(tf.constant(["a short one", "another text"])))
    assert out.dtype == "float32" and np.isfinite(out).all()


def test_run_trains_and_exports_under_mixed_precision(colour_folder, tmp_path):
    config = RunConfig(
        output_dir=str(tmp_path), run_name="bf16", mixed_precision="bfloat16",
        data=DataConfig(path=str(colour_folder), image_size=SIZE, batch_size=8,
                        val_fraction=0.25, test_fraction=0.25),
        stages=(
            StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=3),
            StageConfig(name="fine_tune", unfreeze=1, learning_rate=1e-4, epochs=1),
        ),
    )
    result = train.run(config, verbose=0)
    assert keras.config.dtype_policy().name == "float32"
    assert result.metrics["accuracy"] >= 0.8  # Solid colours: trivially separable.
    served = export.load_serving_model(result.run_dir / "saved_model")
    png = tf.io.encode_png(tf.constant(np.full((SIZE, SIZE, 3), [200, 10, 10], "uint8")))
    out = served.signatures["serving_default"](image_bytes=tf.stack([png]))
    assert out["probabilities"].dtype == tf.float32
    assert out["label"].numpy()[0].decode() == "red"
