"""LoRA against unfreezing, on the bundled WNUT "does the tweet name an entity?" task.

Each fine-tune runs in its own process (so that its peak resident memory is
its own) after the same L-BFGS head on the frozen MiniLM-L6: the top 2
transformer layers unfrozen, the 6 layers unfrozen (the text task's
default), everything unfrozen (embeddings too), and LoRA of rank 4, 8 and
16 on the query and value projections of the 6 layers (the encoder frozen),
with Keras' adapters (the kernel's last axis factorised) and over the
full input and output (PEFT's).
For each: validation accuracy of the fine-tuned model, trainable
parameters, seconds per epoch, peak RSS, and the size of what a user must
ship besides the shared base model (the whole weights file, or the
adapter file).

    python benchmarks/lora.py --epochs 3 --train 200 --lora-learning-rate 2e-3 --seeds 3

With `--task images`, the same on the bundled Fashion-MNIST and
EfficientNet-Lite0 (`IMAGE_CONFIGS`): the top blocks unfrozen against LoRA
on their 1x1 convolutions.

    python benchmarks/lora.py --task images --epochs 4 --lora-learning-rate 2e-3 --seeds 3

`--serving N` times instead the exported SavedModel with the adapters merged
(what a run exports) against one that recomputes them on every call.

    python benchmarks/lora.py --serving 50
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

CONFIGS = {
    "top 2 layers": dict(unfreeze=2, learning_rate=5e-5),
    "6 layers (default)": dict(unfreeze=6, learning_rate=5e-5),
    "all (with embeddings)": dict(unfreeze=7, learning_rate=5e-5),
    "LoRA r=4": dict(unfreeze=6, learning_rate=5e-4, lora_rank=4),
    "LoRA r=8": dict(unfreeze=6, learning_rate=5e-4, lora_rank=8),
    "LoRA r=16": dict(unfreeze=6, learning_rate=5e-4, lora_rank=16),
    # Over the full input and output (PEFT's, the paper's): far fewer weights a rank.
    "LoRA full r=4": dict(unfreeze=6, learning_rate=5e-4, lora_rank=4, factorization="full"),
    "LoRA full r=8": dict(unfreeze=6, learning_rate=5e-4, lora_rank=8, factorization="full"),
    "LoRA full r=16": dict(unfreeze=6, learning_rate=5e-4, lora_rank=16, factorization="full"),
}
# Images (`--task images`, the bundled Fashion-MNIST): unfreezing the top
# blocks at the rates benchmarks/recipes.py tried, against LoRA on the same
# blocks' 1x1 convolutions (Keras' adapter of a 1x1 convolution is already
# `in x r + r x out`).
IMAGE_CONFIGS = {
    "top 2 blocks": dict(unfreeze=2, learning_rate=1e-4),
    "top 4 blocks": dict(unfreeze=4, learning_rate=3e-5),
    "LoRA r=8 top 2 blocks": dict(unfreeze=2, learning_rate=5e-4, lora_rank=8),
    "LoRA r=8 top 4 blocks": dict(unfreeze=4, learning_rate=5e-4, lora_rank=8),
    "LoRA r=16 top 4 blocks": dict(unfreeze=4, learning_rate=5e-4, lora_rank=16),
}


def run_one(settings, paths, epochs, out, seed=0):
    """One fine-tune, in this process; writes its measurements to `out` as JSON.

    `paths` None: the bundled images, split by `seed`.
    """
    import keras

    from tfx_transfer import evaluate, features, lora, stages, tasks
    from tfx_transfer.config import DataConfig, RunConfig, StageConfig

    keras.utils.set_random_seed(seed)
    settings = dict(settings)
    lora.FACTORIZATION = settings.pop("factorization", "keras")
    name = "images" if paths is None else "text"
    task = tasks.get_task(name)
    config = tasks.resolve(RunConfig(task=name, data=DataConfig(seed=seed) if paths is None else
                                     DataConfig(path=paths["train"], val_path=paths["val"],
                                                test_path=paths["test"], seed=seed)))
    backbone = task.prepare_backbone(config)
    data = task.read_data(config.data)
    datasets = task.make_datasets(data, config, backbone)
    classifier = task.build_classifier(backbone, data.num_classes, config.model)
    head, _ = config.stages
    stage = StageConfig(name="fine_tune", epochs=epochs, patience=epochs, optimizer="adamw",
                        **settings)
    run_dir = tempfile.mkdtemp(prefix="lora-bench-")
    caching = features.Caching(views=1, batch_size=config.data.batch_size, seed=seed)
    objective = task.objective(config, data)
    (head_result,) = stages.run_stages(classifier, [head], datasets.train, datasets.val, run_dir,
                                       objective=objective, caching=caching, verbose=0)
    started = time.time()
    (result,) = stages.run_stages(classifier, [stage], datasets.train, datasets.val,
                                  f"{run_dir}/ft", objective=objective, verbose=0)
    seconds = time.time() - started
    y_true, probabilities = evaluate.predict_dataset(classifier.model, datasets.test)
    if settings.get("lora_rank"):
        # Moved next to the run's files when the stage is kept.
        kept = f"{run_dir}/ft/{lora.ADAPTERS_FILE}"
        shipped = os.path.getsize(kept if os.path.exists(kept) else
                                  f"{run_dir}/ft/checkpoints/{stage.name}.lora.h5")
    else:  # The whole model's weights, float32 (a .keras file adds a little).
        shipped = 4 * lora.count_params(classifier.model.weights)
    with open(out, "w") as f:
        json.dump({
            "head_val_accuracy": head_result.val_accuracy,
            "val_accuracy": result.val_accuracy,
            "test_accuracy": float((probabilities.argmax(1) == y_true).mean()),
            "trainable_params": result.trainable_params,
            "all_params": lora.count_params(classifier.model.weights),
            "seconds_per_epoch": seconds / max(result.epochs_run, 1),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "shipped_mb": shipped / 2**20,
        }, f)


def serving(repeats, rank=8, factorizations=("full", "keras")):
    """Serving latency of a SavedModel with the adapters merged vs recomputed per call.

    The text classifier with rank-`rank` adapters on its 6 layers' query and
    value projections (B drawn at random, as after training) is exported
    twice: adapters on (what `model.export` of a LoRA model serves: `W + A B`
    every call) and merged (what a run exports). Both SavedModels are loaded
    in this process and called on raw strings, alternately, `repeats` times
    a batch size.

    Returns:
        {factorization: {batch: {"merged_ms": p50, "unmerged_ms": p50}}}.
    """
    import keras
    import tensorflow as tf

    from tfx_transfer import export, lora, tasks
    from tfx_transfer.config import RunConfig

    task = tasks.get_task("text")
    config = tasks.resolve(RunConfig(task="text"))
    backbone = task.prepare_backbone(config)
    pretrained = backbone.encoder.get_weights()
    texts = [f"parcel {i} never arrived, and nobody at the depot answers the phone"
             for i in range(32)]
    folder = tempfile.mkdtemp(prefix="lora-serving-")
    result = {}
    for factorization in factorizations:
        keras.utils.set_random_seed(0)
        backbone.encoder.set_weights(pretrained)
        classifier = task.build_classifier(backbone, 3, config.model)
        layers = lora.target_layers(classifier.backbone, classifier.unfreeze_groups, 6)
        lora.enable(classifier.backbone, layers, rank, factorization=factorization)
        for layer in layers:
            layer.lora_kernel_b.assign(0.01 * np.random.default_rng(0).standard_normal(
                layer.lora_kernel_b.shape).astype("float32"))
        served = {}
        for name in ("unmerged", "merged"):
            if name == "merged":
                lora.merge(layers)
            path = f"{folder}/{factorization}-{name}"
            export.export_run(classifier.model, task.serving_fn(classifier, ["a", "b", "c"]),
                              ["a", "b", "c"], path, track=task.export_objects(classifier))
            served[name] = tf.saved_model.load(f"{path}/saved_model").signatures[
                "serving_default"]
        result[factorization] = {}
        for batch in (1, 32):
            inputs = tf.constant(texts[:batch])
            times = {name: [] for name in served}
            for _ in range(3):  # Warm-up.
                for fn in served.values():
                    fn(text=inputs)
            for _ in range(repeats):
                for name, fn in served.items():
                    started = time.perf_counter()
                    fn(text=inputs)
                    times[name].append(1000 * (time.perf_counter() - started))
            result[factorization][batch] = {f"{name}_ms": float(np.median(t))
                                            for name, t in times.items()}
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--train", type=int, default=200, help="training tweets a class")
    parser.add_argument("--task", choices=("text", "images"), default="text")
    parser.add_argument("--configs", help="names from CONFIGS (text) or IMAGE_CONFIGS; "
                                          "default: all of the task's")
    parser.add_argument("--lora-learning-rate", type=float, default=5e-4)
    parser.add_argument("--seeds", type=int, default=1,
                        help="runs a config (initialisation, shuffles, dropout); mean +- sd")
    parser.add_argument("--serving", type=int, metavar="REPEATS",
                        help="instead: serving latency of the SavedModel with adapters merged "
                             "vs recomputed per call (text, r=8), median of REPEATS calls")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serving:
        print("| factorisation | batch | merged (a run's export) ms | unmerged ms | ratio |")
        print("|---|---|---|---|---|")
        for factorization, rows in serving(args.serving).items():
            for batch, r in rows.items():
                print(f"| {factorization} | {batch} | {r['merged_ms']:.1f} | "
                      f"{r['unmerged_ms']:.1f} | {r['unmerged_ms'] / r['merged_ms']:.2f} |")
        return
    configs = IMAGE_CONFIGS if args.task == "images" else CONFIGS
    if args.one:
        name, paths, out, seed = json.loads(args.one)
        settings = dict(configs[name])
        if settings.get("lora_rank"):
            settings["learning_rate"] = args.lora_learning_rate
        return run_one(settings, paths, args.epochs, out, seed)

    from tfx_transfer import bench

    folder = tempfile.mkdtemp(prefix="lora-data-")
    if args.task == "images":
        paths = None
        print(f"Fashion-MNIST (bundled): 100 images a class, split 70/15/15 by the seed; "
              f"{args.epochs} epochs after the L-BFGS head (AdamW, warm-up and cosine decay; "
              f"LoRA at {args.lora_learning_rate:g}); one process each.\n")
    else:
        paths = bench.write_mentions_splits(folder, {"train": args.train, "val": 100, "test": 200})
        print(f"WNUT mentions: {args.train} training tweets a class, 100 validation, 200 test; "
              f"{args.epochs} epochs after the L-BFGS head (AdamW, warm-up and cosine decay; "
              f"unfreezing at 5e-5, LoRA at {args.lora_learning_rate:g}); one process each.\n")
    print("| fine-tune | head's val accuracy | val accuracy | test accuracy | "
          "trainable params (%) | s/epoch | peak RSS MB | shipped MB |")
    print("|---|---|---|---|---|---|---|---|")
    for name in (args.configs.split(",") if args.configs else configs):
        runs = []
        for seed in range(args.seeds):
            out = os.path.join(folder, "result.json")
            subprocess.run([sys.executable, __file__, "--task", args.task,
                            "--epochs", str(args.epochs),
                            "--lora-learning-rate", str(args.lora_learning_rate),
                            "--one", json.dumps([name, paths, out, seed])], check=True,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            with open(out) as f:
                runs.append(json.load(f))
        r = {key: float(np.mean([run[key] for run in runs])) for key in runs[0]}
        spread = {key: float(np.std([run[key] for run in runs])) for key in runs[0]}
        share = 100 * r["trainable_params"] / r["all_params"]
        accuracy = {key: f"{r[key]:.4f}" + (f" +- {spread[key]:.4f}" if args.seeds > 1 else "")
                    for key in ("head_val_accuracy", "val_accuracy", "test_accuracy")}
        print(f"| {name} | {accuracy['head_val_accuracy']} | {accuracy['val_accuracy']} | "
              f"{accuracy['test_accuracy']} | "
              f"{r['trainable_params']:,.0f} ({share:.2f}%) | {r['seconds_per_epoch']:.0f} | "
              f"{r['peak_rss_mb']:.0f} | {r['shipped_mb']:.2f} |", flush=True)


if __name__ == "__main__":
    main()
