"""LoRA stages on the real MiniLM encoder: adapters train, the base stays, merge, ship, resume."""

import shutil

import h5py
import keras
import numpy as np
import pytest
import tensorflow as tf

import harness
from conftest import serve_in_fresh_process
from tfx_transfer import export, features, lora, stages, tasks
from tfx_transfer.config import DataConfig, RunConfig, StageConfig
from tfx_transfer.data import read_text_data

text = tasks.get_task("text")
RANK = 4
LORA = StageConfig(name="lora", unfreeze=6, learning_rate=3e-3, epochs=2, patience=5,
                   lora_rank=RANK, lora_alpha=8.0)
OBJECTIVE = stages.Objective(keras.losses.CategoricalCrossentropy())


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("lora_data")
    path = harness.write_tickets_csv(folder / "tickets.csv", per_template=4)
    config = tasks.resolve(RunConfig(task="text", data=DataConfig(
        path=str(path), sequence_length=32, batch_size=8, seed=0)))
    backbone = text.prepare_backbone(config)
    data = read_text_data(path, val_fraction=0.25, test_fraction=0.15, seed=0)
    datasets = text.make_datasets(data, config, backbone)
    return backbone, datasets, backbone.encoder.get_weights()


def fresh_classifier(backbone, pretrained):
    """The classifier on the pretrained encoder, as a new run builds it."""
    keras.utils.set_random_seed(0)
    config = tasks.resolve(RunConfig(task="text"))
    backbone.encoder.set_weights(pretrained)
    return text.build_classifier(backbone, 3, config.model)


@pytest.fixture(scope="module")
def lora_run(setup, tmp_path_factory):
    backbone, datasets, pretrained = setup
    classifier = fresh_classifier(backbone, pretrained)
    base = [w.numpy().copy() for w in classifier.backbone.weights]
    fingerprint = features.weights_fingerprint(classifier.backbone)
    run_dir = tmp_path_factory.mktemp("lora_run")
    (result,) = stages.run_stages(classifier, [LORA], datasets.train, datasets.val, run_dir,
                                  objective=OBJECTIVE, verbose=0)
    return classifier, base, fingerprint, run_dir, result


def test_a_lora_stage_leaves_the_base_weights_and_trains_the_adapters(lora_run):
    classifier, base, _, run_dir, result = lora_run
    adapted = lora.target_layers(classifier.backbone, classifier.unfreeze_groups, 6)
    assert len(adapted) == 12  # query and value in each of the 6 layers
    # The model's weights are the list they were: the adapters are merged and gone.
    assert len(classifier.backbone.weights) == len(base)
    merged_paths = {layer._kernel.path for layer in adapted}
    paths = [w.path for w in classifier.backbone.weights]
    with h5py.File(run_dir / lora.ADAPTERS_FILE) as f:
        scale = f.attrs["alpha"] / f.attrs["rank"]
        for layer in adapted:
            a, b = f[f"adapters/{layer.path}/a"][()], f[f"adapters/{layer.path}/b"][()]
            assert np.abs(b).max() > 0  # B starts at zero: it trained
            original = base[paths.index(layer._kernel.path)]
            delta = (a @ b).reshape(original.shape)  # the full input x output, factorised
            np.testing.assert_allclose(layer._kernel.numpy(), original + scale * delta,
                                       atol=1e-6)
    # Every other encoder weight is bit-identical to the pretrained one.
    for weight, before in zip(classifier.backbone.weights, base):
        if weight.path not in merged_paths:
            np.testing.assert_array_equal(weight.numpy(), before, err_msg=weight.path)
    assert result.kept and result.epochs_run == 2


def test_the_trainable_count_matches_the_formula(lora_run):
    *_, result = lora_run
    hidden, heads, head_dim = 384, 12, 32
    per_adapter = hidden * RANK + RANK * heads * head_dim  # PEFT's: in x r + r x out
    head = hidden * 3 + 3  # The attention biases stay frozen (PEFT's bias="none").
    assert result.trainable_params == 12 * per_adapter + head


def test_an_adapter_round_trips_and_the_merged_saved_model_matches_lora(setup, lora_run):
    backbone, _, pretrained = setup
    classifier, _, fingerprint, run_dir, _ = lora_run
    texts = ["my card was billed 9 times", "parcel 12 never arrived", "thanks!"]
    tuned = np.asarray(classifier.model(backbone.preprocessor(tf.constant(texts))))
    # The merged model, exported (first: the test's classifiers share one encoder).
    export_dir = run_dir / "export"
    export.export_run(classifier.model, text.serving_fn(classifier, ["a", "b", "c"]),
                      ["a", "b", "c"], export_dir, track=text.export_objects(classifier))
    # The unmerged model: the base with the adapters switched on.
    fresh = fresh_classifier(backbone, pretrained)
    layers = lora.target_layers(fresh.backbone, fresh.unfreeze_groups, 6)
    with h5py.File(run_dir / lora.ADAPTERS_FILE) as f:
        lora.enable(fresh.backbone, layers, int(f.attrs["rank"]), float(f.attrs["alpha"]))
        for layer in layers:
            layer.lora_kernel_a.assign(f[f"adapters/{layer.path}/a"][()])
            layer.lora_kernel_b.assign(f[f"adapters/{layer.path}/b"][()])
        for name in f["head"]:
            group = f[f"head/{name}"]
            fresh.model.get_layer(name).set_weights([group[str(i)][()] for i in range(len(group))])
    unmerged = np.asarray(fresh.model(backbone.preprocessor(tf.constant(texts))))
    lora.merge(layers)
    np.testing.assert_allclose(unmerged, tuned, atol=1e-5)
    # The merged SavedModel gives the same in a fresh process.
    served = serve_in_fresh_process(export_dir / "saved_model", text_ops=True,
                                    text=np.array([t.encode() for t in texts]))
    np.testing.assert_allclose(served["probabilities"], unmerged, atol=1e-5)
    # load_adapters on a fresh base reproduces the fine-tuned predictions.
    again = fresh_classifier(backbone, pretrained)
    lora.load_adapters(run_dir / lora.ADAPTERS_FILE, again.backbone, again.model, fingerprint)
    np.testing.assert_allclose(
        np.asarray(again.model(backbone.preprocessor(tf.constant(texts)))), tuned, atol=1e-5)
    # An adapter on other base weights (these, already adapted) is refused.
    with pytest.raises(ValueError, match="adapts base weights"):
        lora.load_adapters(run_dir / lora.ADAPTERS_FILE, again.backbone, again.model,
                           features.weights_fingerprint(again.backbone))


class Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        if epoch == 0:
            raise KeyboardInterrupt


def test_a_lora_stage_resumes_mid_stage(setup, tmp_path):
    backbone, datasets, pretrained = setup
    classifier = fresh_classifier(backbone, pretrained)
    with pytest.raises(KeyboardInterrupt):
        stages.run_stages(classifier, [LORA], datasets.train, datasets.val, tmp_path,
                          objective=OBJECTIVE, callbacks=[Interrupt()], verbose=0)
    assert not (tmp_path / lora.ADAPTERS_FILE).exists()
    classifier = fresh_classifier(backbone, pretrained)
    seen = []
    record = keras.callbacks.LambdaCallback(on_epoch_begin=lambda epoch, logs: seen.append(epoch))
    (result,) = stages.run_stages(classifier, [LORA], datasets.train, datasets.val, tmp_path,
                                  objective=OBJECTIVE, callbacks=[record], verbose=0)
    assert seen == [1]  # epoch 0's adapters came back from the backup
    assert result.epochs_run == 2 and (tmp_path / lora.ADAPTERS_FILE).is_file()
    # Restored as saved, not merged into the kernel with A = B = 0 (keras#23244),
    # after which no gradient would reach them.
    with h5py.File(tmp_path / lora.ADAPTERS_FILE) as f:
        assert all(np.abs(f[f"adapters/{name}/b"][()]).max() > 0
                   for name in ("transformer_layer_0/self_attention_layer/query",
                                "transformer_layer_5/self_attention_layer/value"))


@pytest.mark.parametrize("factorization, per_projection", [
    ("full", 384 * 8 + 8 * 12 * 32),  # PEFT's: in x r + r x out
    ("keras", 384 * 12 * 8 + 8 * 32),  # Keras': the kernel's last axis alone
])
def test_both_factorizations_count_as_stated_and_merge_back(setup, factorization,
                                                             per_projection):
    backbone, _, pretrained = setup
    encoder = backbone.encoder
    encoder.set_weights(pretrained)
    layers = lora.target_layers(encoder, backbone.unfreeze_groups, 6)
    tokens = backbone.preprocessor(tf.constant(["parcel 12 never arrived"]))
    before = np.asarray(encoder(tokens)["sequence_output"])
    lora.enable(encoder, layers, 8, 16.0, factorization=factorization)
    assert lora.count_params(encoder.trainable_weights) == 12 * per_projection
    np.testing.assert_array_equal(np.asarray(encoder(tokens)["sequence_output"]), before)
    rng = np.random.default_rng(0)
    for layer in layers:
        layer.lora_kernel_b.assign(rng.normal(0, 0.05, layer.lora_kernel_b.shape))
    adapted = np.asarray(encoder(tokens)["sequence_output"])
    assert np.abs(adapted - before).max() > 0.1
    lora.merge(layers)
    assert type(layers[0]) is keras.layers.EinsumDense and len(encoder.weights) == len(pretrained)
    np.testing.assert_allclose(np.asarray(encoder(tokens)["sequence_output"]), adapted, atol=1e-5)
    encoder.set_weights(pretrained)


@pytest.mark.slow
def test_a_tokens_run_with_lora_adapts_the_tagger_exports_and_serves(tmp_path, capsys):
    from test_tokens_task import write_conll

    data = DataConfig(path=str(write_conll(tmp_path / "train.conll")), sequence_length=16,
                      batch_size=8, val_fraction=0.2, test_fraction=0.2)
    plan = (StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=3),
            StageConfig(name="lora", unfreeze=6, learning_rate=3e-3, epochs=2, patience=5,
                        optimizer="adamw", lora_rank=RANK))
    run = harness.train_tiny("tokens", tmp_path / "runs", data, stages=plan,
                             keep_checkpoints=True)
    out = capsys.readouterr().out
    assert "LoRA rank 4 on 12 layers (query, value)" in out, out
    stage = {s["name"]: s for s in run.metrics["stages"]}["lora"]
    kept = run.run_dir / lora.ADAPTERS_FILE
    path = kept if stage["kept"] else run.run_dir / "checkpoints" / "lora.lora.h5"
    with h5py.File(path) as f:
        assert f.attrs["rank"] == RANK and f.attrs["factorization"] == "full"
        pairs = [(f[f"adapters/{name}/a"][()], f[f"adapters/{name}/b"][()])
                 for name in lora.adapter_paths(f)]
        # The softmax layer trains; the standardisation's statistics are saved, not trained.
        head = sum(f[f"head/probabilities/{i}"].size for i in f["head/probabilities"])
    assert len(pairs) == 12 and all(np.abs(b).max() > 0 for _, b in pairs)
    # Adapters and the tagging head train, nothing else.
    assert stage["trainable_params"] == sum(a.size + b.size for a, b in pairs) + head
    for folder in harness.CHECKPOINT_FOLDERS:  # As a run leaves them without keep_checkpoints.
        shutil.rmtree(run.run_dir / folder, ignore_errors=True)
    served = harness.check_task_run(run, ["Alice flew to Berlin today !"])
    assert served["tags"].shape[0] == 1


def test_lora_on_an_image_backbone_adapts_the_top_blocks_1x1_convolutions(tmp_path):
    import conftest

    classifier = conftest.lite0_classifier(3, 64)
    base = {w.path: w.numpy().copy() for w in classifier.backbone.weights}
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (16, 64, 64, 3)).astype("float32")
    labels = keras.utils.to_categorical(np.arange(16) % 3, 3)
    data = tf.data.Dataset.from_tensor_slices((images, labels)).batch(8)
    stage = StageConfig(name="lora", unfreeze=2, learning_rate=1e-2, epochs=2, patience=5,
                        lora_rank=RANK)
    (result,) = stages.run_stages(classifier, [stage], data, data, tmp_path,
                                  objective=stages.Objective(), verbose=0)
    assert result.kept  # The first stage: its adapter is the run's.
    with h5py.File(tmp_path / lora.ADAPTERS_FILE) as f:
        assert f.attrs["factorization"] == "keras"  # A 1x1 kernel's: in x r + r x out.
        adapted = {name: (f[f"adapters/{name}/a"][()], f[f"adapters/{name}/b"][()])
                   for name in lora.adapter_paths(f)}
    # The top block's expand and project convolutions and the head's conv;
    # not the depthwise convolution, nor anything lower.
    assert sorted(name.rpartition("/")[2] for name in adapted) == [
        "block15_expand_conv", "block15_project_conv", "top_conv"]
    shapes = {name.rpartition("/")[2]: a.shape[-2:] + b.shape[-1:]
              for name, (a, b) in adapted.items()}
    assert shapes == {"block15_expand_conv": (192, RANK, 1152),
                      "block15_project_conv": (1152, RANK, 320), "top_conv": (320, RANK, 1280)}
    head = classifier.model.get_layer("probabilities").count_params()
    assert result.trainable_params == RANK * (192 + 1152 + 1152 + 320 + 320 + 1280) + head
    by_layer = {name.rpartition("/")[2]: pair for name, pair in adapted.items()}
    for weight in classifier.backbone.weights:
        layer = weight.path.split("/")[0]
        if layer in by_layer and weight.path.endswith("kernel"):
            a, b = by_layer[layer]
            assert np.abs(b).max() > 0
            delta = (a.reshape(-1, RANK) @ b).reshape(base[weight.path].shape)
            np.testing.assert_allclose(weight.numpy(), base[weight.path] + delta, atol=1e-6)
        else:  # BatchNorm statistics, depthwise and lower kernels: untouched.
            np.testing.assert_array_equal(weight.numpy(), base[weight.path], err_msg=weight.path)
