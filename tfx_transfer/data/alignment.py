"""Align word-level tags with the wordpieces a BERT encoder reads.

A word's label goes on its first wordpiece; every other position (further
pieces, `[CLS]`, `[SEP]`, padding) gets `IGNORE`, the label a masked loss
skips. A sentence too long for one sequence is cut into several chunks at
word boundaries, filled greedily: a word goes into the current chunk when
its pieces fit, else it starts the next. Only a single word longer than a
whole chunk loses pieces, its tail, and that is counted.

This is the Python implementation of that rule, which prepares training
data (`align_labels`, `tokenize_words`). `alignment_ops` holds the same rule
in TensorFlow ops, for the exported serving function; the tests check that
both give the same chunks.
"""

import dataclasses

import numpy as np
import tensorflow as tf

IGNORE = -100


@dataclasses.dataclass(frozen=True)
class AlignedChunk:
    """One chunk of a sentence: which words and pieces, where, what labels.

    Args:
        word_start: int. index of the chunk's first word in the sentence.
        word_stop: int. one past its last word.
        piece_start: int. index of its first piece among all the
            sentence's pieces.
        piece_stop: int. one past its last piece.
        first_piece_index: tuple of int. the token position (after
            `[CLS]`, so 1 or more) of each word's first piece.
        labels: tuple of int or None. `sequence_length` per-position labels,
            `IGNORE` except on first pieces; None when no labels were given.
        truncated_pieces: int. pieces of an over-long word left out.
    """

    word_start: int
    word_stop: int
    piece_start: int
    piece_stop: int
    first_piece_index: tuple[int, ...]
    labels: tuple[int, ...] | None
    truncated_pieces: int = 0


def align_labels(word_piece_counts, word_labels, sequence_length):
    """Cut one sentence into chunks and put each word's label on its first piece.

    Args:
        word_piece_counts: sequence of int. the number of wordpieces of each
            word, at least 1 (`tokenize_words` gives an empty word `[UNK]`).
        word_labels: sequence of int or None. each word's label id.
        sequence_length: int. tokens per chunk, `[CLS]` and `[SEP]`
            included; at least 3.

    Returns:
        A list of `AlignedChunk`s covering every word once, in order; empty
        for a sentence without words.

    Example:

    ```python
    chunks = align_labels([2, 1], [3, 0], sequence_length=6)
    chunks[0].labels  # (-100, 3, -100, 0, -100, -100)
    chunks[0].first_piece_index  # (1, 3)
    ```
    """
    budget = piece_budget(sequence_length)
    counts = [int(count) for count in word_piece_counts]
    if word_labels is not None and len(word_labels) != len(counts):
        raise ValueError(
            "`word_piece_counts` and `word_labels` must have the same length. "
            f"Received: {len(counts)} counts, {len(word_labels)} labels."
        )
    if any(count < 1 for count in counts):
        raise ValueError(
            "Every word needs at least one piece to carry its label. Received: "
            f"word_piece_counts={counts}"
        )
    chunks = []
    start = used = 0
    for index, count in enumerate(counts):
        kept = min(count, budget)
        if index > start and used + kept > budget:
            chunks.append(_chunk(counts, word_labels, start, index, sequence_length))
            start, used = index, 0
        used += kept
    if counts:
        chunks.append(_chunk(counts, word_labels, start, len(counts), sequence_length))
    return chunks


# Arrays make `==` ambiguous; compare the fields instead.
@dataclasses.dataclass(frozen=True, eq=False)
class WordPieceChunks:
    """Sentences of words as fixed-length BERT inputs, one row per chunk.

    Args:
        token_ids: int32 array `[chunks, sequence_length]`.
        padding_mask: bool array, True on real tokens.
        segment_ids: int32 array of zeros.
        labels: int32 array of per-position labels (`IGNORE` off first
            pieces), or None when no labels were given.
        first_piece_index: tuple of int32 arrays. per chunk, the token
            position of each of its words' first piece.
        sentence_index: int32 array. the sentence each chunk comes from.
        word_start: int32 array. the index of each chunk's first word in
            its sentence.
        truncated_pieces: int. pieces of over-long words left out.
        truncated_words: int. words that lost pieces, each alone in a chunk.
    """

    token_ids: np.ndarray
    padding_mask: np.ndarray
    segment_ids: np.ndarray
    labels: np.ndarray | None
    first_piece_index: tuple[np.ndarray, ...]
    sentence_index: np.ndarray
    word_start: np.ndarray
    truncated_pieces: int = 0
    truncated_words: int = 0

    def features(self):
        """Return the dict a keras-hub `BertBackbone` takes."""
        return {
            "token_ids": self.token_ids,
            "padding_mask": self.padding_mask,
            "segment_ids": self.segment_ids,
        }


def tokenize_words(tokenizer, sentences, sequence_length=128, word_labels=None):
    """Tokenise sentences given as words into chunks of BERT inputs.

    Each word is tokenised on its own, so the tokenizer's own splitting on
    punctuation never moves a word boundary; a word that gives no pieces
    (a zero-width or control character) becomes `[UNK]`.

    Args:
        tokenizer: a keras-hub `BertTokenizer` (or any `WordPieceTokenizer`
            with `cls_token_id`, `sep_token_id`, `pad_token_id` and an
            `oov_token`).
        sentences: sequence of sequences of str. the words, at least one per
            sentence.
        sequence_length: int. tokens per chunk, `[CLS]` and `[SEP]` included.
        word_labels: sequence of sequences of int, or None. a label id per
            word.

    Returns:
        A `WordPieceChunks`, chunks in sentence order.

    Example:

    ```python
    tokenizer = keras_hub.tokenizers.BertTokenizer.from_preset(folder)
    chunks = tokenize_words(tokenizer, [["Obama's", "speech"]], 8, [[1, 0]])
    chunks.token_ids[0]  # [CLS] obama ' s speech [SEP] [PAD] [PAD]
    chunks.labels[0]  # -100 1 -100 -100 0 -100 -100 -100
    ```
    """
    piece_budget(sequence_length)
    if word_labels is not None and len(word_labels) != len(sentences):
        raise ValueError(
            "`sentences` and `word_labels` must have the same length. "
            f"Received: {len(sentences)} sentences, {len(word_labels)} labels."
        )
    for index, words in enumerate(sentences):
        if not len(words):
            raise ValueError(f"Sentence {index} has no words.")
    pieces = word_piece_lists(tokenizer, [w for words in sentences for w in words])
    specials = (tokenizer.cls_token_id, tokenizer.sep_token_id)
    rows, masks, labels, firsts, sentence_index, word_start = ([] for _ in range(6))
    truncated_pieces = truncated_words = 0
    offset = 0
    for index, words in enumerate(sentences):
        sentence_pieces = pieces[offset : offset + len(words)]
        offset += len(words)
        flat = [piece for word in sentence_pieces for piece in word]
        sentence_labels = None if word_labels is None else word_labels[index]
        counts = [len(word) for word in sentence_pieces]
        for chunk in align_labels(counts, sentence_labels, sequence_length):
            ids = [
                specials[0],
                *flat[chunk.piece_start : chunk.piece_stop],
                specials[1],
            ]
            masks.append([True] * len(ids) + [False] * (sequence_length - len(ids)))
            rows.append(ids + [tokenizer.pad_token_id] * (sequence_length - len(ids)))
            labels.append(chunk.labels)
            firsts.append(np.asarray(chunk.first_piece_index, dtype=np.int32))
            sentence_index.append(index)
            word_start.append(chunk.word_start)
            truncated_pieces += chunk.truncated_pieces
            truncated_words += chunk.truncated_pieces > 0
    token_ids = np.asarray(rows, dtype=np.int32).reshape(-1, sequence_length)
    return WordPieceChunks(
        token_ids=token_ids,
        padding_mask=np.asarray(masks, dtype=bool).reshape(token_ids.shape),
        segment_ids=np.zeros_like(token_ids),
        labels=(
            None
            if word_labels is None
            else np.asarray(labels, dtype=np.int32).reshape(token_ids.shape)
        ),
        first_piece_index=tuple(firsts),
        sentence_index=np.asarray(sentence_index, dtype=np.int32),
        word_start=np.asarray(word_start, dtype=np.int32),
        truncated_pieces=truncated_pieces,
        truncated_words=truncated_words,
    )


def word_piece_lists(tokenizer, words):
    """Return each word's wordpiece ids as a list; an empty result is `[UNK]`."""
    if not words:
        return []
    unknown = tokenizer.token_to_id(tokenizer.oov_token)
    # Eagerly, a keras-hub tokenizer hands back nested Python lists.
    pieces = tokenizer(tf.constant(list(words), dtype=tf.string))
    return [[int(i) for i in word] or [unknown] for word in pieces]


def word_predictions(piece_predictions, first_piece_index, sentence_index=None):
    """Pick out each word's prediction: the one at its first piece.

    Args:
        piece_predictions: array-like `[chunks, sequence_length, ...]`. the
            model's output per position (tag ids, logits or probabilities).
        first_piece_index: sequence of int arrays. per chunk, the positions
            of its words' first pieces (`WordPieceChunks.first_piece_index`).
        sentence_index: int array or None. the sentence of each chunk; when
            given, a sentence's chunks are joined back together.

    Returns:
        A list of NumPy arrays `[words, ...]`: one per chunk, or one per
        sentence when `sentence_index` is given.

    Example:

    ```python
    logits = model.predict(chunks.features())
    tags = word_predictions(
        logits.argmax(-1), chunks.first_piece_index, chunks.sentence_index
    )
    ```
    """
    piece_predictions = np.asarray(piece_predictions)
    per_chunk = [
        piece_predictions[chunk][np.asarray(index, dtype=np.int64)]
        for chunk, index in enumerate(first_piece_index)
    ]
    if sentence_index is None:
        return per_chunk
    sentence_index = np.asarray(sentence_index)
    count = int(sentence_index.max()) + 1 if len(sentence_index) else 0
    return [
        np.concatenate(
            [per_chunk[c] for c in np.flatnonzero(sentence_index == s)], axis=0
        )
        for s in range(count)
    ]


def piece_budget(sequence_length):
    """Pieces a chunk holds besides [CLS] and [SEP]; raises below 3 tokens."""
    if int(sequence_length) < 3:
        raise ValueError(
            "`sequence_length` must leave room for [CLS], [SEP] and a piece: "
            f"at least 3. Received: sequence_length={sequence_length}"
        )
    return int(sequence_length) - 2


def _chunk(counts, word_labels, start, stop, sequence_length):
    budget = sequence_length - 2
    kept = [min(count, budget) for count in counts[start:stop]]
    # Only a word alone in its chunk can be longer than the chunk.
    truncated = sum(counts[start:stop]) - sum(kept)
    first = tuple(int(i) for i in np.cumsum([1] + kept[:-1]))
    labels = None
    if word_labels is not None:
        labels = [IGNORE] * sequence_length
        for position, label in zip(first, word_labels[start:stop]):
            labels[position] = int(label)
        labels = tuple(labels)
    piece_start = sum(counts[:start])
    return AlignedChunk(
        word_start=start,
        word_stop=stop,
        piece_start=piece_start,
        piece_stop=piece_start + sum(kept),
        first_piece_index=first,
        labels=labels,
        truncated_pieces=truncated,
    )
