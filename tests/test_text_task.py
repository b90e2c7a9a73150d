"""The text task on the real MiniLM encoder: export, serving, stages."""

import csv
import random

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import serve_in_fresh_process
from tfx_transfer import export, stages
from tfx_transfer.backbones import WeightsUnavailableError
from tfx_transfer.config import DataConfig, ModelConfig, RunConfig, StageConfig
from tfx_transfer.data import bundled, conll
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
    served = serve_in_fresh_process(run_dir / "saved_model", text_ops=True, text=TEXTS)
    np.testing.assert_allclose(served["probabilities"], expected, atol=1e-5)
    assert [label.decode() for label in served["label"]] == [CLASSES[i] for i in expected.argmax(-1)]


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



def test_accents_are_stripped_as_the_checkpoint_was_trained(prepared):
    # Hugging Face's uncased BERT tokenizer strips accents; keras-hub's
    # converter alone would map every accented word to [UNK].
    tokenizer = prepared.preprocessor.tokenizer
    accented, plain = (np.asarray(tokenizer(text)).tolist() for text in ("Café naïve résumé", "cafe naive resume"))
    assert accented == plain
    assert tokenizer.token_to_id("[UNK]") not in accented


def write_mentions_splits(folder, sizes, seed=1):
    """Real tweets (bundled WNUT-16), labelled by whether annotators marked an entity.

    Writes one CSV per split in `sizes` (split name -> tweets per class),
    disjoint and in that order, and returns the paths by split name.
    """
    groups = {"entity": [], "none": []}
    for sentence in conll.read_conll(bundled.bundled_conll_path()):
        label = "entity" if any(tag != "O" for tag in sentence.tags) else "none"
        groups[label].append(" ".join(sentence.words))
    for texts in groups.values():
        random.Random(seed).shuffle(texts)
    paths, offset = {}, 0
    for split, per_class in sizes.items():
        paths[split] = str(folder / f"{split}.csv")
        with open(paths[split], "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            for label, texts in groups.items():
                writer.writerows([t, label] for t in texts[offset:offset + per_class])
        offset += per_class
    return paths


def test_fine_tuning_beats_the_frozen_encoder_on_a_small_real_split(prepared, tmp_path):
    # Whether a tweet names anything is a token-level question that mean
    # pooling of frozen features answers poorly; the top layers learn it.
    # (On BBC topics the frozen encoder is already near its ceiling.)
    paths = write_mentions_splits(tmp_path, {"train": 100, "val": 100, "test": 10})
    config = RunConfig(
        task="text",
        data=DataConfig(
            path=paths["train"], val_path=paths["val"], test_path=paths["test"],
            sequence_length=32, seed=1,
        ),
    ).resolved()
    data = text.read_data(config.data)
    train, val, _ = text.make_datasets(data, config, prepared)
    keras.utils.set_random_seed(1)
    model, encoder = text.build_classifier(prepared, 2, config.model)
    plan = [
        StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=30, patience=5),
        StageConfig(name="fine_tune", unfreeze=3, learning_rate=1e-4, epochs=3, patience=2,
                    optimizer="adamw"),
    ]
    head, fine_tune = stages.run_stages(
        model, encoder, prepared.unfreeze_groups, plan, train, val, tmp_path / "run",
        verbose=0, feature_views=1, seed=1, **text.objective(config.model),
    )
    print(f"head {head.val_accuracy:.3f} -> fine_tune {fine_tune.val_accuracy:.3f}")
    assert fine_tune.kept, (head.val_accuracy, fine_tune.val_accuracy)
    assert fine_tune.val_accuracy >= head.val_accuracy + 0.03, (head, fine_tune)
