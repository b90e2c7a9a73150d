"""The cheap models every report compares against, trained on the run's own split.

What a user gets in five lines of scikit-learn, so the report can say
whether transfer learning earned its cost:

- images: logistic regression on the frozen backbone's pooled top features
  (`tfx_transfer.probe`, C chosen on validation);
- text: TF-IDF of words and word pairs + logistic regression (C chosen on
  validation, or by cross-validation without one);
- tokens: each word's most frequent training tag (O for unseen words).
"""

import collections
import dataclasses

import numpy as np
from sklearn import feature_extraction, linear_model, model_selection, pipeline

from tfx_transfer import probe

C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)


@dataclasses.dataclass(frozen=True)
class Baseline:
    """A baseline's test predictions and how it was made.

    Args:
        name: str. What it is, in a few words.
        details: str. What it chose (its C), for the report.
        predictions: int array `[N]` of test class ids, in test order; for
            tokens, a list of each test sentence's tags.
    """

    name: str
    details: str
    predictions: object


def feature_probe(train, val, test_features, num_classes, class_weight=None):
    """Logistic regression on frozen features, C chosen by validation log-loss.

    Args:
        train: tuple (features `[N, dim]`, class ids `[N]`).
        val: tuple (features `[M, dim]`, class ids `[M]`).
        test_features: array `[K, dim]`.
        num_classes: int.
        class_weight: dict or None. Class id -> loss weight.

    Returns:
        A `Baseline`.

    Example:

    >>> feature_probe((x, y), (x_val, y_val), x_test, 10).predictions[:3]
    array([4, 0, 7])
    """
    fit = probe.fit_probe(train, val, num_classes, class_weight=class_weight)
    return Baseline(
        "logistic regression on the frozen backbone's pooled features",
        f"C={fit.C:g} chosen on " + (f"{fit.folds}-fold cross-validation" if fit.folds
                                     else "validation"),
        fit.probabilities(test_features).argmax(axis=1),
    )


def tfidf_logistic_regression(train, val, test_texts, grid=C_GRID):
    """TF-IDF of words and word pairs + logistic regression, C chosen on validation.

    Args:
        train: tuple (texts, class ids).
        val: tuple (texts, class ids).
        test_texts: sequence of str.
        grid: sequence of float. Values of C tried; the best validation
            accuracy wins, the smaller C on a tie.

    Returns:
        A `Baseline`.

    Example:

    >>> tfidf_logistic_regression((texts, labels), (val_texts, val_labels), test_texts)
    """
    texts, labels = list(train[0]), np.asarray(train[1])
    folds = probe.fold_count(labels) if len(val[0]) == 0 else None
    best, best_accuracy = None, -1.0
    for c in grid:
        model = pipeline.make_pipeline(
            feature_extraction.text.TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True,
                                                    min_df=1),
            linear_model.LogisticRegression(C=c, max_iter=1000),
        )
        if folds:  # No validation split (few-shot mode): cross-validate.
            accuracy = float(np.mean(model_selection.cross_val_score(
                model, texts, labels, cv=model_selection.StratifiedKFold(
                    folds, shuffle=True, random_state=0))))
        model.fit(texts, labels)
        if not folds:
            accuracy = float(np.mean(model.predict(list(val[0])) == np.asarray(val[1])))
        if accuracy > best_accuracy:
            best, best_accuracy = (c, model), accuracy
    c, model = best
    chosen = f"{folds}-fold cross-validation" if folds else "validation"
    return Baseline(
        "TF-IDF (words and word pairs) + logistic regression",
        f"C={c:g} chosen on {chosen}",
        model.predict(list(test_texts)),
    )



def most_frequent_tag(train_sentences, test_sentences, outside="O"):
    """Tags each word with its most frequent training tag; unseen words get `outside`.

    Args:
        train_sentences: sequence of (words, tags) pairs.
        test_sentences: sequence of word sequences.
        outside: str. The tag of words never seen in training.

    Returns:
        A `Baseline`; its predictions are one tag list per test sentence.

    Example:

    >>> most_frequent_tag([(["Paris", "is"], ["B-loc", "O"])], [["Paris", "rocks"]]).predictions
    [['B-loc', 'O']]
    """
    counts = collections.defaultdict(collections.Counter)
    for words, tags in train_sentences:
        for word, tag in zip(words, tags):
            counts[word][tag] += 1
    # Ties go to the tag seen first, so the result does not depend on hashing.
    best = {word: tags.most_common(1)[0][0] for word, tags in counts.items()}
    return Baseline(
        "each word's most frequent training tag",
        f"{len(best)} distinct training words; unseen words tagged {outside}",
        [[best.get(word, outside) for word in words] for words in test_sentences],
    )
