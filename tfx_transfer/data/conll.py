"""Read token-classification (NER) data in the CoNLL format, tags as BIO."""

import dataclasses
import math
import os

import numpy as np

from tfx_transfer.config import check_fractions
from tfx_transfer.data import tag_schemes, text_formats
from tfx_transfer.data.splits import SPLIT_NAMES

_DOCSTART = "-DOCSTART-"


@dataclasses.dataclass(frozen=True)
class Sentence:
    """The words of one sentence and their BIO tags.

    Args:
        words: tuple of str. the tokens, as written in the file.
        tags: tuple of str. one BIO (IOB2) tag per word: `"O"`, `"B-type"`
            or `"I-type"`.
        location: str. `"file:line"` of the sentence's first token; token
            `i` is on the line `i` below it.

    Example:

    ```python
    sentence = Sentence(("Visit", "Paris"), ("O", "B-LOC"), "a.txt:1")
    ```
    """

    words: tuple[str, ...]
    tags: tuple[str, ...]
    location: str

    def __post_init__(self):
        if len(self.words) != len(self.tags):
            raise ValueError(
                "`words` and `tags` must have the same length. Received: "
                f"{len(self.words)} words, {len(self.tags)} tags at "
                f"{self.location}."
            )

    def __len__(self):
        return len(self.words)


def read_conll(path, scheme="auto"):
    """Read a CoNLL-style file of tagged tokens into BIO-tagged sentences.

    One token per line: the token is the first field and the tag the last,
    so CoNLL-2003's `word POS chunk tag` lines work as well as `word tag`.
    Fields are separated by tabs when the line holds one, else by spaces.
    Sentences are separated by blank lines, or lines of only spaces and
    tabs (as in the WNUT files). `-DOCSTART-` lines are skipped and end a
    sentence. The file is UTF-8; a byte order mark is ignored.

    Args:
        path: str or path-like. the file.
        scheme: str. the file's tag scheme: `"auto"` (see
            `detect_scheme`, applied to the whole file), `"bio"` or
            `"iob2"`, `"iob1"`, `"iobes"` or `"bilou"`.

    Returns:
        A list of `Sentence`s in file order, tags converted to BIO.

    Raises:
        ValueError: the file is missing, empty or has no tokens, or a line
            has one field, an empty token, an invalid tag or bytes that are
            not UTF-8. The message names `file:line` and the line.

    Example:

    ```python
    sentences = read_conll("train.txt")
    sentences[0].words, sentences[0].tags
    ```
    """
    scheme = tag_schemes.check_scheme(scheme)
    sentences, _ = _read_sentences(path, scheme)
    return sentences


@dataclasses.dataclass(frozen=True)
class TokenData:
    """Tag names and train/val/test splits of a token-classification data set.

    Args:
        tag_names: tuple of str. `"O"`, then `B-` and `I-` of every entity
            type of the training data, sorted; a label id indexes it.
        splits: dict. `"train"`, `"val"` and `"test"` mapped to lists of
            `Sentence`s in file order.
        split_source: str. `"seeded split"` when every split was drawn from
            one file, `"files"` when val or test came from its own file.
        tag_scheme: str. the training file's scheme, as given or detected,
            before conversion to BIO.
        carved_splits: tuple of str. splits drawn from the training file
            while the other came from a file (files only).
        skipped: tuple of (location, reason). sentences left out for a bad
            line (`skip_bad_rows`), by the `file:line` of that line.

    Example:

    ```python
    data = read_token_data(bundled_conll_path())
    data.num_classes  # 21
    json.dumps(data.report())
    ```
    """

    tag_names: tuple[str, ...]
    splits: dict[str, list[Sentence]]
    split_source: str = "seeded split"
    tag_scheme: str = "bio"
    carved_splits: tuple[str, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()

    @property
    def num_classes(self):
        return len(self.tag_names)

    @property
    def class_names(self):
        """The tag names, under the name the other data sets use."""
        return self.tag_names

    @property
    def entity_types(self):
        """Sorted entity types: the tag names without their prefix."""
        return tuple(sorted({tag[2:] for tag in self.tag_names if tag != "O"}))

    def tag_ids(self, sentence):
        """Return the label id of each of `sentence`'s tags, as a tuple."""
        index = {tag: i for i, tag in enumerate(self.tag_names)}
        return tuple(index[tag] for tag in sentence.tags)

    def report(self):
        """Return a JSON-ready summary: sentences, tokens and entities per split.

        Returns:
            A dict with `counts` (split -> entity type -> number of entities,
            so a reader of class counts sees entities), `totals` and
            `sentences` (split -> sentences), `tokens` (split -> tokens),
            `tag_names` (also as `class_names`), `entity_types`,
            `tag_scheme`, `split_source`, `carved_splits`, and
            `num_skipped` and `skipped` (the sentences left out for a bad
            line, with `skip_bad_rows`).
        """
        types = self.entity_types
        counts = {}
        for name, sentences in self.splits.items():
            counts[name] = dict.fromkeys(types, 0)
            for sentence in sentences:
                for tag in sentence.tags:
                    if tag.startswith("B-"):
                        counts[name][tag[2:]] += 1
        sentence_counts = {name: len(s) for name, s in self.splits.items()}
        return {
            "class_names": list(self.tag_names),
            "tag_names": list(self.tag_names),
            "entity_types": list(types),
            "tag_scheme": self.tag_scheme,
            "split_source": self.split_source,
            "carved_splits": list(self.carved_splits),
            "counts": counts,
            "totals": sentence_counts,
            "sentences": dict(sentence_counts),
            "tokens": {
                name: sum(len(sentence) for sentence in sentences)
                for name, sentences in self.splits.items()
            },
            "num_skipped": len(self.skipped),
            "skipped": [list(entry) for entry in self.skipped],
        }


def read_token_data(
    path,
    val_path=None,
    test_path=None,
    val_fraction=0.1,
    test_fraction=0.1,
    seed=42,
    scheme="auto",
    skip_bad_rows=False,
):
    """Read CoNLL-style files into BIO-tagged train/val/test splits.

    Without `val_path` and `test_path`, the sentences of `path` are
    shuffled with `seed` (not stratified: a sentence holds several entity
    types) and the test, then the validation share cut off, each rounded
    up. A given file replaces its share; only the missing split is carved.

    Args:
        path: str or path-like. the training file (see `read_conll`).
        val_path: str, path-like or None. validation file, same format.
        test_path: str, path-like or None. test file, same format.
        val_fraction: float. share of `path` for validation, in [0, 1).
        test_fraction: float. share of `path` for the test set, in [0, 1).
            A fraction of 0 leaves that split empty.
        seed: int. seed of the shuffle.
        scheme: str. the tag scheme of every file, or `"auto"` to detect
            each file's own (see `read_conll`).
        skip_bad_rows: bool. Leave out a sentence with a bad line (one
            column, an empty token, an invalid tag) and record it in
            `TokenData.skipped`, instead of stopping with an error.

    Returns:
        A `TokenData`; each split keeps its sentences in file order.

    Raises:
        ValueError: a file is bad (see `read_conll`), a val/test tag has an
            entity type the training data lacks (naming `file:line`), or
            no sentence is left to train on.

    Example:

    ```python
    data = read_token_data("train.txt", test_path="test.txt")
    data.tag_names  # ("O", "B-LOC", "B-PER", "I-LOC", "I-PER")
    ```
    """
    check_fractions(val_fraction, test_fraction, allow_empty=True)
    scheme = tag_schemes.check_scheme(scheme)
    skipped = [] if skip_bad_rows else None
    train, tag_scheme = _read_sentences(path, scheme, skipped)
    types = sorted({tag[2:] for s in train for tag in s.tags if tag != "O"})
    # Both prefixes of every type: a type whose entities are one word long
    # in train may still be longer in val or test, or at prediction time.
    tag_names = ("O",) + tuple(sorted(p + t for p in ("B-", "I-") for t in types))

    given = {"test": test_path, "val": val_path}
    fractions = {"test": test_fraction, "val": val_fraction}
    splits = {}
    for name, split_path in given.items():
        if split_path is not None:
            splits[name], _ = _read_sentences(split_path, scheme, skipped)
            _check_known_types(splits[name], set(types), path)
    missing = {name: fractions[name] for name in given if name not in splits}
    splits.update(_shuffle_split(train, missing, seed, path))
    held_out = len(missing) < len(given)
    return TokenData(
        tag_names=tag_names,
        splits={name: splits[name] for name in SPLIT_NAMES},
        split_source="files" if held_out else "seeded split",
        tag_scheme=tag_scheme,
        carved_splits=tuple(n for n in SPLIT_NAMES if held_out and n in missing),
        skipped=tuple(skipped or ()),
    )


def _read_sentences(path, scheme, skipped=None):
    """(sentences, scheme used) of the CoNLL file `path`.

    A bad line raises, naming `file:line`; with a `skipped` list its whole
    sentence is left out instead and recorded there as (location, reason).
    """
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise ValueError(f"CoNLL file {path} does not exist.")
    lines = _decoded_lines(path)
    raw = []  # (first line number, words, tags)
    words, tags, first, bad = [], [], None, False
    columns = None  # (count, line number) of the file's first token line
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if fields and fields[0] != _DOCSTART:
            if first is None:
                first = number
            try:
                word, tag, count = _token_and_tag(path, number, line)
                columns = columns or (count, number)
                if count != columns[0]:
                    # A token with a space in it shifts the tag column.
                    raise ValueError(
                        f"{path}:{number}: {count} columns where line {columns[1]} has "
                        f"{columns[0]} (a token with a space in it?). The line: {line!r}")
            except ValueError as error:
                if skipped is None:
                    raise
                if not bad:
                    skipped.append((f"{path}:{number}", _reason(error, path, number)))
                bad = True
                continue
            words.append(word)
            tags.append(tag)
        elif first is not None:
            if not bad:
                raw.append((first, words, tags))
            words, tags, first, bad = [], [], None, False
    if first is not None and not bad:
        raw.append((first, words, tags))
    if not raw:
        left = f" once {len(skipped)} bad sentence(s) are skipped" if skipped else ""
        raise ValueError(f"CoNLL file {path} holds no tokens{left}.")
    if scheme == "auto":
        scheme = tag_schemes.detect_scheme(tags for _, _, tags in raw)
    sentences = []
    for first, words, tags in raw:
        try:
            bio = tag_schemes.to_bio(tags, scheme)
        except tag_schemes.InvalidTagError as error:
            number = first + error.index
            if skipped is None:
                raise ValueError(
                    f"{path}:{number}: {error}. The line: {lines[number - 1]!r}"
                ) from None
            skipped.append((f"{path}:{number}", str(error)))
            continue
        sentences.append(Sentence(tuple(words), bio, f"{path}:{first}"))
    return sentences, scheme


def _reason(error, path, number):
    """The message of a `_token_and_tag` error without its location prefix."""
    return str(error).removeprefix(f"{path}:{number}: ")


def _decoded_lines(path):
    data = text_formats.file_bytes(path)
    if not data.strip():
        raise ValueError(f"CoNLL file {path} is empty.")
    try:
        return data.decode("utf-8").split("\n")
    except UnicodeDecodeError as error:
        number, reason = text_formats.decode_problem(
            data, error, ["UTF-8"], advice="convert the file to UTF-8"
        )
        line = data.split(b"\n")[number - 1]
        raise ValueError(f"{path}:{number}: {reason}. The line: {line!r}") from None


def _token_and_tag(path, number, line):
    line = line.rstrip("\r")
    if "\t" in line:
        fields = [field.strip(" ") for field in line.split("\t")]
        while fields and not fields[-1]:
            fields.pop()  # a trailing tab
    else:
        fields = [field for field in line.split(" ") if field]
    if len(fields) < 2:
        reason = "one column; expected a token and a tag"
    elif not fields[0]:
        reason = "empty token"
    else:
        tag = fields[-1]
        try:
            tag_schemes.parse_tag(tag, 0, "BIESLU")
        except tag_schemes.InvalidTagError as error:
            reason = str(error)
        else:
            return fields[0], tag, len(fields)
    raise ValueError(f"{path}:{number}: {reason}. The line: {line!r}")


def _check_known_types(sentences, types, train_path):
    for sentence in sentences:
        for offset, tag in enumerate(sentence.tags):
            if tag != "O" and tag[2:] not in types:
                file, _, line = sentence.location.rpartition(":")
                raise ValueError(
                    f"{file}:{int(line) + offset}: tag {tag!r} has entity type "
                    f"{tag[2:]!r}, which the training data "
                    f"{os.path.abspath(os.fspath(train_path))} does not have; "
                    "a model trained on it could never predict it."
                )


def _shuffle_split(sentences, fractions, seed, source):
    """Carve `{name: fraction}` from a seeded shuffle; the rest is train."""
    order = np.random.default_rng(seed).permutation(len(sentences))
    splits, start = {}, 0
    for name, fraction in fractions.items():
        size = math.ceil(fraction * len(sentences))
        splits[name] = sorted(order[start : start + size].tolist())
        start += size
    splits["train"] = sorted(order[start:].tolist())
    if not splits["train"]:
        raise ValueError(
            f"CoNLL file {source} has {len(sentences)} sentences, too few to "
            f"carve {fractions} and keep one to train on."
        )
    return {name: [sentences[i] for i in indices] for name, indices in splits.items()}
