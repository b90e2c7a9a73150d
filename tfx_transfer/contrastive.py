"""SetFit's contrastive stage: tunes a sentence encoder on pairs of labelled examples.

With a handful of labelled examples a class, SetFit (Tunstall et al.,
2022) first fine-tunes the sentence encoder on pairs of them, pulling
examples of a class together and pushing other classes apart (the squared
error of the pair's cosine similarity against 1 or 0), then fits the
classification head on the new embeddings. Pairs multiply the data: 8
examples of 3 classes give 960 pairs a pass, where a softmax head sees 24
rows. `contrastive_pairs` draws them; `fit_contrastive` trains on them with
Keras' own `fit`, so the stage logs, backs up and resumes like any other.
"""

import dataclasses
import math
import shutil
import time

import keras
import numpy as np
import tensorflow as tf

from tfx_transfer import optimizers
from tfx_transfer.progress import say
from tfx_transfer.stage_callbacks import NonFiniteLoss, stage_callbacks
from tfx_transfer.unfreezing import set_trainable_blocks

# SetFit's defaults (its `num_iterations` and batch size), which
# benchmarks/few_shot.py measured; the bound keeps a forced few-shot run on
# a large set to a few minutes a pass on a CPU.
ROUNDS = 20
BATCH_PAIRS = 16
MAX_PAIRS = 4000


def contrastive_pairs(labels, rounds=ROUNDS, seed=0, max_pairs=None):
    """Draws SetFit's pairs: per example and round, one partner of its class and one of another.

    Every example with a classmate takes part in every round, so the pairs
    are balanced: exactly half share a class (target 1.0), half do not
    (target 0.0). An example alone in its class has no positive partner
    and sits out, so that the balance holds.

    Args:
        labels: sequence of int. Each training example's class.
        rounds: int. Pairs drawn per example and per target (SetFit's
            `num_iterations`).
        seed: int. The same seed gives the same pairs.
        max_pairs: int or None. A bound on the count (kept balanced), for
            larger training sets where `2 * rounds * N` would be too many.

    Returns:
        A float32 array of shape `[P, 3]`: first index, second index and
        target cosine similarity, shuffled.

    Raises:
        ValueError: fewer than two classes, or no class with two examples.

    Example:

    >>> pairs = contrastive_pairs([0, 0, 1, 1], rounds=2, seed=0)
    >>> pairs.shape, float(pairs[:, 2].mean())
    ((16, 3), 0.5)
    """
    labels = np.asarray(labels)
    classes = np.unique(labels)
    if len(classes) < 2:
        raise ValueError(f"Contrastive pairs need at least 2 classes. Received: {classes.tolist()}")
    index = np.arange(len(labels))
    members = {c: index[labels == c] for c in classes}
    anchors = [i for i in index if len(members[labels[i]]) > 1]
    if not anchors:
        raise ValueError("Contrastive pairs need a class with at least 2 examples.")
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(rounds):
        for i in anchors:
            same = members[labels[i]]
            pairs.append((i, rng.choice(same[same != i]), 1.0))
            pairs.append((i, rng.choice(index[labels != labels[i]]), 0.0))
    pairs = np.asarray(pairs, dtype="float32")
    if max_pairs is not None and len(pairs) > max_pairs:
        # Whole (positive, negative) couples, so the bound keeps the balance.
        keep = rng.choice(len(pairs) // 2, max_pairs // 2, replace=False)
        pairs = pairs.reshape(-1, 2, 3)[np.sort(keep)].reshape(-1, 3)
    return pairs[rng.permutation(len(pairs))]


def sentence_embedder(encoder):
    """The encoder's mean-pooled token outputs, over any sequence length.

    The pooling the text classifier's head reads ("mean_pool"), without
    its fixed `training=False`: here dropout follows `fit`, as in SetFit.

    Args:
        encoder: a keras-hub `BertBackbone`.

    Returns:
        A `keras.Model` from the three encoder inputs, each int32
        `[batch, length]`, to float `[batch, hidden]`.
    """
    inputs = {name: keras.Input((None,), dtype="int32", name=name)
              for name in ("token_ids", "segment_ids", "padding_mask")}
    tokens = encoder(inputs)["sequence_output"]
    mask = keras.ops.cast(inputs["padding_mask"], "bool")
    pooled = keras.layers.GlobalAveragePooling1D(name="mean_pool")(tokens, mask=mask)
    return keras.Model(inputs, pooled, name="sentence_embedder")


def pair_model(embedder):
    """Two token batches in, the cosine similarity of their embeddings out `[batch, 1]`."""
    names = [tensor.name for tensor in embedder.inputs]
    halves = [{name: keras.Input((None,), dtype="int32", name=f"{side}_{name}")
               for name in names} for side in ("first", "second")]
    first, second = (embedder(half) for half in halves)
    cosine = keras.layers.Dot(axes=-1, normalize=True, dtype="float32", name="cosine")(
        [first, second])
    inputs = {f"{side}_{name}": half[name]
              for side, half in zip(("first", "second"), halves) for name in names}
    return keras.Model(inputs, cosine, name="contrastive_pairs")


def collect_examples(dataset):
    """The examples of a batched (token features, one-hot labels) pipeline, as arrays.

    Returns:
        A tuple (dict of int32 arrays `[N, length]`, int labels `[N]`).
    """
    features, labels = {}, []
    for inputs, targets, *_ in dataset:
        for name, value in inputs.items():
            features.setdefault(name, []).append(np.asarray(value))
        labels.append(np.asarray(targets).argmax(axis=-1))
    return {k: np.concatenate(v) for k, v in features.items()}, np.concatenate(labels)


def _trimmed(features):
    """Cuts a batch's padding columns past its longest text: short posts run 3-4x faster."""
    length = tf.reduce_max(tf.reduce_sum(tf.cast(features["padding_mask"], tf.int32), axis=1))
    return {name: value[:, :length] for name, value in features.items()}


def pair_dataset(features, pairs, batch_size=BATCH_PAIRS, seed=0):
    """Batches of ({first_*, second_*} token features, target cosine `[batch, 1]`).

    Reshuffled every pass; each half trimmed to its batch's longest text.
    """
    examples = {name: tf.constant(value) for name, value in features.items()}

    def gather(first, second, target):
        inputs = {}
        for side, index in (("first", first), ("second", second)):
            half = _trimmed({name: tf.gather(value, index) for name, value in examples.items()})
            inputs.update({f"{side}_{name}": value for name, value in half.items()})
        return inputs, target[:, None]

    dataset = tf.data.Dataset.from_tensor_slices(
        (pairs[:, 0].astype("int32"), pairs[:, 1].astype("int32"), pairs[:, 2]))
    dataset = dataset.shuffle(len(pairs), seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size).map(gather).prefetch(tf.data.AUTOTUNE)


def class_cosines(embedder, features, labels, batch_size=64):
    """Mean cosine similarity of same-class and of other-class pairs of examples.

    What the contrastive stage moves: measured before and after it.

    Returns:
        A dict: "same" and "other", floats; "same" is None when no class
        has two examples.
    """
    rows = [np.asarray(embedder({k: v[i:i + batch_size] for k, v in features.items()},
                                training=False), np.float64)
            for i in range(0, len(labels), batch_size)]
    unit = np.concatenate(rows)
    unit /= np.maximum(np.linalg.norm(unit, axis=1, keepdims=True), 1e-12)
    cosine = unit @ unit.T
    same = np.asarray(labels)[:, None] == np.asarray(labels)[None, :]
    off_diagonal = ~np.eye(len(labels), dtype=bool)
    pairs = same & off_diagonal
    return {"same": float(cosine[pairs].mean()) if pairs.any() else None,
            "other": float(cosine[~same].mean())}


@dataclasses.dataclass(frozen=True)
class ContrastiveFit:
    """What a contrastive stage did.

    Args:
        pairs: int. Pairs a pass (half of them of one class).
        history: dict. Per-epoch "loss", as `fit` logged it.
        before: dict. `class_cosines` on the training examples before.
        after: dict. The same after.
        seconds: float. Time spent.
    """

    pairs: int
    history: dict
    before: dict
    after: dict
    seconds: float


def fit_contrastive(encoder, features, labels, pairs, optimizer, epochs, seed=0, callbacks=(),
                    verbose=0):
    """Tunes `encoder` in place on SetFit's pairs of the labelled examples.

    Args:
        encoder: a keras-hub `BertBackbone`, its trainable layers set.
        features: dict of int32 arrays `[N, length]`: token ids, segment
            ids, padding mask.
        labels: int array `[N]`.
        pairs: array `[P, 3]` from `contrastive_pairs`.
        optimizer: `keras.optimizers.Optimizer`.
        epochs: int. Passes over the pairs.
        seed: int. The pairs' order.
        callbacks: sequence of `keras.callbacks.Callback` for `fit`.
        verbose: int. `fit`'s verbosity.

    Returns:
        A `ContrastiveFit`.

    Example:

    >>> pairs = contrastive_pairs(labels)  # doctest: +SKIP
    >>> fit = fit_contrastive(backbone.encoder, features, labels, pairs,
    ...                       keras.optimizers.Adam(2e-5), epochs=1)  # doctest: +SKIP
    >>> fit.after["same"] > fit.before["same"]  # doctest: +SKIP
    True
    """
    started = time.time()
    embedder = sentence_embedder(encoder)
    before = class_cosines(embedder, features, labels)
    model = pair_model(embedder)
    model.compile(optimizer=optimizer, loss="mse")
    history = model.fit(pair_dataset(features, pairs, seed=seed), epochs=epochs,
                        callbacks=list(callbacks), verbose=verbose, shuffle=False)
    return ContrastiveFit(
        pairs=len(pairs),
        history={k: [float(v) for v in values] for k, values in history.history.items()},
        before=before, after=class_cosines(embedder, features, labels),
        seconds=time.time() - started,
    )


def run_stage(classifier, stage, train_data, run_dir, verbose=0, callbacks=(), seed=0):
    """Runs a contrastive stage of the plan: the encoder tuned, the head untouched.

    Logs and backs up like any stage (`logs/<stage>.csv`, `backup/<stage>`),
    without early stopping: there is no validation score to stop on.

    Args:
        classifier: `tfx_transfer.classifier.Classifier` of the text task.
        stage: `tfx_transfer.config.StageConfig` with `loss="contrastive"`.
        train_data: tf.data.Dataset of (token features, one-hot labels).
        run_dir: Path. The run directory.
        verbose: int. `fit`'s verbosity.
        callbacks: sequence of `keras.callbacks.Callback`, added.
        seed: int. Draws the pairs.

    Returns:
        A tuple (`ContrastiveFit`, or None when a non-finite loss stopped it
        and the encoder was put back; settings dict for the `StageResult`:
        pairs, cosines before and after, or why it stopped).
    """
    set_trainable_blocks(classifier.backbone, classifier.unfreeze_groups, stage.unfreeze)
    examples, labels = collect_examples(train_data)
    pairs = contrastive_pairs(labels, seed=seed, max_pairs=MAX_PAIRS)
    optimizer = optimizers.build_optimizer(stage, math.ceil(len(pairs) / BATCH_PAIRS))
    say(f"\nStage '{stage.name}': the encoder's top {stage.unfreeze} block(s) tuned on "
        f"{len(pairs)} pairs of the {len(labels)} training examples (SetFit's contrastive "
        f"loss), {stage.optimizer}, learning rate {stage.learning_rate:g}, {stage.epochs} "
        "pass(es)")
    started_from, settings = classifier.model.get_weights(), {"pairs": len(pairs)}
    try:
        fit = fit_contrastive(
            classifier.backbone, examples, labels, pairs, optimizer, stage.epochs, seed=seed,
            callbacks=stage_callbacks(stage, run_dir, verbose, early_stopping=False)
            + list(callbacks), verbose=verbose)
    except NonFiniteLoss as stop:
        classifier.model.set_weights(started_from)
        shutil.rmtree(run_dir / "backup" / stage.name, ignore_errors=True)
        settings["stopped"] = f"{stop}; the encoder is as it was"
        say(f"Stage '{stage.name}' stopped: {settings['stopped']}.")
        return None, settings
    settings.update({f"{kind}_cosine_{when}": round(cosines[kind], 4)
                     for when, cosines in (("before", fit.before), ("after", fit.after))
                     for kind in ("same", "other") if cosines[kind] is not None})
    say(f"Stage '{stage.name}': mean cosine of same-class training pairs "
        f"{fit.before['same']:.3f} -> {fit.after['same']:.3f}, other-class "
        f"{fit.before['other']:.3f} -> {fit.after['other']:.3f}, in {fit.seconds:.0f} s.")
    return fit, settings
