"""Entities from BIO tags, and their precision, recall and F1 (seqeval)."""

import numpy as np
from seqeval.metrics import accuracy_score
from seqeval.metrics import classification_report
from seqeval.metrics.sequence_labeling import get_entities
from seqeval.reporters import StringReporter

from tfx_transfer.evaluate.intervals import bootstrap_interval, verdict

AVERAGES = ("micro", "macro", "weighted")


def entity_report(true_tag_sequences, predicted_tag_sequences):
    """Score predicted tags by whole entities, per type and averaged.

    An entity counts as found only when its type and both boundaries match.
    Scores come from seqeval in its default mode, which reads tags as the
    CoNLL shared tasks' `conlleval` script does (an `I-` after `O` or
    another type starts an entity) rather than its strict mode. A type that
    is only ever predicted, never true, still gets a row (support 0) and
    counts in the macro average; scores of 0/0 are 0.

    Args:
        true_tag_sequences: sequence of sequences of str. the true BIO tags
            of each sentence's real words (no padding or special tokens).
        predicted_tag_sequences: sequence of sequences of str. the
            predicted tags, the same lengths.

    Returns:
        A JSON-ready dict: `entity_types` (type -> `precision`, `recall`,
        `f1`, `support`), `micro`, `macro` and `weighted` (the same keys,
        support the number of true entities), `token_accuracy` (the share
        of words whose tag is right, `O` included), `num_sentences`,
        `num_tokens` and `mode` (`"conlleval"`).

    Example:

    ```python
    metrics = entity_report([["B-PER", "I-PER", "O"]], [["B-PER", "O", "O"]])
    metrics["micro"]["f1"]  # 0.0: the entity's end is wrong
    metrics["token_accuracy"]  # 0.666...
    ```
    """
    true = [list(tags) for tags in true_tag_sequences]
    predicted = [list(tags) for tags in predicted_tag_sequences]
    if len(true) != len(predicted):
        raise ValueError(
            "There must be as many predicted as true sentences. Received: "
            f"{len(true)} true, {len(predicted)} predicted."
        )
    for index, (true_tags, predicted_tags) in enumerate(zip(true, predicted)):
        if len(true_tags) != len(predicted_tags):
            raise ValueError(
                f"Sentence {index} has {len(true_tags)} true tags but "
                f"{len(predicted_tags)} predicted tags."
            )
    num_tokens = sum(len(tags) for tags in true)
    if not num_tokens:
        raise ValueError("There are no tags to score: every sentence is empty.")
    # seqeval's report cannot be built without a single entity to list.
    has_entities = any(tag != "O" for tags in true + predicted for tag in tags)
    rows = {}
    if has_entities:
        rows = classification_report(true, predicted, output_dict=True, zero_division=0)
    averages = {average: _scores(rows.get(f"{average} avg")) for average in AVERAGES}
    return {
        "entity_types": {
            name: _scores(row)
            for name, row in rows.items()
            if not name.endswith(" avg")
        },
        **averages,
        "token_accuracy": float(accuracy_score(true, predicted)),
        "num_sentences": len(true),
        "num_tokens": num_tokens,
        "mode": "conlleval",
    }


def format_entity_report(metrics, digits=4):
    """Return the report as text: seqeval's table and a token accuracy line.

    Args:
        metrics: dict. from `entity_report`.
        digits: int. decimals of the scores.

    Returns:
        str. the per-type and averaged table in the layout of seqeval's
        `classification_report`, then the token accuracy.

    Example:

    ```python
    print(format_entity_report(entity_report(true_tags, predicted_tags)))
    ```
    """
    types = metrics["entity_types"]
    width = max([len(name) for name in types] + [len("weighted avg"), digits])
    reporter = StringReporter(width=width, digits=digits)
    for name, row in types.items():
        reporter.write(name, *_row_values(row))
    reporter.write_blank()
    for average in AVERAGES:
        reporter.write(f"{average} avg", *_row_values(metrics[average]))
    reporter.write_blank()
    return (
        reporter.report() + f"\ntoken accuracy: {metrics['token_accuracy']:.{digits}f} "
        f"({metrics['num_tokens']} tokens in {metrics['num_sentences']} "
        "sentences)\n"
    )


def _scores(row):
    if row is None:
        return {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    return {
        "precision": float(row["precision"]),
        "recall": float(row["recall"]),
        "f1": float(row["f1-score"]),
        "support": int(row["support"]),
    }


def _row_values(row):
    return row["precision"], row["recall"], row["f1"], row["support"]


def entity_spans(words, tags, probabilities):
    """Groups one sentence's BIO tags into entities, as the scores count them.

    The grouping is seqeval's (conlleval's), the one `entity_report`
    scores: a stray `I-` after `O` starts an entity, `B-` always does.

    Args:
        words: sequence of str.
        tags: sequence of str. One BIO tag per word.
        probabilities: sequence of float. Each word's tag probability.

    Returns:
        A list of (entity text, entity type, mean tag probability).

    Example:

    >>> entity_spans(["Barack", "Obama", "visited", "Paris"],
    ...              ["B-person", "I-person", "O", "B-geo-loc"], [0.9, 0.8, 1.0, 0.7])
    [('Barack Obama', 'person', 0.85), ('Paris', 'geo-loc', 0.7)]
    """
    return [
        (" ".join(words[start : end + 1]), kind,
         float(sum(probabilities[start : end + 1]) / (end + 1 - start)))
        for kind, start, end in get_entities(list(tags))
    ]


def micro_f1_interval(true_tag_sequences, predicted_tag_sequences, seed=0):
    """A 95% bootstrap interval of entity micro F1, resampling whole sentences.

    Args:
        true_tag_sequences: sequence of sequences of str.
        predicted_tag_sequences: sequence of sequences of str.
        seed: int. Seeds the resampling.

    Returns:
        A tuple (low, high).

    Example:

    >>> micro_f1_interval(true_tags, predicted_tags)
    (0.46, 0.56)
    """
    counts = sentence_counts(true_tag_sequences, predicted_tag_sequences)
    return bootstrap_interval(lambda index: micro_f1(counts[index]), len(counts), seed=seed)


def sentence_counts(true_tag_sequences, predicted_tag_sequences):
    """Per sentence: (entities found exactly, entities predicted, true entities).

    Returns:
        An int array `[num_sentences, 3]`, which `micro_f1` sums.
    """
    rows = []
    for true, predicted in zip(true_tag_sequences, predicted_tag_sequences, strict=True):
        true_spans = set(get_entities(list(true)))
        predicted_spans = set(get_entities(list(predicted)))
        rows.append((len(true_spans & predicted_spans), len(predicted_spans), len(true_spans)))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


def micro_f1(counts):
    """Entity micro F1 of `sentence_counts` rows: 2 TP / (predicted + true)."""
    found, predicted, true = counts.sum(axis=0)
    return 0.0 if predicted + true == 0 else float(2 * found / (predicted + true))


def compare_micro_f1(true_tag_sequences, model_tags, baseline_tags, seed=0):
    """The model's entity micro-F1 gain over a baseline, with a paired bootstrap interval.

    Sentences are resampled with both taggers' counts together, so the
    interval is that of the difference on the same sentences.

    Returns:
        A dict like `report.compare_to_baseline`'s: `metric` ("micro_f1"),
        `gain`, `interval` and `verdict`.
    """
    model = sentence_counts(true_tag_sequences, model_tags)
    baseline = sentence_counts(true_tag_sequences, baseline_tags)
    gain = micro_f1(model) - micro_f1(baseline)
    low, high = bootstrap_interval(
        lambda index: micro_f1(model[index]) - micro_f1(baseline[index]), len(model), seed=seed
    )
    return {"metric": "micro_f1", "gain": gain, "interval": [low, high],
            "verdict": verdict((low, high))}
