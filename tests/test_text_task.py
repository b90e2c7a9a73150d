"""The text task on the real MiniLM encoder: export, serving, stages."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf
from click.testing import CliRunner

import harness
from conftest import serve_in_fresh_process
from tfx_transfer import bench, cli, export, features, stages, tasks
from tfx_transfer.evaluate import new_data
from tfx_transfer.backbones import WeightsUnavailableError
from tfx_transfer.config import DataConfig, ModelConfig, RunConfig, StageConfig
from tfx_transfer.predict import Predictor
from tfx_transfer.tasks import get_task

text = get_task("text")

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
    config = tasks.resolve(RunConfig(task="text", data=DataConfig(sequence_length=32)))
    return text.prepare_backbone(config)


@pytest.fixture(scope="module")
def exported(prepared, tmp_path_factory):
    keras.utils.set_random_seed(0)
    classifier = text.build_classifier(prepared, len(CLASSES), RunConfig().model)
    run_dir = tmp_path_factory.mktemp("text_run")
    export.export_run(
        classifier.model, text.serving_fn(classifier, CLASSES), CLASSES, run_dir,
        track=text.export_objects(classifier),
    )
    return classifier.model, run_dir


def test_unfreeze_groups_cover_every_encoder_layer_once(prepared):
    groups = prepared.unfreeze_groups
    assert groups[0] == ("transformer_layer_5",)
    for layer in prepared.encoder.layers:
        if not layer.weights or layer.name == "pooled_dense":  # pooler unused
            continue
        assert sum(stages.in_group(layer.name, g) for g in groups) == 1, layer.name


def test_plan_names_layernorm_not_batchnorm(prepared):
    classifier = text.build_classifier(prepared, 3, RunConfig().model)
    plan = text.defaults.stages
    described = stages.describe_plan(plan, classifier)
    assert "LayerNorm layers train with their block" in described
    assert "BatchNorm" not in described
    assert "[transformer_layer_5, transformer_layer_4, " in described


def test_trainable_weights_per_stage(prepared):
    classifier = text.build_classifier(prepared, 3, RunConfig().model)
    model, encoder = classifier.model, classifier.backbone
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
    config = tasks.resolve(RunConfig(task="text", model=ModelConfig(backbone="bert_tiny_en_uncased")))
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


def test_fine_tuning_beats_the_frozen_encoder_on_a_small_real_split(prepared, tmp_path):
    # Whether a tweet names anything is a token-level question that mean
    # pooling of frozen features answers poorly; the top layers learn it.
    # (On BBC topics the frozen encoder is already near its ceiling.)
    paths = bench.write_mentions_splits(tmp_path, {"train": 100, "val": 100, "test": 10})
    config = RunConfig(
        task="text",
        data=DataConfig(
            path=paths["train"], val_path=paths["val"], test_path=paths["test"],
            sequence_length=32, seed=1,
        ),
    )
    config = tasks.resolve(config)
    data = text.read_data(config.data)
    datasets = text.make_datasets(data, config, prepared)
    keras.utils.set_random_seed(1)
    classifier = text.build_classifier(prepared, 2, config.model)
    plan = [
        # The default kind of head: fitted by L-BFGS, standardised features.
        # Fine-tuning from it once collapsed to NaN on a dead encoder dimension.
        StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=30, optimizer="lbfgs"),
        StageConfig(name="fine_tune", unfreeze=3, learning_rate=1e-4, epochs=3, patience=2,
                    optimizer="adamw"),
    ]
    head, fine_tune = stages.run_stages(
        classifier, plan, datasets.train, datasets.val, tmp_path / "run",
        objective=text.objective(config, data), caching=features.Caching(seed=1), verbose=0,
    )
    print(f"head {head.val_accuracy:.3f} -> fine_tune {fine_tune.val_accuracy:.3f}")
    assert all(np.isfinite(fine_tune.history["loss"])), fine_tune.history
    assert fine_tune.kept, (head.val_accuracy, fine_tune.val_accuracy)
    assert fine_tune.val_accuracy >= head.val_accuracy + 0.03, (head, fine_tune)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("text")
    path = harness.write_tickets_csv(folder / "tickets.csv")
    data = DataConfig(path=str(path), sequence_length=16, batch_size=8,
                      val_fraction=0.25, test_fraction=0.25)
    plan = (StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=15),
            StageConfig(name="fine_tune", unfreeze=1, learning_rate=5e-5, epochs=1,
                        optimizer="adamw"))
    return harness.train_tiny("text", folder / "runs", data, stages=plan)


@pytest.mark.slow
def test_text_task_passes_the_harness(finished_run, capsys):
    served = harness.check_task_run(finished_run, TEXTS, capsys)
    assert served["probabilities"].shape == (len(TEXTS), 3)
    assert finished_run.metrics["accuracy"] >= 0.8, finished_run.report
    report = json.loads((finished_run.run_dir / "data_report.json").read_text())
    assert report["totals"] == {"train": 18, "val": 9, "test": 9}


def test_evaluate_scores_a_new_table_through_the_export(finished_run, tmp_path):
    path = harness.write_tickets_csv(tmp_path / "new.csv", per_template=2)
    with open(path, "a", encoding="utf-8") as f:
        f.write("please refund me,refund\n")
    evaluation = new_data.evaluate_run(finished_run.run_dir, path, skip_unknown_labels=True)
    assert evaluation.metrics["num_examples"] == 18
    assert evaluation.metrics["skipped_unknown_labels"] == {"refund": 1}
    assert evaluation.metrics["accuracy"] >= 0.6
    assert evaluation.report.count("Accuracy: ") == 1
    assert (evaluation.directory / "confusion_matrix.png").is_file()


def test_tflite_export_of_a_text_run_is_refused_with_the_reason(finished_run):
    result = CliRunner().invoke(cli.main, ["export", str(finished_run.run_dir),
                                           "--format", "tflite"])
    assert result.exit_code == 1
    assert "TFLite export is for image runs" in result.output and "Flex ops" in result.output
    assert not (finished_run.run_dir / "tflite").exists()  # No file that cannot run.
