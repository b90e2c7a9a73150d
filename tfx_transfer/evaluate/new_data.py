"""Scores an exported run on new labelled data, through its served model.

What `python -m tfx_transfer evaluate RUN --data PATH` does: the data is
read in the run's task format (a folder per class, a CSV/TSV/JSONL table,
a CoNLL file), every example goes through the SavedModel's serving
signature as raw bytes or strings, as TF Serving would receive it, and a
fresh report is written next to the run's own, in
`evaluations/<timestamp>/` (metrics.json, report.txt and, for
classifiers, confusion_matrix.png). The folder appears whole or not at all.
"""

import dataclasses
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from tfx_transfer.config_files import load_config
from tfx_transfer.data.conll import read_conll
from tfx_transfer.data.folders import read_image_folder
from tfx_transfer.data.text import read_text_data
from tfx_transfer.evaluate.entities import entity_report, format_entity_report
from tfx_transfer.evaluate.plots import plot_confusion_matrix
from tfx_transfer.evaluate.report import classification_body, classification_metrics
from tfx_transfer.predict import Predictor
from tfx_transfer.progress import tracked

EVALUATIONS_DIR = "evaluations"


@dataclasses.dataclass(frozen=True)
class Evaluation:
    """A finished evaluation.

    Args:
        directory: Path. `RUN/evaluations/<timestamp>/`.
        metrics: dict. As in its metrics.json.
        report: str. The text of its report.txt.
    """

    directory: Path
    metrics: dict
    report: str


def evaluate_run(run_dir, data_path, skip_unknown_labels=False, batch_size=32):
    """Scores a run's exported model on new labelled data; writes and returns the report.

    Args:
        run_dir: str or Path. A finished run directory.
        data_path: str or Path. Labelled data in the run's task format; for
            a folder with train/val/test folders, its test/ folder.
        skip_unknown_labels: bool. Leave out (and count) examples whose label
            the model does not know, instead of refusing the data.
        batch_size: int. Examples per call of the serving signature.

    Returns:
        An `Evaluation`.

    Raises:
        ValueError: the data cannot be read, or holds labels the model does
            not know (named, with their counts) and `skip_unknown_labels` is off.

    Example:

    >>> evaluation = evaluate_run("runs/fashion", "new_photos/")
    >>> evaluation.metrics["accuracy"]
    """
    run_dir = Path(run_dir)
    config = load_config(run_dir / "config.yaml")
    predictor = Predictor(run_dir)
    examples, labels, read_report = _read(config, data_path)
    known = set(predictor.class_names if config.task != "tokens" else _tag_types(predictor))
    unknown = _unknown(labels, known, config.task)
    if unknown and not skip_unknown_labels:
        named = ", ".join(f"{label!r} ({count})" for label, count in sorted(unknown.items()))
        raise ValueError(
            f"{data_path} holds labels the model of {run_dir} does not know: {named}. "
            f"It knows {sorted(known)}. Pass --skip-unknown-labels to leave those out.")
    if config.task == "tokens":
        metrics, body = _score_tokens(predictor, examples, labels, unknown)
    else:
        metrics, body = _score_classes(predictor, examples, labels, batch_size)
    metrics["skipped_unknown_labels"] = dict(sorted(unknown.items()))
    metrics["data"] = {"path": str(Path(data_path).resolve()), **read_report}
    lines = [f"tfx_transfer evaluation of {run_dir.name} on {data_path}",
             f"{metrics['num_examples']} examples scored through the exported SavedModel."]
    if read_report["skipped"]:
        lines.append(f"Skipped {len(read_report['skipped'])} unreadable example(s):")
        lines += [f"  {where}: {why}" for where, why in read_report["skipped"][:10]]
    if unknown:
        lines.append("Left out for labels the model does not know: "
                     + ", ".join(f"{label} ({count})" for label, count in sorted(unknown.items())))
    report = "\n".join(lines + ["", body]) + "\n"
    directory = _write(run_dir, metrics, report, predictor.class_names)
    return Evaluation(directory, metrics, report)


def _read(config, data_path):
    """(examples, labels, report) of new data in the run's task format."""
    if config.task == "images":
        data = read_image_folder(data_path, val_fraction=0, test_fraction=0)
        split = data.splits["test"] if len(data.splits["test"]) else data.splits["train"]
        labels = [data.class_names[i] for i in split.labels]
        return list(split.items), labels, {"skipped": [list(s) for s in data.skipped]}
    if config.task == "text":
        data = read_text_data(data_path, config.data.text_column, config.data.label_column,
                              val_fraction=0, test_fraction=0, skip_bad_rows=True)
        split = data.splits["train"]
        labels = [data.class_names[i] for i in split.labels]
        return list(split.items), labels, {"skipped": [list(s) for s in data.skipped]}
    sentences = read_conll(data_path)
    return ([s.words for s in sentences], [s.tags for s in sentences], {"skipped": []})


def _tag_types(predictor):
    return {name.split("-", 1)[-1] for name in predictor.class_names if name != "O"}


def _unknown(labels, known, task):
    counts = {}
    for label in labels:
        for name in ({tag.split("-", 1)[-1] for tag in label if tag != "O"}
                     if task == "tokens" else {label}):
            if name not in known:
                counts[name] = counts.get(name, 0) + 1
    return counts


def _score_classes(predictor, examples, labels, batch_size):
    index = {name: i for i, name in enumerate(predictor.class_names)}
    kept = [(example, index[label]) for example, label in zip(examples, labels) if label in index]
    if not kept:
        raise ValueError("No example is left to score.")
    rows = []
    starts = range(0, len(kept), batch_size)
    for start in tracked(starts, len(starts), f"Scoring {len(kept)} examples:", "batch"):
        batch = [example for example, _ in kept[start:start + batch_size]]
        rows.append(predictor.predict([Path(e).read_bytes() for e in batch]
                                      if predictor.takes_images else batch))
    y_true = np.array([label for _, label in kept])
    metrics = classification_metrics(y_true, np.concatenate(rows), predictor.class_names)
    return metrics, classification_body(metrics).replace("Test accuracy", "Accuracy", 1)


def _score_tokens(predictor, sentences, tags, unknown):
    true, predicted = [], []
    for words, sentence_tags in tracked(zip(sentences, tags), len(sentences),
                                        f"Tagging {len(sentences)} sentences:", "sentence"):
        if unknown and any(t != "O" and t.split("-", 1)[-1] in unknown for t in sentence_tags):
            continue
        served = predictor.tags(" ".join(words))
        if len(served) != len(words):
            raise ValueError(f"The model split {' '.join(words)!r} into {len(served)} words, "
                             f"not {len(words)}: a word holds whitespace.")
        true.append(list(sentence_tags))
        predicted.append(served)
    metrics = entity_report(true, predicted)
    metrics["num_examples"] = len(true)
    return metrics, format_entity_report(metrics)


def _write(run_dir, metrics, report, class_names):
    """Writes the evaluation folder under a temporary name, then renames it into place."""
    parent = run_dir / EVALUATIONS_DIR
    parent.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    final, suffix = parent / stamp, 1
    while final.exists():
        suffix += 1
        final = parent / f"{stamp}-{suffix}"
    staging = Path(tempfile.mkdtemp(prefix=".tmp-", dir=parent))
    try:
        (staging / "metrics.json").write_text(json.dumps(metrics, indent=2))
        (staging / "report.txt").write_text(report)
        if "confusion_matrix" in metrics:
            plot_confusion_matrix(metrics["confusion_matrix"], class_names,
                                  staging / "confusion_matrix.png")
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final
