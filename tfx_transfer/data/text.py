"""Read labelled texts from CSV, TSV, JSON Lines or a folder per class."""

import dataclasses
import functools
import os

from tfx_transfer.config import check_fractions
from tfx_transfer.data import text_formats
from tfx_transfer.data.splits import (
    LabelledData,
    SPLIT_NAMES,
    seeded_split,
    sorted_split,
)

TEXT_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".ndjson")


@dataclasses.dataclass(frozen=True)
class TextData(LabelledData):
    """Class names, train/val/test splits and skipped rows of a text data set.

    Args:
        class_names: tuple of str. sorted class names; a label indexes it.
        splits: dict. `"train"`, `"val"` and `"test"` mapped to `Split`s
            whose items are the texts, stripped of surrounding whitespace.
        skipped: tuple of `(location, reason)` pairs. rows left out, each
            located as `"file:line"`: bad rows (with `skip_bad_rows`) and
            copies of a text that carries conflicting labels.
        duplicates_dropped: int. redundant copies of a text that were
            dropped, within a file and across the given val/test files.
            Rows read = examples + skipped + duplicates dropped.
        split_source: str. `"seeded split"` when every split was drawn from
            `path`, `"files"` when val or test came from their own file.
        carved_splits: tuple of str. splits drawn from `path` while the
            other came from a file (files only).

    Example:

    ```python
    data = read_text_data("reviews.csv")
    data.splits["train"].items[0]  # "Great film, would watch again."
    json.dumps(data.report())
    ```
    """

    duplicates_dropped: int = 0

    def report(self):
        """Return `LabelledData.report()` plus `duplicates_dropped`."""
        return {**super().report(), "duplicates_dropped": self.duplicates_dropped}


def read_text_data(
    path,
    text_column="text",
    label_column="label",
    val_fraction=0.15,
    test_fraction=0.15,
    seed=42,
    skip_bad_rows=False,
    val_path=None,
    test_path=None,
    encoding="utf-8",
):
    """Read labelled texts into train/val/test splits with string class names.

    The format follows `path`: `.csv` (comma-separated with a header row),
    `.tsv` (tab-separated with a header row, fields taken literally: no
    quoting), `.jsonl` / `.ndjson` (one JSON object per line; numeric
    labels become strings), or a folder with one sub-folder of `.txt` files
    per class (the folder name is the label, the file the text). Texts and
    labels are stripped of surrounding whitespace; blank lines are ignored.

    A bad row (empty text, missing label, invalid JSON, bytes that do not
    decode) raises a ValueError naming `file:line` and the problem; with
    `skip_bad_rows` it is recorded in `skipped` instead. A missing column
    is always an error. Exact duplicate texts are dropped before splitting,
    keeping the first; a text with two different labels is dropped entirely
    and recorded in `skipped`. Without `val_path` and `test_path` the splits
    are stratified and depend only on the texts, labels and `seed`; a given
    file is read the same way, its labels must be classes of `path`, its
    texts are dropped from train, and only the missing split is carved.

    Args:
        path: str or path-like. the training data, file or folder.
        text_column: str. column (or JSON key) holding the text.
        label_column: str. column (or JSON key) holding the label.
        val_fraction: float. share of `path` for validation, in [0, 1).
        test_fraction: float. share of `path` for the test set, in [0, 1).
            A fraction of 0 leaves that split empty.
        seed: int. seed of the stratified split.
        skip_bad_rows: bool. record bad rows in `skipped` and go on.
        val_path: str, path-like or None. validation data, same format.
        test_path: str, path-like or None. test data, same format.
        encoding: str or tuple of str. text encoding; a tuple is tried in
            order, line by line (file by file for folders). It must encode
            newlines as ASCII does (e.g. "utf-8", "cp1252", "latin-1").
            A UTF-8 byte order mark is ignored.

    Returns:
        A `TextData` whose splits hold texts sorted within each split.

    Raises:
        ValueError: the data is missing, empty or of an unknown format, a
            column is missing, a row is bad (without `skip_bad_rows`), a
            val/test label is not a class of `path`, there are fewer than
            two classes, or a split is too small to hold every class.

    Example:

    ```python
    data = read_text_data("reviews.jsonl", text_column="review",
                          label_column="stars", test_path="test.jsonl")
    data.class_names  # ("1", "2", "3", "4", "5")
    data.report()["duplicates_dropped"]
    ```
    """
    check_fractions(val_fraction, test_fraction, allow_empty=True)
    if text_column == label_column:
        raise ValueError(
            "`text_column` and `label_column` must differ. Received: "
            f"text_column={text_column!r}, label_column={label_column!r}"
        )
    problems = text_formats.Problems(skip_bad_rows)
    read = functools.partial(
        text_formats.read_rows,
        columns=(text_column, label_column),
        encodings=text_formats.encodings(encoding),
        problems=problems,
    )
    path = _existing(path)
    rows, dropped = _deduplicate(read(path), problems)
    class_names = tuple(sorted({row.label for row in rows}))
    if len(class_names) < 2:
        where = "class folders" if os.path.isdir(path) else repr(label_column)
        raise ValueError(
            f"Text data {path} needs at least 2 classes; its {where} give "
            f"{list(class_names)}."
        )

    given = {"test": test_path, "val": val_path}
    fractions = {"test": test_fraction, "val": val_fraction}
    held_out = {}
    for name, split_path in given.items():
        if split_path is not None:
            split_path = _existing(split_path)
            split_rows = read(split_path)
            _check_known(split_rows, class_names, path)
            held_out[name], count = _deduplicate(split_rows, problems)
            dropped += count
    # A held-out text must not be trained on, and a test text not validated
    # on either: drop copies from the split that is tuned or trained on.
    seen = set()
    for name in held_out:
        kept = [row for row in held_out[name] if row.text not in seen]
        dropped += len(held_out[name]) - len(kept)
        seen.update(row.text for row in kept)
        held_out[name] = kept
    train = [row for row in rows if row.text not in seen]
    dropped += len(rows) - len(train)

    index = {name: i for i, name in enumerate(class_names)}

    def to_split(split_rows):
        texts = [row.text for row in split_rows]
        return sorted_split(texts, [index[row.label] for row in split_rows])

    splits = {name: to_split(split_rows) for name, split_rows in held_out.items()}
    missing = {name: fractions[name] for name in given if name not in held_out}
    splits.update(seeded_split(to_split(train), missing, seed, class_names, path))
    return TextData(
        class_names=class_names,
        splits={name: splits[name] for name in SPLIT_NAMES},
        skipped=tuple(sorted(problems.skipped, key=_location_key)),
        duplicates_dropped=dropped,
        split_source="files" if held_out else "seeded split",
        carved_splits=tuple(n for n in SPLIT_NAMES if held_out and n in missing),
    )


def _existing(path):
    path = os.path.abspath(os.fspath(path))
    if not os.path.exists(path):
        raise ValueError(f"Text data {path} does not exist.")
    if not os.path.isdir(path) and not path.lower().endswith(TEXT_EXTENSIONS):
        raise ValueError(
            f"Text data {path} has an unknown format. Pass a "
            f"{', '.join(TEXT_EXTENSIONS)} file or a folder with one "
            "sub-folder of .txt files per class."
        )
    return path


def _location_key(skip):
    # "f:10" sorts before "f:9" as a string; order by file, then line.
    file, _, line = skip[0].rpartition(":")
    return file, int(line), skip[1]


def _check_known(rows, class_names, train_path):
    for row in rows:
        if row.label not in class_names:
            raise ValueError(
                f"{row.location}: label {row.label!r} is not a class of "
                f"{train_path}, so no model trained on it can predict it. "
                f"Classes: {list(class_names)}"
            )


def _deduplicate(rows, problems):
    """Keep the first copy of each text; drop texts with conflicting labels.

    Returns the kept rows and how many redundant copies were dropped.
    """
    copies = {}
    for row in rows:
        copies.setdefault(row.text, []).append(row)
    kept, dropped = [], 0
    for same_text in copies.values():
        labels = sorted({row.label for row in same_text})
        if len(labels) == 1:
            kept.append(same_text[0])
            dropped += len(same_text) - 1
            continue
        # Not a bad row but a bad example: recorded whatever skip_bad_rows.
        places = ", ".join(row.location for row in same_text[:4])
        for row in same_text:
            problems.skipped.append(
                (row.location, f"conflicting labels {labels} for one text ({places})")
            )
    return kept, dropped
