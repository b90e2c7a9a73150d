"""The L-BFGS softmax head and the baselines, on real small data (scikit-learn's digits)."""

import numpy as np
import pytest
from sklearn import datasets, linear_model

from tfx_transfer import probe
from tfx_transfer.evaluate import baselines


@pytest.fixture(scope="module")
def digits():
    x, y = datasets.load_digits(return_X_y=True)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(y))
    x, y = x[order], y[order]
    return (x[:600], y[:600]), (x[600:900], y[600:900]), (x[900:], y[900:])


def test_probe_is_reproducible_and_chooses_C_by_validation_log_loss(digits):
    train, val, _ = digits
    first = probe.fit_probe(train, val, 10)
    second = probe.fit_probe(train, val, 10)
    np.testing.assert_array_equal(first.kernel, second.kernel)
    assert first.C == min(first.scores, key=lambda c: first.scores[c]["val_loss"])
    assert set(first.scores) == set(probe.C_GRID)


def test_standardised_fit_gives_sklearn_probabilities_on_raw_features(digits):
    train, val, test = digits
    fit = probe.fit_probe(train, val, 10, grid=(0.1,))
    mean, scale = probe.standardization(train[0])
    reference = linear_model.LogisticRegression(C=0.1, max_iter=300).fit(
        (train[0] - mean) / scale, train[1])
    np.testing.assert_allclose(fit.probabilities(test[0]),
                               reference.predict_proba((test[0] - mean) / scale), atol=1e-5)
    assert np.mean(fit.probabilities(test[0]).argmax(1) == test[1]) > 0.93


def test_near_constant_features_are_not_amplified():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(200, 8))
    features[:, 0] = 3.0 + 1e-30 * rng.normal(size=200)  # a dead dimension
    features[:, 1] = 0.0
    mean, scale = probe.standardization(features)
    assert scale[0] == scale[1] == pytest.approx(0.1 * np.median(features.std(axis=0)), rel=0.2)
    assert np.all(scale[2:] > 0.5)


def test_binary_and_missing_classes_map_onto_a_softmax_layer(digits):
    (x, y), (xv, yv), _ = digits
    keep, keep_val = y < 2, yv < 2
    fit = probe.fit_probe((x[keep], y[keep]), (xv[keep_val], yv[keep_val]), num_classes=3)
    probabilities = fit.probabilities(xv[keep_val])
    assert probabilities.shape == (keep_val.sum(), 3)
    assert probabilities[:, 2].max() < 1e-6  # class 2 never seen: never predicted
    assert np.mean(probabilities.argmax(1) == yv[keep_val]) > 0.97


def test_tokens_are_flattened_without_padding():
    features = np.arange(2 * 3 * 4, dtype=float).reshape(2, 3, 4)
    labels = np.array([[1, 2, 0], [3, 0, 0]])
    weights = np.array([[1, 1, 0], [1, 0, 0]])
    rows, ids = probe.flatten_tokens(features, labels, weights)
    assert rows.shape == (3, 4) and ids.tolist() == [1, 2, 3]
    _, one_hot_ids = probe.flatten_tokens(np.zeros((2, 4)), np.eye(3)[[2, 0]])
    assert one_hot_ids.tolist() == [2, 0]


def test_tfidf_baseline_learns_words_and_most_frequent_tag_baseline_counts():
    texts = ["great phone, love it", "terrible battery", "love the screen", "awful, broke"] * 5
    labels = [1, 0, 1, 0] * 5
    baseline = baselines.tfidf_logistic_regression(
        (texts, labels), (texts[:4], labels[:4]), ["i love it", "it broke, terrible"])
    assert baseline.predictions.tolist() == [1, 0]
    assert "C=" in baseline.details
    tags = baselines.most_frequent_tag(
        [(["Paris", "is", "big"], ["B-loc", "O", "O"]), (["Paris", "Hilton"], ["B-per", "I-per"]),
         (["Paris", "again"], ["B-loc", "O"])],
        [["Paris", "Hilton", "unseen"]])
    assert tags.predictions == [["B-loc", "I-per", "O"]]


def test_without_validation_C_is_chosen_by_stratified_cross_validation(digits):
    (x, y), _, (x_test, y_test) = digits
    few = np.concatenate([np.flatnonzero(y == c)[:8] for c in range(10)])  # 8 a class
    empty = (x[:0], y[:0])
    fit = probe.fit_probe((x[few], y[few]), empty, 10)
    assert fit.folds == 5 and fit.held_out_correct.shape == (80,)
    assert fit.C == min(fit.scores, key=lambda c: fit.scores[c]["val_loss"])
    # The out-of-fold rows are the chosen C's own: their mean is its score.
    assert fit.held_out_correct.mean() == pytest.approx(fit.scores[fit.C]["val_accuracy"])
    assert 0 < fit.scores[fit.C]["fold_accuracy_sd"] < 0.2
    # A score of the rows held out, not of the rows fitted: below the final fit's own.
    own = np.mean(fit.probabilities(x[few]).argmax(1) == y[few])
    assert fit.scores[fit.C]["val_accuracy"] < own
    assert np.mean(fit.probabilities(x_test).argmax(1) == y_test) > 0.8
    # Folds follow the smallest class: 3 examples, 3 folds.
    three = np.concatenate([np.flatnonzero(y == c)[:3] for c in range(10)])
    assert probe.fit_probe((x[three], y[three]), empty, 10).folds == 3


def test_the_tfidf_baseline_cross_validates_without_validation():
    texts = [f"{word} {n}" for word in ("refund", "parcel", "thanks") for n in range(6)]
    labels = np.repeat([0, 1, 2], 6)
    baseline = baselines.tfidf_logistic_regression((texts, labels), ([], []),
                                                   ["refund 99", "parcel 99"])
    assert "5-fold cross-validation" in baseline.details
    assert list(baseline.predictions) == [0, 1]


def test_cross_validation_keeps_the_views_of_an_example_in_one_fold(digits):
    (x, y), _, _ = digits
    few = np.concatenate([np.flatnonzero(y == c)[:6] for c in range(10)])
    rng = np.random.default_rng(0)
    # Three noisy "views" of each of the 60 examples, view after view.
    views = np.concatenate([x[few] + rng.normal(0, 0.5, x[few].shape) for _ in range(3)])
    labels, groups = np.tile(y[few], 3), np.tile(np.arange(60), 3)
    empty = (x[:0], y[:0])
    grouped = probe.fit_probe((views, labels), empty, 10, groups=groups)
    leaky = probe.fit_probe((views, labels), empty, 10)
    assert grouped.folds == 5  # 6 examples a class, not 18 rows
    # Scored on views of examples it also trained on, the leaky estimate is higher.
    assert (leaky.scores[leaky.C]["val_accuracy"]
            > grouped.scores[grouped.C]["val_accuracy"])
