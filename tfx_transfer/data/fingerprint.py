"""A digest of a split's examples and labels, so stored features can name their data."""

import hashlib
import json

from tfx_transfer.files import sha256_file


def data_fingerprint(examples, files=False):
    """Returns the SHA-256 of a split's examples and labels, in order.

    Args:
        examples: a `tfx_transfer.data.Split` (items and integer labels),
            or a sequence of `tfx_transfer.data.conll.Sentence`s (words and
            tags).
        files: bool. The items are file paths: each file's bytes are hashed
            along with its path, so an edited image changes the digest even
            though its name did not.

    Returns:
        The lowercase hex digest, a str of 64 characters.

    Example:

    >>> split = Split(items=("a cat", "a dog"), labels=(0, 1))
    >>> data_fingerprint(split) == data_fingerprint(Split(("a cat", "a dog"), (0, 0)))
    False
    """
    if hasattr(examples, "labels"):
        rows = zip(examples.items, (int(label) for label in examples.labels))
    else:
        rows = ((list(s.words), list(s.tags)) for s in examples)
    digest = hashlib.sha256()
    for item, label in rows:
        if files:
            item = [str(item), sha256_file(item)]
        # One JSON line per example: no two different splits give the same text.
        row = json.dumps([item, label], ensure_ascii=False)
        digest.update(row.encode("utf-8") + b"\n")
    return digest.hexdigest()
