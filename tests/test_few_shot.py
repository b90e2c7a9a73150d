"""Few-shot mode: SetFit's pairs and contrastive stage, the switch, and a run that serves."""

import dataclasses
import json

import keras
import numpy as np
import pytest

import harness
from conftest import serve_in_fresh_process
from tfx_transfer import few_shot, optimizers, stages, tasks, train
from tfx_transfer.config import DataConfig, RunConfig, StageConfig
from tfx_transfer.config_files import load_config
from tfx_transfer.contrastive import class_cosines, contrastive_pairs, fit_contrastive, \
    sentence_embedder
from tfx_transfer.data import read_text_data
from tfx_transfer.tasks.defaults import DEFAULTS

LABELS = [0] * 8 + [1] * 8 + [2] * 8


def test_pairs_are_balanced_and_each_target_tells_the_truth():
    pairs = contrastive_pairs(LABELS, rounds=20, seed=3)
    assert pairs.shape == (2 * 20 * len(LABELS), 3)
    first, second, target = pairs[:, 0].astype(int), pairs[:, 1].astype(int), pairs[:, 2]
    labels = np.asarray(LABELS)
    assert target.mean() == 0.5
    assert np.array_equal(labels[first] == labels[second], target == 1.0)
    assert not np.any(first == second)  # never an example with itself
    # Every example anchors 20 positive and 20 negative pairs.
    assert np.array_equal(np.bincount(first[target == 1]), np.full(len(LABELS), 20))
    assert np.array_equal(np.bincount(first[target == 0]), np.full(len(LABELS), 20))


def test_the_same_seed_gives_the_same_pairs_and_another_seed_others():
    same = contrastive_pairs(LABELS, seed=5), contrastive_pairs(LABELS, seed=5)
    assert np.array_equal(*same)
    assert not np.array_equal(same[0], contrastive_pairs(LABELS, seed=6))


def test_a_bound_keeps_the_balance():
    pairs = contrastive_pairs(LABELS, rounds=20, seed=0, max_pairs=100)
    assert pairs.shape == (100, 3) and pairs[:, 2].mean() == 0.5


def test_an_example_alone_in_its_class_sits_out():
    pairs = contrastive_pairs([0, 0, 0, 1], rounds=4, seed=0)
    assert 3 not in pairs[:, 0] and pairs[:, 2].mean() == 0.5
    assert 3 in pairs[:, 1]  # still a negative partner for the others
    with pytest.raises(ValueError, match="at least 2 classes"):
        contrastive_pairs([1, 1, 1])
    with pytest.raises(ValueError, match="at least 2 examples"):
        contrastive_pairs([0, 1, 2])


@pytest.fixture(scope="module")
def minilm():
    config = tasks.resolve(RunConfig(task="text", data=DataConfig(sequence_length=32)))
    return tasks.get_task("text").prepare_backbone(config)


def ticket_features(backbone, per_template=2):
    texts, labels = [], []
    for label, templates in enumerate(harness.TICKETS.values()):
        for template in templates:
            for n in range(per_template):
                texts.append(template.format(n + 7))
                labels.append(label)
    return ({k: np.asarray(v) for k, v in backbone.preprocessor(texts).items()},
            np.asarray(labels))


def test_the_contrastive_stage_pulls_each_class_together(minilm):
    keras.utils.set_random_seed(0)
    features, labels = ticket_features(minilm)  # 3 classes, 6 tickets each
    stage = DEFAULTS["text"].few_shot_stages[0]
    stages.set_trainable_blocks(minilm.encoder, minilm.unfreeze_groups, stage.unfreeze)
    kernel = minilm.encoder.get_layer("transformer_layer_0").weights[0]
    start = np.array(kernel)
    pairs = contrastive_pairs(labels, rounds=6, seed=0)
    fit = fit_contrastive(minilm.encoder, features, labels, pairs,
                          optimizers.build_optimizer(stage, len(pairs) // 16 + 1),
                          epochs=1, seed=0)
    assert fit.pairs == len(pairs) == 2 * 6 * 18
    # Measured, not assumed: the same-class cosine rises well past the other-class one.
    margin_before = fit.before["same"] - fit.before["other"]
    margin_after = fit.after["same"] - fit.after["other"]
    assert margin_after > margin_before + 0.1, (fit.before, fit.after)
    assert fit.after == class_cosines(sentence_embedder(minilm.encoder), features, labels)
    assert not np.array_equal(start, np.array(kernel))
    assert len(fit.history["loss"]) == 1 and np.isfinite(fit.history["loss"][0])


def read_tickets(tmp_path, per_template):
    path = harness.write_tickets_csv(tmp_path / f"tickets{per_template}.csv", per_template)
    return read_text_data(path, val_fraction=0.15, test_fraction=0.15, seed=0)


def test_the_mode_switches_on_below_the_threshold_and_says_why(tmp_path):
    defaults, groups = DEFAULTS["text"], ("a",) * 7
    config = tasks.resolve(RunConfig(task="text"))
    few = read_tickets(tmp_path, 3)  # 9 tickets a class
    on_config, on_data, decision = few_shot.apply(config, few, defaults, groups)
    assert decision.on and on_config.few_shot is True
    assert on_config.stages == defaults.few_shot_stages
    below = defaults.few_shot_below
    assert f"below {below}" in decision.reason and "cross-validation" in decision.reason
    # The carved validation split trains; the test split stays held out.
    assert len(on_data.splits["val"]) == 0
    assert len(on_data.splits["train"]) == len(few.splits["train"]) + len(few.splits["val"])
    assert on_data.splits["test"] == few.splits["test"]
    assert on_config.data.batch_size == len(on_data.splits["train"]) < 32
    assert decision.report()["per_class"] == pytest.approx(
        len(on_data.splits["train"]) / 3, abs=0.01)
    # Decided again on resume (config.yaml holds few_shot: true): the same.
    again = few_shot.apply(on_config, few, defaults, groups)
    assert again[0] == on_config and again[1].splits == on_data.splits
    # Enough data: off, silently; --no-few-shot: off, said; --few-shot: on.
    many = read_tickets(tmp_path, below // 2)  # 3 templates a class: 1.5 x `below`
    assert len(many.splits["train"]) + len(many.splits["val"]) >= 3 * below
    assert few_shot.apply(config, many, defaults, groups)[2].on is False
    off = few_shot.apply(dataclasses.replace(config, few_shot=False), few, defaults, groups)
    assert not off[2].on and "--no-few-shot" in off[2].reason and off[1] is few
    forced = few_shot.apply(dataclasses.replace(config, few_shot=True), many, defaults, groups)
    assert forced[2].on and "asked for" in forced[2].reason
    # A plan the user gave is not replaced behind their back.
    own = dataclasses.replace(config, stages=(StageConfig("head", 0, 1e-3, 5),))
    assert not few_shot.apply(own, few, defaults, groups)[2].on
    # A backbone of fewer blocks: the contrastive stage asks for no more.
    assert few_shot.apply(config, few, defaults, ("a",) * 3)[0].stages[0].unfreeze == 3
    with pytest.raises(ValueError, match="no few-shot mode"):
        few_shot.apply(tasks.resolve(RunConfig(task="tokens", few_shot=True)), few,
                       DEFAULTS["tokens"], groups)


def test_too_few_to_carve_a_validation_split_reads_without_one_when_the_mode_applies(tmp_path):
    # 3 tickets a class: a 15% validation split cannot hold all 3 classes.
    train_csv = harness.write_tickets_csv(tmp_path / "train.csv", per_template=1)
    test_csv = tmp_path / "test.csv"
    test_csv.write_text("text,label\nrefund order 77 please,billing\n"
                        "box 77 lost in transit,delivery\nsuperb help 77,praise\n")
    config = tasks.resolve(RunConfig(task="text", data=DataConfig(
        path=str(train_csv), test_path=str(test_csv))))
    task = tasks.get_task("text")
    with pytest.raises(ValueError, match="Split 'val' is too small"):
        task.read_data(config.data)
    data = few_shot.read_data(task, config)
    assert len(data.splits["val"]) == 0 and len(data.splits["train"]) == 9
    assert len(data.splits["test"]) == 3
    _, on_data, decision = few_shot.apply(config, data, task.defaults, ("a",) * 7)
    assert decision.on and "cross-validation" in decision.reason
    assert on_data.splits["train"] == data.splits["train"]
    # Where the mode would not take the run, the error stands, naming the fix.
    for off in (dataclasses.replace(config, few_shot=False),
                dataclasses.replace(config, stages=(StageConfig("head", 0, 1e-3, 5),))):
        with pytest.raises(ValueError, match="val_fraction="):
            few_shot.read_data(task, off)


def test_a_few_shot_run_reports_the_mode_exports_and_serves(tmp_path):
    data = harness.write_tickets_csv(tmp_path / "tickets.csv", per_template=3)
    config = RunConfig(task="text", output_dir=str(tmp_path / "runs"),
                       data=DataConfig(path=str(data), sequence_length=32, seed=0))
    result = train.run(config)
    assert [r.name for r in result.stages] == ["contrastive", "head"]
    contrastive, head = result.stages
    assert contrastive.kept and contrastive.val_accuracy is None
    assert contrastive.settings["same_cosine_after"] > contrastive.settings["same_cosine_before"]
    assert head.settings["folds"] >= 2
    report = (result.run_dir / "report.txt").read_text()
    assert "Few-shot mode: " in report and "cross-validated; optimistic" in report
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert metrics["few_shot"]["on"] and metrics["few_shot"]["threshold"] == DEFAULTS["text"].few_shot_below
    # A handful of test examples: the interval shows how little the score says.
    low, high = metrics["accuracy_interval"]
    assert low < metrics["accuracy"] <= high and high - low > 0.3
    saved = load_config(result.run_dir / "config.yaml")
    assert saved.few_shot is True and saved.stages[0].loss == "contrastive"
    texts = np.array([b"my card was billed 9 times", b"parcel 12 never arrived"])
    served = serve_in_fresh_process(result.saved_model, text_ops=True, text=texts)
    assert served["probabilities"].shape == (2, 3)
    # Resuming the finished run trains nothing and gives the same report.
    resumed = train.run(run_dir=result.run_dir)
    assert resumed.report == result.report


def test_the_default_batch_is_cut_to_a_small_training_set_and_a_chosen_one_is_not(capsys):
    from tfx_transfer.train import pipeline

    # 16 tweets of each of 2 classes with --no-few-shot: 27 left to train on.
    config = tasks.resolve(RunConfig(task="text"))
    cut = pipeline.default_batch_cut(config, 27)
    assert cut.data.batch_size == 27 and "batches of 27" in capsys.readouterr().out
    assert pipeline.default_batch_cut(config, 40) == config
    chosen = dataclasses.replace(config, data=dataclasses.replace(config.data, batch_size=64))
    assert pipeline.default_batch_cut(chosen, 27) == chosen  # refused later, by name
