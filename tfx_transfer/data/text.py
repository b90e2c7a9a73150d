"""Read labelled texts from CSV, TSV, JSON Lines or a folder per class."""

import codecs
import csv
import dataclasses
import functools
import json
import os

from tfx_transfer.data.splits import (
    Split,
    check_fractions,
    seeded_split,
    sorted_split,
    splits_report,
)

TEXT_EXTENSIONS = (".csv", ".tsv", ".jsonl", ".ndjson")
SPLIT_NAMES = ("train", "val", "test")


@dataclasses.dataclass(frozen=True)
class TextData:
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

    class_names: tuple[str, ...]
    splits: dict[str, Split]
    skipped: tuple[tuple[str, str], ...] = ()
    duplicates_dropped: int = 0
    split_source: str = "seeded split"
    carved_splits: tuple[str, ...] = ()

    @property
    def num_classes(self):
        return len(self.class_names)

    def report(self):
        """Return a JSON-ready summary: per-split class counts and skips.

        Returns:
            A dict with the keys of `ImageFolderData.report()` (`skipped`
            holds `[location, reason]` pairs) plus `duplicates_dropped`.
        """
        report = splits_report(
            self.class_names,
            self.splits,
            self.skipped,
            self.split_source,
            self.carved_splits,
        )
        report["duplicates_dropped"] = self.duplicates_dropped
        return report


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
    check_fractions(val_fraction, test_fraction)
    if text_column == label_column:
        raise ValueError(
            "`text_column` and `label_column` must differ. Received: "
            f"text_column={text_column!r}, label_column={label_column!r}"
        )
    problems = _Problems(skip_bad_rows)
    read = functools.partial(
        _read_rows,
        columns=(text_column, label_column),
        encodings=_encodings(encoding),
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


@dataclasses.dataclass(frozen=True)
class _Row:
    location: str
    text: str
    label: str


class _Problems:
    """Bad rows: raised at once, or with `skip` recorded and passed over."""

    def __init__(self, skip):
        self.skip = skip
        self.skipped = []

    def add(self, location, reason):
        if not self.skip:
            raise ValueError(
                f"{location}: {reason}. Fix the row, or pass "
                "skip_bad_rows=True to skip bad rows and list them."
            )
        self.skipped.append((location, reason))


def _encodings(encoding):
    encodings = (encoding,) if isinstance(encoding, str) else tuple(encoding)
    for name in encodings:
        try:
            ascii_newline = b"\n".decode(name) == "\n"
        except (LookupError, UnicodeDecodeError, TypeError):
            ascii_newline = False
        # Lines are split on the newline byte before decoding, so that an
        # undecodable byte is located exactly; UTF-16 and the like cannot be.
        if not ascii_newline:
            raise ValueError(
                "`encoding` must name encodings that write a newline as ASCII "
                f"does, such as 'utf-8' or 'cp1252'. Received: encoding={encoding!r}"
            )
    if not encodings:
        raise ValueError(f"`encoding` is empty. Received: encoding={encoding!r}")
    return encodings


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


def _read_rows(path, columns, encodings, problems):
    """Every usable row of the file or folder `path`, in file order."""
    if os.path.isdir(path):
        rows = _read_folder(path, encodings, problems)
    elif path.lower().endswith((".jsonl", ".ndjson")):
        rows = _read_json_lines(path, columns, encodings, problems)
    else:
        delimiter = "\t" if path.lower().endswith(".tsv") else ","
        rows = _read_table(path, columns, delimiter, encodings, problems)
    if not rows:
        location, reason = problems.skipped[-1]
        raise ValueError(
            f"Text data {path} has no usable rows; every row was skipped "
            f"(the last: {location}: {reason})."
        )
    return rows


def _decode(data, encodings):
    """Decode with the first encoding that fits, else raise the first's error."""
    first_error = None
    for encoding in encodings:
        try:
            return data.decode(encoding)
        except UnicodeDecodeError as error:
            first_error = first_error or error
    raise first_error


def _decode_problem(data, error, encodings):
    """(line number, reason) of the byte `error` could not decode in `data`."""
    line_start = data.rfind(b"\n", 0, error.start) + 1
    line = data.count(b"\n", 0, error.start) + 1
    byte = data[error.start : error.start + 1].hex()
    reason = (
        f"cannot decode byte 0x{byte} (byte {error.start - line_start + 1} of "
        f"the line) as {' or '.join(encodings)}; pass the file's `encoding`"
    )
    return line, reason


def _file_bytes(path):
    with open(path, "rb") as file:
        data = file.read()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    return data


def _decoded_lines(path, encodings, problems):
    """Lines of `path`, newlines kept, and the numbers of undecodable ones.

    An undecodable line is reported at once and replaced by a lossy decoding,
    so a CSV parser still sees where its quoted fields end.
    """
    data = _file_bytes(path)
    if not data.strip():
        raise ValueError(f"Text data {path} is empty.")
    lines = [line + b"\n" for line in data.split(b"\n")]
    lines[-1] = lines[-1][:-1]
    decoded, bad = [], set()
    for number, line in enumerate(lines, 1):
        try:
            decoded.append(_decode(line, encodings))
        except UnicodeDecodeError as error:
            _, reason = _decode_problem(line, error, encodings)
            problems.add(f"{path}:{number}", reason)
            bad.add(number)
            decoded.append(line.decode(encodings[0], errors="replace"))
    return decoded, bad


def _checked_row(location, text, label, problems):
    """A `_Row`, or None after reporting an empty text or label."""
    text, label = text.strip(), label.strip()
    if not text:
        problems.add(location, "empty text")
    elif not label:
        problems.add(location, "missing or empty label")
    else:
        return _Row(location, text, label)
    return None


def _read_table(path, columns, delimiter, encodings, problems):
    lines, bad = _decoded_lines(path, encodings, problems)
    # TSV files rarely quote; a text starting with a quote must stay literal
    # rather than swallow the lines after it.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting)
    records = []
    first_line = 1
    try:
        for fields in reader:
            if fields:  # [] is a blank line
                records.append((first_line, reader.line_num, fields))
            first_line = reader.line_num + 1
    except csv.Error as error:
        raise ValueError(f"{path}:{first_line}: cannot parse: {error}") from None
    header_line, _, header = records[0]
    header = [name.strip() for name in header]
    for column in columns:
        if column not in header:
            raise ValueError(
                f"{path}:{header_line}: no column {column!r}. The columns are "
                f"{header}; pass text_column= and label_column= to choose."
            )
    if len(records) == 1:
        raise ValueError(f"Text data {path} has a header but no rows.")
    text_index, label_index = (header.index(column) for column in columns)
    rows = []
    for first, last, fields in records[1:]:
        if bad.intersection(range(first, last + 1)):
            continue  # reported when decoding
        location = f"{path}:{first}"
        if len(fields) != len(header):
            problems.add(
                location,
                f"row has {len(fields)} fields but the header has "
                f"{len(header)} (a delimiter in an unquoted text?)",
            )
            continue
        row = _checked_row(location, fields[text_index], fields[label_index], problems)
        if row:
            rows.append(row)
    return rows


def _json_type(value):
    names = {dict: "an object", list: "an array", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "a number")


def _read_json_lines(path, columns, encodings, problems):
    lines, bad = _decoded_lines(path, encodings, problems)
    rows = []
    keys_seen = set()
    for number, line in enumerate(lines, 1):
        if number in bad or not line.strip():
            continue
        location = f"{path}:{number}"
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            problems.add(location, f"invalid JSON: {error.msg} (column {error.colno})")
            continue
        if not isinstance(value, dict):
            problems.add(location, f"expected a JSON object, got {_json_type(value)}")
            continue
        keys_seen.update(value)
        missing = [column for column in columns if column not in value]
        if missing:
            problems.add(
                location, f"no key {missing[0]!r}; the object has keys {list(value)}"
            )
            continue
        text, label = (value[column] for column in columns)
        if isinstance(label, (bool, int)):
            label = json.dumps(label)  # 5 -> "5", true -> "true"
        if text is not None and not isinstance(text, str):
            problems.add(
                location, f"{columns[0]!r} is {_json_type(text)}, not a string"
            )
        elif label is not None and not isinstance(label, str):
            problems.add(
                location,
                f"{columns[1]!r} is {_json_type(label)}, not a string or an integer",
            )
        else:
            row = _checked_row(location, text or "", label or "", problems)
            if row:
                rows.append(row)
    # Skipping every row for lack of a key means the key is wrong, not the rows.
    for column in columns:
        if keys_seen and column not in keys_seen:
            raise ValueError(
                f"{path}: no object has the key {column!r}. Keys found: "
                f"{sorted(keys_seen)}; pass text_column= and label_column= to choose."
            )
    return rows


def _visible(names):
    return sorted(name for name in names if not name.startswith("."))


def _read_folder(path, encodings, problems):
    class_dirs = _visible(e.name for e in os.scandir(path) if e.is_dir())
    if class_dirs and set(class_dirs) <= set(SPLIT_NAMES):
        raise ValueError(
            f"Text folder {path} has split folders {class_dirs}; pass its "
            "train folder as `path` and the others as `val_path`/`test_path`."
        )
    rows = []
    for label in class_dirs:
        class_dir = os.path.join(path, label)
        files = []
        for dirpath, dirnames, filenames in os.walk(class_dir):
            dirnames[:] = _visible(dirnames)
            files += [
                os.path.join(dirpath, name)
                for name in _visible(filenames)
                if name.lower().endswith(".txt")
            ]
        if not files:
            raise ValueError(f"Class folder {class_dir} has no .txt files.")
        for file in sorted(files):
            data = _file_bytes(file)
            try:
                text = _decode(data, encodings)
            except UnicodeDecodeError as error:
                line, reason = _decode_problem(data, error, encodings)
                problems.add(f"{file}:{line}", reason)
                continue
            row = _checked_row(f"{file}:1", text, label, problems)
            if row:
                rows.append(row)
    return rows


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
