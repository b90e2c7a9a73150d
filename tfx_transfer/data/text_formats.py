"""Parse CSV, TSV, JSON Lines and folders of .txt files into located rows.

Each row keeps the `file:line` it came from, so that a bad row is reported
exactly. Turning rows into train/val/test splits is `text.read_text_data`.
"""

import codecs
import csv
import dataclasses
import json
import os

from tfx_transfer.data.splits import SPLIT_NAMES

# The longest CSV/TSV field read (csv's own default is 128 KiB).
MAX_FIELD_BYTES = 64 * 2**20


@dataclasses.dataclass(frozen=True)
class Row:
    """One labelled text and where it was read.

    Args:
        location: str. `"file:line"` of the row.
        text: str. the text, stripped of surrounding whitespace.
        label: str. the label, stripped of surrounding whitespace.
    """

    location: str
    text: str
    label: str


class Problems:
    """Bad rows: raised at once, or with `skip` recorded and passed over.

    Args:
        skip: bool. record bad rows in `skipped` instead of raising.
    """

    def __init__(self, skip):
        self.skip = skip
        self.skipped = []

    def add(self, location, reason):
        """Raise a ValueError for a bad row, or record it when skipping.

        Args:
            location: str. `"file:line"` of the bad row.
            reason: str. what is wrong with it.
        """
        if not self.skip:
            raise ValueError(
                f"{location}: {reason}. Fix the row, or pass "
                "skip_bad_rows=True to skip bad rows and list them."
            )
        self.skipped.append((location, reason))


def encodings(encoding):
    """Check `encoding` and return it as a tuple of encoding names.

    Args:
        encoding: str or tuple of str. one encoding, or several to try in
            order; each must write a newline as ASCII does.

    Returns:
        A non-empty tuple of encoding names.

    Raises:
        ValueError: `encoding` is empty, or names an unknown encoding or
            one that does not write a newline as ASCII does.
    """
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


def read_rows(path, columns, encodings, problems):
    """Read every usable row of the file or folder `path`, in file order.

    Args:
        path: str. a `.csv`, `.tsv`, `.jsonl` or `.ndjson` file (any other
            name is read as CSV), or a folder with one sub-folder of `.txt`
            files per class.
        columns: tuple of str. the text column (or JSON key), then the
            label column; folders ignore it.
        encodings: tuple of str. encodings to try in order, as returned by
            `encodings()`.
        problems: `Problems`. where bad rows are raised or recorded.

    Returns:
        A non-empty list of `Row`s.

    Raises:
        ValueError: the file is empty, a column or key is missing, a CSV
            cannot be parsed, a folder holds split or empty class folders,
            a row is bad and `problems` does not skip, or no row is usable.
    """
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


def decode_problem(data, error, encodings, advice="pass the file's `encoding`"):
    """(line number, reason) of the byte `error` could not decode in `data`.

    Args:
        data: bytes. What was being decoded.
        error: UnicodeDecodeError. Raised decoding `data`.
        encodings: sequence of str. The encodings that were tried.
        advice: str. What the user should do, closing the reason.

    Returns:
        A tuple (1-based line number, reason), the reason naming the byte
        and its place in the line.

    Example:

    >>> decode_problem(b"ok\n\xfc", error, ["utf-8"])[0]
    2
    """
    line_start = data.rfind(b"\n", 0, error.start) + 1
    line = data.count(b"\n", 0, error.start) + 1
    byte = data[error.start : error.start + 1].hex()
    reason = (
        f"cannot decode byte 0x{byte} (byte {error.start - line_start + 1} of "
        f"the line) as {' or '.join(encodings)}; {advice}"
    )
    return line, reason


# Files that are no text at all, by their first bytes, and what to do instead.
_ARCHIVES = (
    (b"PK\x03\x04", "a ZIP archive (an Excel workbook, or a zipped file?): unzip it, or "
                     "save the sheet as CSV"),
    (b"\x1f\x8b", "gzip-compressed: decompress it first (gunzip)"),
    (b"%PDF", "a PDF document: export its text to CSV first"),
)


def file_bytes(path):
    """The bytes of the file at `path`, without a UTF-8 byte order mark.

    Raises:
        ValueError: the file is an archive or a document, not text.
    """
    with open(path, "rb") as file:
        data = file.read()
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8) :]
    for magic, what in _ARCHIVES:
        if data.startswith(magic):
            raise ValueError(f"Text data {path} is not a text file: it is {what}.")
    return data


def _decoded_lines(path, encodings, problems):
    """Lines of `path`, newlines kept, and the numbers of undecodable ones.

    An undecodable line is reported at once and replaced by a lossy decoding,
    so a CSV parser still sees where its quoted fields end.
    """
    data = file_bytes(path)
    if not data.strip():
        raise ValueError(f"Text data {path} is empty.")
    lines = [line + b"\n" for line in data.split(b"\n")]
    lines[-1] = lines[-1][:-1]
    decoded, bad = [], set()
    for number, line in enumerate(lines, 1):
        try:
            decoded.append(_decode(line, encodings))
        except UnicodeDecodeError as error:
            _, reason = decode_problem(line, error, encodings)
            problems.add(f"{path}:{number}", reason)
            bad.add(number)
            decoded.append(line.decode(encodings[0], errors="replace"))
    return decoded, bad


def _checked_row(location, text, label, problems):
    """A `Row`, or None after reporting an empty text or label."""
    text, label = text.strip(), label.strip()
    if "\x00" in text or "\x00" in label:
        # Never in real text: a binary or UTF-16 file, or a corrupted row.
        problems.add(location, "NUL byte in the row (binary data, or a UTF-16 file?)")
    elif not text:
        problems.add(location, "empty text")
    elif not label:
        problems.add(location, "missing or empty label")
    else:
        return Row(location, text, label)
    return None


def _read_table(path, columns, delimiter, encodings, problems):
    lines, bad = _decoded_lines(path, encodings, problems)
    # TSV files rarely quote; a text starting with a quote must stay literal
    # rather than swallow the lines after it.
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    # A long document is a row like any other (the tokenizer truncates it);
    # csv's default 128 KiB bound per field would stop the whole file.
    csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD_BYTES))
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
            data = file_bytes(file)
            try:
                text = _decode(data, encodings)
            except UnicodeDecodeError as error:
                line, reason = decode_problem(data, error, encodings)
                problems.add(f"{file}:{line}", reason)
                continue
            row = _checked_row(f"{file}:1", text, label, problems)
            if row:
                rows.append(row)
    return rows
