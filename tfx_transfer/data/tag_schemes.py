"""Entity tag schemes (BIO/IOB2, IOB1, IOBES/BILOU): validation, detection, conversion to BIO."""

TAG_SCHEMES = ("auto", "bio", "iob1", "iobes")
# Other names the same schemes go by: IOB2 is BIO, BILOU is IOBES with
# L(ast) for E(nd) and U(nit) for S(ingle).
_SCHEME_ALIASES = {"iob2": "bio", "bilou": "iobes"}
_SCHEME_PREFIXES = {"bio": "BI", "iob1": "BI", "iobes": "BIESLU"}
_TO_BIO_PREFIX = {"B": "B", "I": "I", "S": "B", "U": "B", "E": "I", "L": "I"}


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
            prefix, entity_type = parse_tag(tag, index, "BIESLU")
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
    scheme = check_scheme(scheme)
    if scheme == "auto":
        scheme = detect_scheme([tags])
    allowed = _SCHEME_PREFIXES[scheme]
    bio = []
    previous_type = None
    for index, tag in enumerate(tags):
        prefix, entity_type = parse_tag(tag, index, allowed, scheme)
        if prefix is None:
            bio.append("O")
        else:
            prefix = _TO_BIO_PREFIX[prefix]
            if prefix == "I" and entity_type != previous_type:
                prefix = "B"
            bio.append(f"{prefix}-{entity_type}")
        previous_type = entity_type
    return tuple(bio)


def check_scheme(scheme):
    name = _SCHEME_ALIASES.get(str(scheme).lower(), str(scheme).lower())
    if name not in TAG_SCHEMES:
        raise ValueError(
            f"`scheme` must be one of {TAG_SCHEMES + tuple(_SCHEME_ALIASES)}. "
            f"Received: scheme={scheme!r}"
        )
    return name


def parse_tag(tag, index, allowed, scheme=None):
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
