"""Benchmarks that time the project against a baseline measured in the same run.

Timings are measured here, never asserted in tests. Each benchmark returns
a JSON-ready dict and a small table; `benchmarks/*.py` and
`python -m tfx_transfer bench` print them.
"""

import csv
import dataclasses
import random
import tempfile
import time
from pathlib import Path

import keras
import numpy as np

from tfx_transfer import features, stages, tasks
from tfx_transfer.config import DataConfig, RunConfig, StageConfig
from tfx_transfer.data import bundled, conll
from tfx_transfer.data.splits import Split


def _subset(data, per_class, seed):
    """The first `per_class` examples of each class in every split (seeded)."""
    rng = np.random.default_rng(seed)
    splits = {}
    for name, split in data.splits.items():
        labels = np.asarray(split.labels)
        picks = np.concatenate([
            rng.permutation(np.flatnonzero(labels == c))[:per_class]
            for c in range(len(data.class_names))
        ])
        splits[name] = Split(tuple(split.items[i] for i in picks), tuple(int(labels[i]) for i in picks))
    return dataclasses.replace(data, splits=splits)


def head_stage(task="images", per_class=30, epochs=10, image_size=None, sequence_length=None,
               batch_size=32, seed=42, repeats=3):
    """Times the head-only stage: cached features vs the plain Keras loop.

    Both start from the same weights, see the same un-augmented data and run
    the same number of epochs (no early stopping); only the shuffling and
    dropout draws differ, so they reach similar validation accuracy. The
    cached run's time includes computing the features (tracing included).
    One backbone pass over train + val, already traced, is timed as the
    floor. The on-disk feature cache is off: it would skip that pass.

    A shared CPU makes single timings of a few seconds swing by half, so
    the one pass and the cached stage are each the fastest of `repeats`
    runs (as `timeit` reports); the plain loop, minutes long, runs once.

    Args:
        task: str. "images" or "text", on its bundled demo data.
        per_class: int. Examples per class taken from each split.
        epochs: int. Epochs of the head stage.
        image_size: int or None. Images: input size (None: the backbone's).
        sequence_length: int or None. Text: tokens per example.
        batch_size: int.
        seed: int.
        repeats: int. Runs of the one pass and of the cached stage.

    Returns:
        A dict of the measurements and ratios.
    """
    config = RunConfig(
        task=task,
        data=DataConfig(image_size=image_size, sequence_length=sequence_length,
                        batch_size=batch_size, seed=seed),
    )
    config = tasks.resolve(config)
    config = dataclasses.replace(config, augment=dataclasses.replace(config.augment, enabled=False))
    task_object = tasks.get_task(task)
    prepared = task_object.prepare_backbone(config)
    data = _subset(task_object.read_data(config.data), per_class, seed)
    datasets = task_object.make_datasets(data, config, prepared)
    train, val = datasets.train, datasets.val
    plan = [StageConfig(name="head", unfreeze=0, learning_rate=1e-3, epochs=epochs, patience=epochs)]
    classifier = task_object.build_classifier(prepared, data.num_classes, config.model)
    model = classifier.model
    initial = model.get_weights()

    extractor, _ = features.split_classifier(model)
    # Warm-up: tracing, and the first pass that decodes and fills the
    # pipelines' caches, are not the backbone's cost.
    features.extract(extractor, train)
    features.extract(extractor, val)

    def one_pass():
        started = time.perf_counter()
        features.extract(extractor, train)
        features.extract(extractor, val)
        return time.perf_counter() - started

    def head(views):
        model.set_weights(initial)
        keras.utils.set_random_seed(seed)
        started = time.perf_counter()
        caching = features.Caching(views, batch_size, seed) if views else None
        (result,) = stages.run_stages(
            classifier, plan, train, val, tempfile.mkdtemp(),
            objective=task_object.objective(config, data), caching=caching, verbose=0,
        )
        return time.perf_counter() - started, result.val_accuracy, result.epochs_run

    floor = min(one_pass() for _ in range(repeats))
    plain, plain_accuracy, plain_epochs = head(0)
    cached, cached_accuracy, cached_epochs = min(head(1) for _ in range(repeats))
    return {
        "benchmark": "head_stage",
        "task": task,
        "backbone": config.model.backbone,
        "train_examples": len(data.splits["train"]),
        "val_examples": len(data.splits["val"]),
        "epochs": epochs,
        "repeats": repeats,
        "one_backbone_pass_s": floor,
        "plain_s": plain,
        "cached_s": cached,
        "speedup": plain / cached,
        "cached_over_one_pass": cached / floor,
        "plain_val_accuracy": plain_accuracy,
        "cached_val_accuracy": cached_accuracy,
        "plain_epochs_run": plain_epochs,
        "cached_epochs_run": cached_epochs,
        "num_classes": data.num_classes,
    }


def input_pipeline(per_class=30, image_size=None, batch_size=32, seed=42):
    """Times the image input pipeline against what the backbone consumes.

    The training stream (read, decode, resize, cache, shuffle, augment,
    prefetch) is drained twice: the first pass decodes the files, later
    passes come from the in-memory cache and only augment. The backbone's
    rate is measured on the same batches, already in memory.

    Args:
        per_class: int. Training images per class from the bundled demo.
        image_size: int or None. Input size (None: the backbone's, 224).
        batch_size: int.
        seed: int.

    Returns:
        A dict with images/s of each and the ratio (goal: >= 3).
    """
    config = RunConfig(data=DataConfig(image_size=image_size, batch_size=batch_size, seed=seed))
    config = tasks.resolve(config)
    task_object = tasks.get_task("images")
    prepared = task_object.prepare_backbone(config)
    data = _subset(task_object.read_data(config.data), per_class, seed)
    train = task_object.make_datasets(data, config, prepared).train
    count = len(data.splits["train"])

    def drain():
        started = time.perf_counter()
        batches = [images for images, _ in train]
        return batches, count / (time.perf_counter() - started)

    _, first_pass = drain()
    batches, cached_pass = drain()
    model = task_object.build_classifier(prepared, data.num_classes, config.model).model
    extractor, _ = features.split_classifier(model)
    extractor.predict_on_batch(batches[0])  # Warm-up: tracing is not throughput.
    started = time.perf_counter()
    for images in batches:
        extractor.predict_on_batch(images)
    backbone = count / (time.perf_counter() - started)
    return {
        "benchmark": "input_pipeline",
        "backbone": config.model.backbone,
        "image_size": prepared.image_size,
        "train_examples": count,
        "pipeline_first_pass_images_per_s": first_pass,
        "pipeline_cached_images_per_s": cached_pass,
        "backbone_images_per_s": backbone,
        "pipeline_over_backbone": cached_pass / backbone,
        "first_pass_over_backbone": first_pass / backbone,
    }


def serving_latency(image_size=None, repeats=30, batch_size=32, seed=42):
    """Times the exported SavedModel on raw JPEG bytes against the bare backbone.

    One JPEG from the bundled demo (upscaled to the model's size) goes
    through `serving_default` (decode, resize, normalise, backbone, head)
    `repeats` times; the bare backbone runs `repeats` times on the same
    image already decoded and resized. Both are warmed up first.

    Args:
        image_size: int or None. Model input size (None: the backbone's).
        repeats: int. Timed calls of each.
        batch_size: int. Images per call for the batch throughput.
        seed: int.

    Returns:
        A dict with p50/p95 latencies (ms), their ratio (goal <= 1.2) and
        the SavedModel's batch throughput.
    """
    import io

    import tensorflow as tf
    from PIL import Image

    from tfx_transfer import backbones, export
    from tfx_transfer.data import pipeline

    config = tasks.resolve(RunConfig(data=DataConfig(image_size=image_size, seed=seed)))
    task_object = tasks.get_task("images")
    prepared = task_object.prepare_backbone(config)
    data = task_object.read_data(config.data)
    classifier = task_object.build_classifier(prepared, data.num_classes, config.model)
    model, backbone = classifier.model, classifier.backbone
    size = prepared.image_size
    buffer = io.BytesIO()
    Image.open(data.splits["test"].items[0]).convert("RGB").resize((size, size)).save(buffer, "JPEG")
    jpeg = buffer.getvalue()

    with tempfile.TemporaryDirectory() as folder:
        export.export_run(
            model, task_object.serving_fn(classifier, data.class_names), data.class_names, folder
        )
        serve = export.load_serving_model(folder).signatures["serving_default"]
        image = pipeline.decode_and_resize(jpeg, size)[None]
        preprocess = backbones.ImagePreprocessing(prepared.spec.preprocessing)
        bare = tf.function(lambda x: backbone(preprocess(x), training=False))

        def latencies(call):
            call()
            times = []
            for _ in range(repeats):
                started = time.perf_counter()
                call()
                times.append((time.perf_counter() - started) * 1000)
            return np.percentile(times, 50), np.percentile(times, 95)

        served = latencies(lambda: serve(image_bytes=tf.constant([jpeg]))["label"].numpy())
        # A multi-depth backbone returns one map per depth; all are computed.
        backbone_only = latencies(lambda: [t.numpy() for t in tf.nest.flatten(bare(image))])
        batch = tf.constant([jpeg] * batch_size)
        serve(image_bytes=batch)
        started = time.perf_counter()
        serve(image_bytes=batch)["label"].numpy()
        throughput = batch_size / (time.perf_counter() - started)
    return {
        "benchmark": "serving_latency",
        "backbone": config.model.backbone,
        "image_size": size,
        "repeats": repeats,
        "saved_model_p50_ms": served[0],
        "saved_model_p95_ms": served[1],
        "backbone_p50_ms": backbone_only[0],
        "backbone_p95_ms": backbone_only[1],
        "p50_ratio": served[0] / backbone_only[0],
        "p95_ratio": served[1] / backbone_only[1],
        "batch_size": batch_size,
        "saved_model_batch_images_per_s": throughput,
    }


def precision_and_xla(task="images", batch_size=16, repeats=3, image_size=None,
                      sequence_length=None, seed=42):
    """Times the classifier's forward pass in float32, mixed precision and XLA.

    The same batch of real inputs goes through the task's classifier built
    under each setting: float32 (the default, the baseline), mixed float16,
    mixed bfloat16, and float32 compiled with XLA (`jit_compile`). Each is
    warmed up (tracing and compiling are not throughput) and then timed
    `repeats` times.

    Args:
        task: str. "images" or "text", on its bundled demo data.
        batch_size: int. Examples per forward call.
        repeats: int. Timed calls of each setting.
        image_size: int or None. Images: input size (None: the backbone's).
        sequence_length: int or None. Text: tokens per example.
        seed: int.

    Returns:
        A dict with examples/s of each setting and its ratio to float32
        (above 1 is faster).
    """
    import tensorflow as tf

    from tfx_transfer import precision

    config = RunConfig(
        task=task,
        data=DataConfig(image_size=image_size, sequence_length=sequence_length,
                        batch_size=batch_size, seed=seed),
    )
    config = tasks.resolve(config)
    task_object = tasks.get_task(task)
    data = task_object.read_data(config.data)
    settings = (("float32", "off", False), ("mixed_float16", "float16", False),
                ("mixed_bfloat16", "bfloat16", False), ("float32_xla", "off", True))
    result = {"benchmark": "precision_and_xla", "task": task,
              "backbone": config.model.backbone, "batch_size": batch_size}
    inputs = reference = None
    for name, mixed, jit_compile in settings:
        with precision.dtype_policy(mixed):
            prepared = task_object.prepare_backbone(config)
            model = task_object.build_classifier(prepared, data.num_classes, config.model).model
        if inputs is None:
            val = task_object.make_datasets(data, config, prepared).val
            inputs = next(iter(val))[0]
        forward = tf.function(lambda x, model=model: model(x, training=False),
                              jit_compile=jit_compile)
        if reference is None:
            initial = model.get_weights()
        else:
            model.set_weights(initial)  # The same weights: outputs comparable.
        outputs = np.asarray(forward(inputs), np.float32)
        reference = outputs if reference is None else reference
        result[f"{name}_max_abs_diff"] = float(np.max(np.abs(outputs - reference)))
        started = time.perf_counter()
        for _ in range(repeats):
            np.asarray(forward(inputs))
        result[f"{name}_examples_per_s"] = batch_size * repeats / (time.perf_counter() - started)
    for name, _, _ in settings[1:]:
        result[f"{name}_over_float32"] = (
            result[f"{name}_examples_per_s"] / result["float32_examples_per_s"]
        )
    return result


def format_table(result):
    """Formats a benchmark's result dict as an aligned two-column table."""
    width = max(len(key) for key in result)
    lines = []
    for key, value in result.items():
        shown = f"{value:.3f}" if isinstance(value, float) else str(value)
        lines.append(f"{key:<{width}}  {shown}")
    return "\n".join(lines)


def write_mentions_splits(folder, sizes, seed=1):
    """Writes a real text dev set: bundled WNUT-16 tweets, "entity" or "none".

    A tweet is labelled by whether annotators marked any entity in it, a
    token-level question that mean pooling of frozen features answers
    poorly, so fine-tuning has something to win (BBC News topics do not:
    a frozen encoder is already near its ceiling there).

    Args:
        folder: str or Path. Where the CSV files go.
        sizes: dict. Split name -> tweets per class, taken disjoint and in
            that order.
        seed: int. Seeds the shuffle of each class's tweets.

    Returns:
        A dict of split name -> CSV path (columns `text`, `label`).

    Example:

    >>> paths = write_mentions_splits("/tmp/m", {"train": 100, "val": 50, "test": 300})
    """
    groups = {"entity": [], "none": []}
    for sentence in conll.read_conll(bundled.bundled_conll_path()):
        label = "entity" if any(tag != "O" for tag in sentence.tags) else "none"
        groups[label].append(" ".join(sentence.words))
    for texts in groups.values():
        random.Random(seed).shuffle(texts)
    paths, offset = {}, 0
    Path(folder).mkdir(parents=True, exist_ok=True)
    for split, per_class in sizes.items():
        paths[split] = str(Path(folder) / f"{split}.csv")
        with open(paths[split], "w", newline="", encoding="utf-8") as f:
            writer = csv.writer(f)
            writer.writerow(["text", "label"])
            for label, texts in groups.items():
                writer.writerows([t, label] for t in texts[offset:offset + per_class])
        offset += per_class
    return paths
