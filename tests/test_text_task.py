"""The text task on the real MiniLM encoder: export, serving, stages."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfx_transfer import export, stages
from tfx_transfer.backbones import WeightsUnavailableError
from tfx_transfer.config import DataConfig, ModelConfig, RunConfig
from tfx_transfer.predict import Predictor
from tfx_transfer.tasks import text

CLASSES = ["billing", "delivery", "praise"]
TEXTS = [
    "the parcel never arrived",
    "I was charged twice for one order",
    "Great service, thank you so much!",
    "",
    "naïve café — ünïcödé and emoji 🎉",
]


@pytest.fixture(scope="module")
def prepared():
    config = RunConfig(task="text", data=DataConfig(sequence_length=32)).resolved()
    return text.prepare_backbone(config)


@pytest.fixture(scope="module")
def exported(prepared, tmp_path_factory):
    keras.utils.set_random_seed(0)
    model, _ = text.build_classifier(prepared, len(CLASSES), RunConfig().model)
    run_dir = tmp_path_factory.mktemp("text_run")
    export.export_run(
        model, text.serving_fn(model, CLASSES, prepared), CLASSES, run_dir,
        track=text.export_objects(prepared),
    )
    return model, run_dir


def test_unfreeze_groups_cover_every_encoder_layer_once(prepared):
    groups = prepared.unfreeze_groups
    assert groups[0] == ("transformer_layer_5",)
    for layer in prepared.encoder.layers:
        if not layer.weights or layer.name == "pooled_dense":  # pooler unused
            continue
        assert sum(stages.in_group(layer.name, g) for g in groups) == 1, layer.name


def test_trainable_weights_per_stage(prepared):
    model, encoder = text.build_classifier(prepared, 3, RunConfig().model)
    counts = []
    for unfreeze in (0, 1, 2):
        stages.set_trainable_blocks(encoder, prepared.unfreeze_groups, unfreeze)
        counts.append(len(model.trainable_weights))
    # Head kernel + bias, then 16 weights per transformer layer.
    assert counts == [2, 18, 34]


def test_saved_model_in_fresh_process_matches_in_process_model(exported, prepared):
    model, run_dir = exported
    expected = model.predict(prepared.preprocessor(tf.constant(TEXTS)), verbose=0)
    script = (
        "import json, sys\n"
        "import tensorflow as tf\n"
        "import tensorflow_text  # registers the tokenizer's ops\n"
        "serve = tf.saved_model.load(sys.argv[1]).signatures['serving_default']\n"
        "out = serve(text=tf.constant(json.loads(sys.argv[2])))\n"
        "print(json.dumps({'p': out['probabilities'].numpy().tolist(),"
        " 'label': [l.decode() for l in out['label'].numpy()]}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(run_dir / "saved_model"), json.dumps(TEXTS)],
        capture_output=True, text=True, check=True,
    )
    served = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(served["p"], expected, atol=1e-5)
    assert served["label"] == [CLASSES[i] for i in expected.argmax(-1)]


def test_predictor_takes_raw_strings(exported):
    _, run_dir = exported
    predictor = Predictor(run_dir)
    assert not predictor.takes_images and predictor.input_name == "text"
    top = predictor.top_k("where is my parcel", k=3)
    assert sorted(label for label, _ in top) == CLASSES
    assert abs(sum(p for _, p in top) - 1.0) < 1e-5


def test_offline_preset_download_fails_clearly(monkeypatch, tmp_path):
    # An empty cache and an endpoint on loopback that refuses: offline, even
    # on a machine that has a network.
    monkeypatch.setenv("KAGGLEHUB_CACHE", str(tmp_path / "kaggle"))
    monkeypatch.setenv("KAGGLE_API_ENDPOINT", "http://127.0.0.1:9")
    config = RunConfig(task="text", model=ModelConfig(backbone="bert_tiny_en_uncased")).resolved()
    with pytest.raises(WeightsUnavailableError) as error:
        text.prepare_backbone(config)
    assert "--weights" in str(error.value) and "minilm_l6" in str(error.value)

