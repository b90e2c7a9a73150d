import numpy as np
import keras
import pytest
import tensorflow as tf

import conftest
from tfx_transfer import backbones, stages
from tfx_transfer.config import StageConfig

SIZE = 64
OBJECTIVE = stages.Objective()


def lite0_classifier(num_classes=3):
    classifier = conftest.lite0_classifier(num_classes, SIZE)
    return classifier, classifier.backbone, classifier.model


def batch(n=8, num_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, size=(n, SIZE, SIZE, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, num_classes, n), num_classes)
    return x, y


def test_trainable_weight_counts_per_stage():
    classifier, backbone, model = lite0_classifier()
    counts = {}
    for unfreeze in (0, 1, 2, 3):
        stages.set_trainable_blocks(backbone, classifier.unfreeze_groups, unfreeze)
        counts[unfreeze] = len(model.trainable_weights)
    # Head: Dense kernel + bias. "top": the 1x1 head conv (no bias; its BN
    # stays frozen). Each MBConv block: expand, depthwise, project kernels.
    assert counts == {0: 2, 1: 3, 2: 6, 3: 9}
    assert not any(
        w.trainable
        for layer in backbone.layers
        if isinstance(layer, keras.layers.BatchNormalization)
        for w in layer.weights
    )


def test_stage_two_step_leaves_batchnorm_statistics_alone():
    classifier, backbone, model = lite0_classifier()
    stages.set_trainable_blocks(backbone, classifier.unfreeze_groups, 3)
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy")
    bn_layers = [l for l in backbone.layers if isinstance(l, keras.layers.BatchNormalization)]
    before = {l.name: [w.numpy().copy() for w in l.weights] for l in bn_layers}
    top_kernel = backbone.get_layer("top_conv").kernel.numpy().copy()
    frozen_kernel = backbone.get_layer("block3_dwconv").kernel.numpy().copy()

    model.train_on_batch(*batch())

    for layer in bn_layers:
        for old, new in zip(before[layer.name], layer.weights):
            np.testing.assert_array_equal(old, new.numpy(), err_msg=layer.name)
    assert not np.allclose(top_kernel, backbone.get_layer("top_conv").kernel.numpy())
    np.testing.assert_array_equal(frozen_kernel, backbone.get_layer("block3_dwconv").kernel.numpy())


def test_too_many_blocks_is_an_error():
    classifier, backbone, _ = lite0_classifier()
    with pytest.raises(ValueError, match="Received: unfreeze=99"):
        stages.set_trainable_blocks(backbone, classifier.unfreeze_groups, 99)


@pytest.mark.parametrize("name", sorted(backbones.BACKBONES))
def test_every_weighted_backbone_layer_is_in_exactly_one_group(name):
    spec = backbones.get_backbone_spec(name)
    backbone = backbones.build_backbone(spec, None, 96)
    for layer in backbone.layers:
        # Normalization holds fixed ImageNet statistics, never trained.
        if not layer.weights or isinstance(layer, keras.layers.Normalization):
            continue
        groups = [g for g in spec.unfreeze_groups if stages.in_group(layer.name, g)]
        assert len(groups) == 1, (layer.name, groups)


def test_a_stage_that_does_not_improve_is_discarded_and_resume_skips_done_stages(tmp_path):
    classifier, _, model = lite0_classifier()
    # Every label is class 0: the head reaches validation accuracy 1.0,
    # which no later stage can beat, so the fine-tuning stage must be
    # discarded however its epoch goes.
    x, _ = batch(16)
    y = keras.utils.to_categorical(np.zeros(16), 3)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    val = tf.data.Dataset.from_tensor_slices((x[:8], y[:8])).batch(8)
    head = StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=3, patience=3)
    fine_tune = StageConfig(name="fine_tune", unfreeze=3, learning_rate=1e-3, epochs=1)

    objective = stages.Objective(class_weight={0: 1.0, 1: 2.0, 2: 0.5})
    first = stages.run_stages(classifier, [head], train, val, tmp_path, objective=objective,
                              verbose=0)
    assert first[0].kept and first[0].val_accuracy == 1.0
    kept = [w.numpy().copy() for w in model.weights]
    assert (tmp_path / "stages.json").is_file()
    assert (tmp_path / "logs" / "head.csv").is_file()
    assert (tmp_path / "checkpoints" / "head.weights.h5").is_file()

    # A fresh model resumes: "head" is not run again, its weights are loaded.
    classifier, _, model = lite0_classifier()
    trained = []
    record = keras.callbacks.LambdaCallback(
        on_train_end=lambda logs: trained.append([w.numpy().copy() for w in model.weights])
    )
    results = stages.run_stages(classifier, [head, fine_tune], train, val, tmp_path,
                                objective=OBJECTIVE, callbacks=[record], verbose=0)
    assert results[0] == first[0]
    assert len(trained) == 1  # Only the fine-tuning stage trained.
    assert not results[1].kept and results[1].epochs_run == 1
    # It did change the weights, and they were put back.
    assert any(not np.array_equal(a, b) for a, b in zip(kept, trained[0]))
    for old, new in zip(kept, model.weights):
        np.testing.assert_array_equal(old, new.numpy())


class Interrupt(keras.callbacks.Callback):
    """Stops training the hard way after `epoch`, as a killed process would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("torn", [False, True])
def test_interrupted_stage_resumes_from_its_last_epoch(tmp_path, torn):
    classifier, _, model = lite0_classifier()
    train = tf.data.Dataset.from_tensor_slices(batch(16)).batch(8)
    val = tf.data.Dataset.from_tensor_slices(batch(8, seed=1)).batch(8)
    head = StageConfig(name="head", unfreeze=0, learning_rate=1e-3, epochs=3, patience=5)
    with pytest.raises(KeyboardInterrupt):
        stages.run_stages(classifier, [head], train, val, tmp_path, objective=OBJECTIVE,
                          callbacks=[Interrupt(epoch=1)], verbose=0)
    assert not (tmp_path / "stages.json").exists()
    interrupted = [w.numpy().copy() for w in model.trainable_weights]
    if torn:  # Killed while writing epoch 1's backup: half a file.
        latest = tmp_path / "backup" / "head" / "latest.weights.h5"
        latest.write_bytes(latest.read_bytes()[:1000])

    classifier, _, model = lite0_classifier()
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))
    (result,) = stages.run_stages(classifier, [head], train, val, tmp_path,
                                  objective=OBJECTIVE, callbacks=[record], verbose=0)
    # Epochs 0 and 1 were done before the interruption; only epoch 2 runs,
    # or, with epoch 1's backup torn, epochs 1 and 2 from epoch 0's copy.
    assert seen == ([1, 2] if torn else [2])
    assert result.kept and (tmp_path / "stages.json").is_file()
    assert not np.allclose(interrupted[0], model.trainable_weights[0].numpy())
    csv_rows = (tmp_path / "logs" / "head.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + 3  # header, then every epoch across both runs
    # The result (and so the report and the curves) counts them all too.
    assert result.epochs_run == 3 and len(result.history["val_accuracy"]) == 3


def test_plan_names_the_backbones_own_normalization():
    classifier, _, _ = lite0_classifier()
    plan = [StageConfig(name="head", unfreeze=0, learning_rate=1e-3, epochs=1),
            StageConfig(name="fine_tune", unfreeze=2, learning_rate=1e-4, epochs=1)]
    text = stages.describe_plan(plan, classifier)
    assert "top 2 backbone block(s) [top, block15]" in text
    assert "BatchNorm layers stay frozen" in text and "LayerNorm" not in text


def _colour_pipelines(colour_folder):
    from tfx_transfer.data import folders, pipeline

    data = folders.read_image_folder(colour_folder, val_fraction=0.3, test_fraction=0.1, seed=0)
    return [pipeline.make_image_dataset(data.splits[name], SIZE, 8, 3, training=name == "train")
            for name in ("train", "val")]


def test_lbfgs_head_is_fitted_reproducibly_and_refit_on_train_and_val(colour_folder, tmp_path):
    from tfx_transfer import features, probe

    train, val = _colour_pipelines(colour_folder)
    head = StageConfig(name="head", unfreeze=0, learning_rate=1e-3, epochs=5, optimizer="lbfgs")
    caching = features.Caching(batch_size=8)
    kernels = {}
    for name, refit in (("a", False), ("b", False), ("c", True)):
        classifier, _, model = lite0_classifier()
        (result,) = stages.run_stages(classifier, [head], train, val, tmp_path / name,
                                      objective=OBJECTIVE, caching=caching, refit=refit,
                                      verbose=0)
        kernels[name] = model.get_layer("probabilities").kernel.numpy()
    assert result.settings["C"] in probe.C_GRID and result.settings["refit"]
    assert result.val_accuracy == 1.0  # solid colours
    assert result.epochs_run == 0 and result.trainable_params == kernels["a"].size + 3
    np.testing.assert_array_equal(kernels["a"], kernels["b"])
    assert not np.allclose(kernels["a"], kernels["c"])  # more data, another fit
    rows = (tmp_path / "a" / "logs" / "head.csv").read_text().strip().splitlines()
    assert rows[0] == "C,val_loss,val_accuracy" and len(rows) == 1 + len(probe.C_GRID)
    assert (tmp_path / "a" / "checkpoints" / "head.weights.h5").is_file()
    assert "L-BFGS" in stages.describe_plan([head], classifier)


def test_lbfgs_without_cached_features_falls_back_to_adam(colour_folder, tmp_path, capsys):
    train, val = _colour_pipelines(colour_folder)
    head = StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=2, optimizer="lbfgs")
    classifier, _, _ = lite0_classifier()
    (result,) = stages.run_stages(classifier, [head], train, val, tmp_path,
                                  objective=OBJECTIVE, verbose=0)
    assert "does not apply; training with Adam" in capsys.readouterr().out
    assert result.epochs_run == 2 and "C" not in result.settings
