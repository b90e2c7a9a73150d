"""Few-shot baselines on the bundled demos: k labelled examples per class, 5 seeds each.

The columns a few-shot mode (issue 15) must beat, measured the way the
issue's table was: for k in {4, 8, 16} examples per class, drawn (seeded)
from the demo's training split, a classifier is fitted and scored on the
demo's fixed test split; mean and standard deviation over the seeds.

- text (bundled BBC News, 5 topics, long articles) and mentions (bundled
  WNUT-16 tweets: does the tweet name an entity? 2 classes, 200 test
  tweets a class; short social-media posts, as the issue's held-out set
  is): TF-IDF + logistic regression, and logistic regression on the
  frozen MiniLM-L6 encoder's mean-pooled, L2-normalised embeddings;
- images (bundled Fashion-MNIST, 10 classes): logistic regression on the
  frozen EfficientNet-Lite0's average-pooled, L2-normalised features.

With k examples a class there is nothing to hold out, so every fit uses
scikit-learn's defaults (C=1); the encoders run once over every example
any seed draws, and the test split.

    python benchmarks/few_shot.py --tasks text,mentions,images --shots 4,8,16 --seeds 5
"""

import argparse
import tempfile
import time

import keras
import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import normalize

from tfx_transfer import backbones, bench
from tfx_transfer.backbones.text import load_text_backbone
from tfx_transfer.data import (
    BUNDLED_TEXT_ENCODING,
    bundled_data_dir,
    bundled_text_dir,
    read_image_folder,
    read_text_data,
)
from tfx_transfer.data.pipeline import make_image_dataset
from tfx_transfer.data.splits import Split
from tfx_transfer import probe
from tfx_transfer.contrastive import (
    BATCH_PAIRS,
    MAX_PAIRS,
    contrastive_pairs,
    fit_contrastive,
    sentence_embedder,
)
from tfx_transfer.optimizers import build_optimizer
from tfx_transfer.tasks.defaults import DEFAULTS
from tfx_transfer.unfreezing import set_trainable_blocks


def draw(labels, shots, seed):
    """Indices of `shots` examples of each class, drawn with `seed`."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    return np.concatenate([rng.choice(np.flatnonzero(labels == c), shots, replace=False)
                           for c in np.unique(labels)])


def text_embeddings(texts, sequence_length=128, batch_size=32):
    """Mean-pooled, L2-normalised MiniLM-L6 embeddings (sentence-transformers' recipe)."""
    backbone = load_text_backbone("minilm_l6", "pretrained", sequence_length)
    rows = []
    for start in range(0, len(texts), batch_size):
        features = backbone.preprocessor(texts[start:start + batch_size])
        hidden = np.asarray(backbone.encoder(features)["sequence_output"])
        mask = np.asarray(features["padding_mask"], dtype="float32")[..., None]
        rows.append((hidden * mask).sum(axis=1) / mask.sum(axis=1))
    return normalize(np.concatenate(rows))


def setfit_embeddings(train_texts, train_labels, texts, seed, sequence_length=128):
    """Embeddings of `texts` by MiniLM-L6 after the few-shot mode's contrastive stage.

    The product's stage (`tfx_transfer.contrastive`, the text task's
    few-shot plan: SetFit's pairs and loss, one pass at 2e-5), run on the
    k shots; returns the mean-pooled embeddings, not normalised.
    """
    keras.utils.set_random_seed(seed)
    backbone = load_text_backbone("minilm_l6", "pretrained", sequence_length)
    stage = DEFAULTS["text"].few_shot_stages[0]
    set_trainable_blocks(backbone.encoder, backbone.unfreeze_groups, stage.unfreeze)
    features = {k: np.asarray(v) for k, v in backbone.preprocessor(list(train_texts)).items()}
    pairs = contrastive_pairs(train_labels, seed=seed, max_pairs=MAX_PAIRS)
    optimizer = build_optimizer(stage, -(-len(pairs) // BATCH_PAIRS))
    fit_contrastive(backbone.encoder, features, train_labels, pairs, optimizer, stage.epochs,
                    seed=seed)
    embedder = sentence_embedder(backbone.encoder)
    rows = [embedder(backbone.preprocessor(list(texts[i:i + 32])), training=False)
            for i in range(0, len(texts), 32)]
    return np.concatenate([np.asarray(r) for r in rows])


def image_features(paths, labels):
    """Average-pooled, L2-normalised EfficientNet-Lite0 features of image files."""
    backbone = backbones.prepare_image_backbone("efficientnet_lite0", "imagenet")
    pixels = keras.Input((backbone.image_size, backbone.image_size, 3))
    x = backbones.ImagePreprocessing(backbone.spec.preprocessing)(pixels)
    x = keras.layers.GlobalAveragePooling2D()(backbone.build()(x, training=False))
    dataset = make_image_dataset(Split(tuple(paths), tuple(labels)), backbone.image_size, 32,
                                 int(max(labels)) + 1, training=False, cache=False)
    return normalize(keras.Model(pixels, x).predict(dataset.map(lambda p, y: p), verbose=0))


def mode_accuracy(task, train, picked, test, class_names, seed, few_shot):
    """Test accuracy of a product run on the k shots, run as a user would.

    The k shots are written as a folder of images or a CSV, the demo's
    test split beside them (`test/`, `--test`), and `fine_tune` trains,
    scores and exports with its defaults, the mode forced on (`few_shot`
    True, `--few-shot`) or off (False, `--no-few-shot`).
    """
    import csv
    import os

    from tfx_transfer import api

    root = tempfile.mkdtemp(prefix="few-shot-mode-")
    if task == "images":
        for part, items, labels in (("train", [train.items[i] for i in picked],
                                     [train.labels[i] for i in picked]),
                                    ("test", test.items, test.labels)):
            for item, label in zip(items, labels):
                folder = os.path.join(root, part, class_names[label])
                os.makedirs(folder, exist_ok=True)
                os.symlink(os.path.abspath(item), os.path.join(folder, os.path.basename(item)))
        data, options = root, {}
    else:
        for part, items, labels in (("train", [train.items[i] for i in picked],
                                     [train.labels[i] for i in picked]),
                                    ("test", test.items, test.labels)):
            with open(os.path.join(root, f"{part}.csv"), "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(["text", "label"])
                writer.writerows([item, class_names[label]] for item, label in zip(items, labels))
        data, options = os.path.join(root, "train.csv"), {"test": os.path.join(root, "test.csv")}
    run = api.fine_tune(data, task="images" if task == "images" else "text", seed=seed,
                        output_dir=os.path.join(root, "runs"), verbose=False,
                        few_shot=few_shot, **options)
    on = run.metrics.get("few_shot", {}).get("on", False)  # No entry when the mode is off.
    assert on == few_shot, run.metrics.get("few_shot")
    return run.metrics["accuracy"]


def accuracy(train_x, train_y, test_x, test_y):
    model = LogisticRegression(max_iter=2000).fit(train_x, train_y)
    return float(np.mean(model.predict(test_x) == test_y))


def run_task(task, shots, seeds, setfit=False, save=None, mode=False, compare_from=10**9):
    """{method: {k: [accuracy per seed]}} for one demo."""
    if task == "text":
        data = read_text_data(bundled_text_dir(), encoding=BUNDLED_TEXT_ENCODING)
    elif task == "mentions":
        paths = bench.write_mentions_splits(tempfile.mkdtemp(prefix="few-shot-"),
                                            {"train": 200, "val": 10, "test": 200})
        data = read_text_data(paths["train"], val_path=paths["val"], test_path=paths["test"])
    else:
        data = read_image_folder(bundled_data_dir())
    train, test = data.splits["train"], data.splits["test"]
    draws = {(k, seed): draw(train.labels, k, seed) for k in shots for seed in range(seeds)}
    used = sorted({int(i) for picked in draws.values() for i in picked})
    items = [train.items[i] for i in used] + list(test.items)
    labels = [train.labels[i] for i in used] + list(test.labels)
    started = time.time()
    encoded = image_features(items, labels) if task == "images" else text_embeddings(items)
    print(f"{task}: encoder over {len(items)} examples in {time.time() - started:.0f} s")
    row_of = {index: row for row, index in enumerate(used)}
    test_x, test_y = encoded[len(used):], np.asarray(test.labels)
    results = {}
    for (k, seed), picked in draws.items():
        train_y = np.asarray(train.labels)[picked]
        frozen = accuracy(encoded[[row_of[int(i)] for i in picked]], train_y, test_x, test_y)
        results.setdefault("frozen encoder + LogReg", {}).setdefault(k, []).append(frozen)
        if task != "images":
            vectorizer = TfidfVectorizer(sublinear_tf=True)
            train_x = vectorizer.fit_transform([train.items[i] for i in picked])
            tfidf = accuracy(train_x, train_y, vectorizer.transform(test.items), test_y)
            results.setdefault("TF-IDF + LogReg", {}).setdefault(k, []).append(tfidf)
        if setfit and task != "images":
            texts = [train.items[i] for i in picked]
            tuned = setfit_embeddings(texts, train_y, texts + list(test.items), seed)
            if save:
                np.savez(f"{save}/{task}-{k}-{seed}.npz", embeddings=tuned, train_y=train_y,
                         test_y=test_y)
            unit = normalize(tuned)
            score = accuracy(unit[:len(texts)], train_y, unit[len(texts):], test_y)
            results.setdefault("SetFit + LogReg", {}).setdefault(k, []).append(score)
            # The few-shot mode's head: standardised, C by cross-validation.
            fit = probe.fit_probe((tuned[:len(texts)], train_y), (tuned[:0], train_y[:0]),
                                  len(data.class_names))
            mode = float(np.mean(fit.probabilities(tuned[len(texts):]).argmax(1) == test_y))
            results.setdefault("few-shot mode", {}).setdefault(k, []).append(mode)
            print(f"{task}: SetFit, {k} per class, seed {seed}: {score:.3f} (C=1 on unit "
                  f"vectors), {mode:.3f} (the mode's head, C={fit.C:g})", flush=True)
        if mode:
            # Where the mode is off unless forced, the default run (what a
            # user gets) is measured beside it.
            runs = {"few-shot mode (fine_tune)": True}
            if (k >= DEFAULTS["images" if task == "images" else "text"].few_shot_below
                    or k >= compare_from):
                runs["default run, mode off (fine_tune)"] = False
            for name, forced in runs.items():
                started = time.time()
                score = mode_accuracy(task, train, picked, test, data.class_names, seed, forced)
                results.setdefault(name, {}).setdefault(k, []).append(score)
                print(f"{task}: {name}, {k} per class, seed {seed}: {score:.3f} in "
                      f"{time.time() - started:.0f} s", flush=True)
    return results, len(test), len(data.class_names)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tasks", default="text,mentions,images")
    parser.add_argument("--shots", default="4,8,16")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--setfit", action="store_true",
                        help="text: also SetFit's contrastive fine-tune (a minute a seed)")
    parser.add_argument("--save", help="a folder: keep the tuned embeddings, one .npz a draw")
    parser.add_argument("--compare-from", type=int, default=10**9, metavar="K",
                        help="with --mode: the default run (mode off) beside it from K a class "
                             "up, below the task's threshold too")
    parser.add_argument("--mode", action="store_true",
                        help="also the product's few-shot mode, end to end through fine_tune "
                             "(a minute or two a draw); where the mode would be off, the "
                             "default run with the mode off beside it")
    args = parser.parse_args()
    shots = [int(k) for k in args.shots.split(",")]
    for task in args.tasks.split(","):
        results, test_size, classes = run_task(task, shots, args.seeds, args.setfit, args.save,
                                               args.mode, args.compare_from)
        print(f"\n{task}: {classes} classes, {test_size} test examples, {args.seeds} seeds; "
              "accuracy mean +- sd")
        print(f"| per class | {' | '.join(results)} |")
        print("|---|" + "---|" * len(results))
        for k in shots:
            cells = [f"{np.mean(v[k]):.3f} +- {np.std(v[k]):.3f}" if k in v else "-"
                     for v in results.values()]
            print(f"| {k} | {' | '.join(cells)} |")


if __name__ == "__main__":
    main()
