"""The text task on the real MiniLM encoder: export, serving, stages."""

import dataclasses
import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfx_transfer import export, stages
from tfx_transfer.backbones import WeightsUnavailableError
from tfx_transfer.config import DataConfig, ModelConfig, RunConfig, StageConfig
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


def test_fine_tuning_beats_the_frozen_encoder_on_a_small_real_split(tmp_path):
    from tfx_transfer.data import bundled, splits
    from tfx_transfer.data import text as text_data

    bbc = text_data.read_text_data(bundled.bundled_text_dir(), encoding=bundled.BUNDLED_TEXT_ENCODING)
    rng = np.random.default_rng(0)

    def per_class(split, n):
        picks = [i for c in range(bbc.num_classes)
                 for i in rng.permutation(np.flatnonzero(np.array(split.labels) == c))[:n]]
        return splits.Split(tuple(split.items[i] for i in picks), tuple(split.labels[i] for i in picks))

    small = dataclasses.replace(bbc, splits={
        "train": per_class(bbc.splits["train"], 12),
        "val": per_class(bbc.splits["val"], 20),
        "test": per_class(bbc.splits["test"], 1),
    })
    config = RunConfig(
        task="text",
        data=DataConfig(sequence_length=32, batch_size=16),
        stages=(
            # Trained to its plateau, so what stage 2 adds is the encoder's.
            StageConfig(name="frozen", unfreeze=0, learning_rate=1e-2, epochs=8, patience=2),
            StageConfig(name="fine_tune", unfreeze=3, learning_rate=2e-4, epochs=3,
                        patience=3, optimizer="adamw"),
        ),
    ).resolved()
    prepared = text.prepare_backbone(config)
    train, val, _ = text.make_datasets(small, config, prepared)
    keras.utils.set_random_seed(0)
    model, encoder = text.build_classifier(prepared, small.num_classes, config.model)
    frozen, tuned = stages.run_stages(
        model, encoder, prepared.unfreeze_groups, config.stages, train, val, tmp_path, verbose=0
    )
    print(frozen.val_accuracy, tuned.val_accuracy)
    assert tuned.kept and tuned.val_accuracy > frozen.val_accuracy
