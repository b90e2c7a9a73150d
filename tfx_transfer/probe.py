"""A softmax head fitted to convergence on frozen features, its L2 chosen on validation.

A Dense softmax layer on frozen features is multinomial logistic
regression, a convex problem: L-BFGS (scikit-learn) solves it exactly in
seconds, where Adam at a fixed learning rate and epoch budget stops
somewhere near the optimum. What is left to choose is how much to
regularise, and that is chosen on the validation split by log-loss, a
proper score that is far less noisy than accuracy on a hundred or so
examples. The features are standardised for the fit (so one penalty suits
features of different scales, as from several depths of a network); the
head keeps that standardisation as its first layer
(`tfx_transfer.classifier.Standardize`), so that dropout in later
fine-tuning stages perturbs standardised features, as it would any head. This is the linear probe of the
representation-learning literature, and the same code gives the image
task's baseline.
"""

import dataclasses
import warnings

import numpy as np
from sklearn import exceptions, linear_model, model_selection

# Inverse L2 strengths tried; 1/C is the penalty per standardised feature.
C_GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)
# Folds of the cross-validation that replaces an empty validation split.
MAX_FOLDS = 5


@dataclasses.dataclass(frozen=True)
class ProbeFit:
    """A fitted softmax head: standardisation, then Dense weights.

    Args:
        mean: float32 array `[dim]`. Training features' mean.
        scale: float32 array `[dim]`. Their standard deviation (1 where 0).
        kernel: float32 array `[dim, num_classes]`, on standardised features.
        bias: float32 array `[num_classes]`.
        C: float. The chosen inverse L2 strength.
        scores: dict. C -> {"val_loss", "val_accuracy"} for every C tried
            (cross-validated: also "fold_accuracy_sd").
        folds: int. Folds of the cross-validation that chose C; 0 when a
            validation split did.
        held_out_correct: float array `[N]` or None. Cross-validated: 1.0
            where the chosen C's out-of-fold prediction of a training row
            was right.
    """

    mean: np.ndarray
    scale: np.ndarray
    kernel: np.ndarray
    bias: np.ndarray
    C: float
    scores: dict
    folds: int = 0
    held_out_correct: np.ndarray | None = None

    def probabilities(self, features):
        """Softmax of the head's logits on raw features `[N, dim]`."""
        z = (np.asarray(features, np.float64) - self.mean) / self.scale
        return _softmax(z @ self.kernel + self.bias)


def _softmax(logits):
    logits = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def _log_loss(probabilities, labels):
    """Mean negative log-probability of the true class (clipped at 1e-12)."""
    true = probabilities[np.arange(len(labels)), labels]
    return float(-np.mean(np.log(np.clip(true, 1e-12, 1))))


def fold_count(labels):
    """Stratified folds for labelled rows: as the smallest class allows, 2 to `MAX_FOLDS`."""
    counts = np.bincount(labels)
    return int(np.clip(counts[counts > 0].min(), 2, MAX_FOLDS))


def fit_probe(train, val, num_classes, class_weight=None, grid=C_GRID, max_iter=300,
              groups=None):
    """Fits a softmax head on features, choosing its L2 strength on validation.

    With an empty validation split (few-shot mode) C is chosen by stratified
    k-fold cross-validation over the training rows instead: on a handful
    of examples a held-out split would be noise, and it would cost
    training examples.

    Args:
        train: tuple (features `[N, dim]`, int labels `[N]`).
        val: tuple (features `[M, dim]`, int labels `[M]`); M may be 0.
        num_classes: int. Width of the head; classes missing from `train`
            get a bias of -30 (never predicted).
        class_weight: dict or None. Class id -> loss weight.
        grid: sequence of float. Values of C to try.
        max_iter: int. L-BFGS iterations per fit.
        groups: int array `[N]` or None. For cross-validation: rows of one
            group (the augmented views of an image) stay in one fold, so
            that no fold is scored on views of images it trained on.

    Returns:
        A `ProbeFit`. Deterministic: the same inputs give the same head.

    Example:

    >>> fit = fit_probe((x_train, y_train), (x_val, y_val), num_classes=10)
    >>> fit.probabilities(x_test).argmax(axis=1)
    """
    x, y = np.asarray(train[0], np.float64), np.asarray(train[1])
    x_val, y_val = np.asarray(val[0], np.float64), np.asarray(val[1])
    mean, scale = standardization(x)
    z = (x - mean) / scale
    present = np.unique(y)
    if len(y_val) == 0:
        return _cross_validated(z, y, (mean, scale), num_classes, class_weight, grid, max_iter,
                                groups)
    scores, best = {}, None
    for c in grid:
        model = _fit(z, y, c, class_weight, max_iter)
        kernel, bias = _dense_weights(model, present, num_classes)
        fit = ProbeFit(mean, scale, kernel, bias, c, {})
        probabilities = fit.probabilities(x_val)
        loss = _log_loss(probabilities, y_val)
        accuracy = float(np.mean(probabilities.argmax(1) == y_val))
        scores[c] = {"val_loss": loss, "val_accuracy": accuracy}
        if best is None or loss < scores[best.C]["val_loss"]:
            best = fit
    return dataclasses.replace(best, scores=scores)


def _cross_validated(z, y, standard, num_classes, class_weight, grid, max_iter, groups=None):
    """`fit_probe` without validation: C by k-fold log-loss, then a fit on every row.

    The rows were standardised with every training row's statistics; the
    small leak into each held-out fold is the same for every C compared.
    """
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    _, first = np.unique(groups, return_index=True)
    folds = fold_count(y[first])  # Examples (groups) a class, not rows.
    splitter = model_selection.StratifiedGroupKFold(folds, shuffle=True, random_state=0)
    with warnings.catch_warnings():
        # A class of one example sits in one fold; sklearn warns, and copes.
        warnings.simplefilter("ignore", UserWarning)
        parts = list(splitter.split(z, y, groups))
    scores, best, best_correct = {}, None, None
    for c in grid:
        probabilities = np.zeros((len(y), num_classes))
        for train_rows, held_out in parts:
            model = _fit(z[train_rows], y[train_rows], c, class_weight, max_iter)
            kernel, bias = _dense_weights(model, np.unique(y[train_rows]), num_classes)
            probabilities[held_out] = _softmax(z[held_out] @ kernel + bias)
        correct = (probabilities.argmax(1) == y).astype(np.float32)
        scores[c] = {
            "val_loss": _log_loss(probabilities, y),
            "val_accuracy": float(correct.mean()),
            "fold_accuracy_sd": float(np.std([correct[rows].mean() for _, rows in parts])),
        }
        if best is None or scores[c]["val_loss"] < scores[best]["val_loss"]:
            best, best_correct = c, correct
    kernel, bias = _dense_weights(_fit(z, y, best, class_weight, max_iter), np.unique(y),
                                  num_classes)
    return ProbeFit(*standard, kernel, bias, best, scores, folds, best_correct)


def standardization(features, floor=0.1):
    """Per-feature mean and scale, the scale floored at `floor` times the median one.

    A feature that is (nearly) constant over the training set, as some
    dimensions of a pooled encoder output are, would get a scale near 0:
    harmless for the fit, but in fine-tuning, where the feature starts to
    move, dividing by it blows the gradients up to inf. The floor bounds
    how much more any feature is amplified than a typical one.

    Returns:
        A tuple of float32 arrays (mean `[dim]`, scale `[dim]`).
    """
    mean, std = features.mean(axis=0), features.std(axis=0)
    median = float(np.median(std))
    scale = np.maximum(std, floor * median) if median > 0 else np.where(std > 0, std, 1.0)
    return mean.astype(np.float32), scale.astype(np.float32)


def _fit(z, y, c, class_weight, max_iter):
    model = linear_model.LogisticRegression(C=c, max_iter=max_iter, class_weight=class_weight)
    with warnings.catch_warnings():
        # A strongly regularised fit converges; a weak one may stop at
        # max_iter close enough for a head the next stages keep training.
        warnings.simplefilter("ignore", exceptions.ConvergenceWarning)
        model.fit(z, y)
    return model


def _dense_weights(model, present, num_classes):
    """The coefficients as a softmax layer's kernel and bias, every class a column."""
    coef, intercept = model.coef_, model.intercept_
    if coef.shape[0] == 1:  # Binary: sklearn keeps one logit; softmax([0, z]) = sigmoid(z).
        coef = np.vstack([np.zeros_like(coef), coef])
        intercept = np.array([0.0, intercept[0]])
    kernel = np.zeros((coef.shape[1], num_classes))
    bias = np.full(num_classes, -30.0)
    kernel[:, present] = coef.T
    bias[present] = intercept
    return kernel.astype(np.float32), bias.astype(np.float32)


def flatten_tokens(features, labels, weights=None):
    """Turns per-token arrays into rows for `fit_probe`, keeping weighted tokens only.

    Args:
        features: array `[N, dim]` or `[N, length, dim]`.
        labels: int array `[N]` or `[N, length]`; one-hot `[N, C]` is
            turned into ids.
        weights: array like `labels`, or None. Tokens of weight 0
            (padding, later wordpieces) are left out.

    Returns:
        A tuple (features `[rows, dim]`, labels `[rows]`).
    """
    features, labels = np.asarray(features), np.asarray(labels)
    if features.ndim == 2:
        if labels.ndim == 2:
            labels = labels.argmax(axis=1)
        return features, labels
    keep = (np.ones(labels.shape, bool) if weights is None else np.asarray(weights) > 0)
    return features[keep], labels[keep]


def fit_dense_head(head, train_arrays, val_arrays, class_weight=None, grid=C_GRID,
                   groups=None):
    """Fits a head's "head_standardize" and "probabilities" layers on cached features.

    Args:
        head: keras.Model. The head on features
            (`tfx_transfer.features.split_classifier`).
        train_arrays: tuple. (features, labels[, sample weights]), as
            `tfx_transfer.features.extract` returns them.
        val_arrays: tuple. The same for validation, which chooses C.
        class_weight: dict or None. Class id -> loss weight.
        grid: sequence of float. Values of C to try.
        groups: int array or None. Each training row's example, for
            cross-validation (`fit_probe`).

    Returns:
        A tuple (`ProbeFit`, number of training rows).
    """
    train, val = flatten_tokens(*train_arrays), flatten_tokens(*val_arrays)
    layer = head.get_layer("probabilities")
    fit = fit_probe(train, val, layer.units, class_weight=class_weight, grid=grid,
                    groups=groups)
    head.get_layer("head_standardize").set_weights([fit.mean, fit.scale])
    layer.set_weights([fit.kernel, fit.bias])
    return fit, len(train[0])
