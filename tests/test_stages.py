import numpy as np
import keras
import pytest
import tensorflow as tf

from tfx_transfer import backbones, stages
from tfx_transfer.config import ModelConfig, StageConfig
from tfx_transfer.tasks import images

SIZE = 64


def lite0_classifier(num_classes=3):
    # Real weights: with random ones the activations saturate ReLU6 and no
    # gradient reaches the backbone.
    spec = backbones.get_backbone_spec("efficientnet_lite0")
    weights = backbones.resolve_weights(spec, "imagenet")
    backbone = backbones.build_backbone(spec, weights, SIZE)
    model = images.build_image_classifier(spec, backbone, num_classes, ModelConfig(), SIZE)
    return spec, backbone, model


def batch(n=8, num_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 255, size=(n, SIZE, SIZE, 3)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, num_classes, n), num_classes)
    return x, y


def test_trainable_weight_counts_per_stage():
    spec, backbone, model = lite0_classifier()
    counts = {}
    for unfreeze in (0, 1, 2, 3):
        stages.set_trainable_blocks(backbone, spec.unfreeze_groups, unfreeze)
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
    spec, backbone, model = lite0_classifier()
    stages.set_trainable_blocks(backbone, spec.unfreeze_groups, 3)
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
    spec, backbone, _ = lite0_classifier()
    with pytest.raises(ValueError, match="Received: unfreeze=99"):
        stages.set_trainable_blocks(backbone, spec.unfreeze_groups, 99)


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
    spec, backbone, model = lite0_classifier()
    x, y = batch(16)
    train = tf.data.Dataset.from_tensor_slices((x, y)).batch(8)
    # Validation labels the head cannot learn from the training labels.
    val = tf.data.Dataset.from_tensor_slices(batch(16, seed=1)).batch(8)
    head = StageConfig(name="head", unfreeze=0, learning_rate=1e-3, epochs=1)
    # A huge learning rate wrecks the unfrozen blocks: no improvement.
    wreck = StageConfig(name="wreck", unfreeze=3, learning_rate=50.0, epochs=1, patience=1)

    first = stages.run_stages(
        model, backbone, spec.unfreeze_groups, [head], train, val, tmp_path, verbose=0,
        class_weight={0: 1.0, 1: 2.0, 2: 0.5},
    )
    kept = [w.numpy().copy() for w in model.weights]
    assert first[0].kept and (tmp_path / "stages.json").is_file()
    assert (tmp_path / "logs" / "head.csv").is_file()
    assert (tmp_path / "checkpoints" / "head.weights.h5").is_file()

    # A fresh model resumes: "head" is not run again, its weights are loaded.
    spec, backbone, model = lite0_classifier()
    results = stages.run_stages(
        model, backbone, spec.unfreeze_groups, [head, wreck], train, val, tmp_path, verbose=0
    )
    assert results[0] == first[0]
    if results[1].val_accuracy <= first[0].val_accuracy:
        assert not results[1].kept
        for old, new in zip(kept, model.weights):
            np.testing.assert_array_equal(old, new.numpy())
    else:
        assert results[1].kept


class Interrupt(keras.callbacks.Callback):
    """Stops training the hard way after `epoch`, as a killed process would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


def test_interrupted_stage_resumes_from_its_last_epoch(tmp_path):
    spec, backbone, model = lite0_classifier()
    train = tf.data.Dataset.from_tensor_slices(batch(16)).batch(8)
    val = tf.data.Dataset.from_tensor_slices(batch(8, seed=1)).batch(8)
    head = StageConfig(name="head", unfreeze=0, learning_rate=1e-3, epochs=3, patience=5)
    with pytest.raises(KeyboardInterrupt):
        stages.run_stages(
            model, backbone, spec.unfreeze_groups, [head], train, val, tmp_path,
            verbose=0, callbacks=[Interrupt(epoch=1)],
        )
    assert not (tmp_path / "stages.json").exists()
    interrupted = [w.numpy().copy() for w in model.trainable_weights]

    spec, backbone, model = lite0_classifier()
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))
    (result,) = stages.run_stages(
        model, backbone, spec.unfreeze_groups, [head], train, val, tmp_path,
        verbose=0, callbacks=[record],
    )
    # Epochs 0 and 1 were done before the interruption; only epoch 2 runs.
    assert seen == [2]
    assert result.kept and (tmp_path / "stages.json").is_file()
    assert not np.allclose(interrupted[0], model.trainable_weights[0].numpy())
    csv_rows = (tmp_path / "logs" / "head.csv").read_text().strip().splitlines()
    assert len(csv_rows) == 1 + 3  # header, then every epoch across both runs
