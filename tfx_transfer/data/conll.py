"""Read token-classification (NER) data in the CoNLL format, tags as BIO."""

import dataclasses
import math
import os

import numpy as np

from tfx_transfer.data import text_formats
from tfx_transfer.data.splits import check_fractions

SPLIT_NAMES = ("train", "val", "test")
TAG_SCHEMES = ("auto", "bio", "iob1", "iobes")
# Other names the same schemes go by: IOB2 is BIO, BILOU is IOBES with
# L(ast) for E(nd) and U(nit) for S(ingle).
_SCHEME_ALIASES = {"iob2": "bio", "bilou": "iobes"}
_SCHEME_PREFIXES = {"bio": "BI", "iob1": "BI", "iobes": "BIESLU"}
_TO_BIO_PREFIX = {"B": "B", "I": "I", "S": "B", "U": "B", "E": "I", "L": "I"}
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


class InvalidTagError(ValueError):
    """A tag that is not `O` or `prefix-type` of the scheme; `index` says where."""

    def __init__(self, message, index):
        super().__init__(message)
        self.index = index


def detect_scheme(tag_sequences):
    """Return the tag scheme of `tag_sequences`: `"bio"`, `"iob1"` or `"iobes"`.

    The rules, in order: any `S-`, `E-`, `L-` or `U-` tag means IOBES (or
    BILOU, read the same way). Otherwise the tags are IOB1 when some `I-`
    starts an entity (it follows `O`, another type, or the sentence start)
    and every `B-` follows a word of its own type, the only place IOB1
    writes one. Anything else is BIO (IOB2).

    Args:
        tag_sequences: iterable of sequences of str. the tags, validly
            formed (see `to_bio`).

    Returns:
        str. the scheme name, for `to_bio`.

    Example:

    ```python
    detect_scheme([["I-PER", "I-PER", "B-PER", "O"]])  # "iob1"
    ```
    """
    i_starts_entity = False
    b_starts_entity = False
    for tags in tag_sequences:
        previous_type = None
        for index, tag in enumerate(tags):
            prefix, entity_type = _parse_tag(tag, index, "BIESLU")
            if prefix is not None and prefix in "ESLU":
                return "iobes"
            if prefix == "I" and entity_type != previous_type:
                i_starts_entity = True
            if prefix == "B" and entity_type != previous_type:
                b_starts_entity = True
            previous_type = entity_type
    return "iob1" if i_starts_entity and not b_starts_entity else "bio"


def to_bio(tags, scheme):
    """Convert one sentence's tags to BIO (IOB2).

    `S-`/`U-` become `B-` and `E-`/`L-` become `I-`; then an `I-` that
    starts an entity (after `O`, another type or at the start) becomes
    `B-`. For IOB1 that second rule is the whole conversion; for BIO it
    repairs stray `I-` tags the way conlleval and seqeval read them.

    Args:
        tags: sequence of str. `"O"` or `prefix-type`, the prefix one the
            scheme allows (`B`, `I`; IOBES also `E`, `S`, `L`, `U`).
        scheme: str. `"bio"` (or `"iob2"`), `"iob1"`, `"iobes"` (or
            `"bilou"`), or `"auto"` to detect it from `tags` alone.

    Returns:
        A tuple of BIO tags, one per input tag.

    Raises:
        InvalidTagError: a tag is malformed or has a prefix the scheme does
            not allow; its `index` attribute is the tag's position.

    Example:

    ```python
    to_bio(["S-PER", "O", "B-LOC", "E-LOC"], "iobes")
    # ("B-PER", "O", "B-LOC", "I-LOC")
    ```
    """
    scheme = _check_scheme(scheme)
    if scheme == "auto":
        scheme = detect_scheme([tags])
    allowed = _SCHEME_PREFIXES[scheme]
    bio = []
    previous_type = None
    for index, tag in enumerate(tags):
        prefix, entity_type = _parse_tag(tag, index, allowed, scheme)
        if prefix is None:
            bio.append("O")
        else:
            prefix = _TO_BIO_PREFIX[prefix]
            if prefix == "I" and entity_type != previous_type:
                prefix = "B"
            bio.append(f"{prefix}-{entity_type}")
        previous_type = entity_type
    return tuple(bio)


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
    scheme = _check_scheme(scheme)
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
            `num_skipped` (0) and `skipped` (`[]`): a bad line is an error,
            never skipped.
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
            "num_skipped": 0,
            "skipped": [],
        }


def read_token_data(
    path,
    val_path=None,
    test_path=None,
    val_fraction=0.1,
    test_fraction=0.1,
    seed=42,
    scheme="auto",
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
    check_fractions(val_fraction, test_fraction)
    scheme = _check_scheme(scheme)
    train, tag_scheme = _read_sentences(path, scheme)
    types = sorted({tag[2:] for s in train for tag in s.tags if tag != "O"})
    # Both prefixes of every type: a type whose entities are one word long
    # in train may still be longer in val or test, or at prediction time.
    tag_names = ("O",) + tuple(sorted(p + t for p in ("B-", "I-") for t in types))

    given = {"test": test_path, "val": val_path}
    fractions = {"test": test_fraction, "val": val_fraction}
    splits = {}
    for name, split_path in given.items():
        if split_path is not None:
            splits[name], _ = _read_sentences(split_path, scheme)
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
    )


def _check_scheme(scheme):
    name = _SCHEME_ALIASES.get(str(scheme).lower(), str(scheme).lower())
    if name not in TAG_SCHEMES:
        raise ValueError(
            f"`scheme` must be one of {TAG_SCHEMES + tuple(_SCHEME_ALIASES)}. "
            f"Received: scheme={scheme!r}"
        )
    return name


def _parse_tag(tag, index, allowed, scheme=None):
    """(prefix, type) of a tag, (None, None) for `O`; else InvalidTagError."""
    if tag == "O":
        return None, None
    prefix, dash, entity_type = tag.partition("-")
    prefixed = dash and len(prefix) == 1 and prefix in "BIESLU"
    if prefixed and entity_type and prefix in allowed:
        return prefix, entity_type
    if prefixed and entity_type:
        reason = f"its prefix {prefix!r} is not part of the {scheme} scheme"
    elif prefixed:
        reason = "it has no entity type after the prefix"
    else:
        reason = f"it is neither 'O' nor one of {'/'.join(allowed)} + '-type'"
    raise InvalidTagError(f"invalid tag {tag!r}: {reason}", index)


def _read_sentences(path, scheme):
    """(sentences, scheme used) of the CoNLL file `path`."""
    path = os.path.abspath(os.fspath(path))
    if not os.path.isfile(path):
        raise ValueError(f"CoNLL file {path} does not exist.")
    lines = _decoded_lines(path)
    raw = []  # (first line number, words, tags)
    words, tags, first = [], [], None
    for number, line in enumerate(lines, 1):
        fields = line.split()
        if fields and fields[0] != _DOCSTART:
            if first is None:
                first = number
            word, tag = _token_and_tag(path, number, line)
            words.append(word)
            tags.append(tag)
        elif words:
            raw.append((first, words, tags))
            words, tags, first = [], [], None
    if words:
        raw.append((first, words, tags))
    if not raw:
        raise ValueError(f"CoNLL file {path} holds no tokens.")
    if scheme == "auto":
        scheme = detect_scheme(tags for _, _, tags in raw)
    sentences = []
    for first, words, tags in raw:
        try:
            bio = to_bio(tags, scheme)
        except InvalidTagError as error:
            number = first + error.index
            raise ValueError(
                f"{path}:{number}: {error}. The line: {lines[number - 1]!r}"
            ) from None
        sentences.append(Sentence(tuple(words), bio, f"{path}:{first}"))
    return sentences, scheme


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
            _parse_tag(tag, 0, "BIESLU")
        except InvalidTagError as error:
            reason = str(error)
        else:
            return fields[0], tag
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
