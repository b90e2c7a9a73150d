"""The wordpiece alignment of `alignment`, in-graph, for serving functions.

Built from TensorFlow and tensorflow-text ops only, so that it runs inside
an exported SavedModel: split raw sentences into words, tokenise each word,
pack the pieces into `[CLS] ... [SEP]` chunks at word boundaries, and pick
each word's prediction at its first piece. The chunking rule is
`alignment.align_labels`'s; the tests check that both agree.
"""

import tensorflow as tf

from tfx_transfer.data import alignment

def split_words(sentences):
    """Split a batch of raw sentences into words on whitespace, in-graph.

    Args:
        sentences: string tensor `[batch]`.

    Returns:
        A string `tf.RaggedTensor` `[batch, (words)]`.
    """
    return tf.strings.split(sentences)


def word_piece_ids(tokenizer, words):
    """Tokenise a ragged batch of words, word by word, in-graph.

    Args:
        tokenizer: a keras-hub `BertTokenizer`.
        words: string `tf.RaggedTensor` `[batch, (words)]`.

    Returns:
        An int32 `tf.RaggedTensor` `[batch, (words), (pieces)]`; a word that
        gives no pieces gets `[UNK]`, as in `word_piece_lists`.
    """
    pieces = tokenizer(words)
    if not isinstance(pieces, tf.RaggedTensor):
        # Called eagerly, keras-hub converts its output to Python lists.
        pieces = tf.ragged.constant(pieces, dtype=tf.int32, ragged_rank=2)
    per_word = pieces.values
    counts = per_word.row_lengths()
    unknown = tf.fill([per_word.nrows(), 1], tokenizer.token_to_id(tokenizer.oov_token))
    unknown = tf.RaggedTensor.from_tensor(tf.cast(unknown, per_word.dtype))
    # Append [UNK] to every word, then keep it only where the word was empty.
    keep = tf.ragged.range(counts + 1) < tf.expand_dims(tf.maximum(counts, 1), 1)
    filled = tf.ragged.boolean_mask(tf.concat([per_word, unknown], axis=1), keep)
    return pieces.with_values(filled)


def pack_word_pieces(word_pieces, sequence_length, cls_id, sep_id, pad_id):
    """Cut sentences of word pieces into `[CLS] ... [SEP]` chunks, in-graph.

    The same greedy rule as `align_labels`, as a `tf.scan` over words.

    Args:
        word_pieces: int `tf.RaggedTensor` `[batch, (words), (pieces)]`,
            every word with at least one piece (see `word_piece_ids`).
        sequence_length: int. tokens per chunk, at least 3.
        cls_id: int. the `[CLS]` token id.
        sep_id: int. the `[SEP]` token id.
        pad_id: int. the padding token id.

    Returns:
        A dict with `token_ids`, `padding_mask` and `segment_ids`
        (`[chunks, sequence_length]`), `first_piece_index` (a ragged
        `[chunks, (words)]` of token positions) and `sentence_index`
        (`[chunks]`).
    """
    budget = alignment.piece_budget(sequence_length)
    per_word = word_pieces.values
    kept = tf.minimum(per_word.row_lengths(), budget)
    is_first = tf.ragged.range(word_pieces.row_lengths()).values == 0

    def step(state, word):
        chunk, used = state
        count, first = word
        new_chunk = tf.logical_or(first, used + count > budget)
        return (
            chunk + tf.cast(new_chunk, chunk.dtype),
            tf.where(new_chunk, count, used + count),
        )

    start = (tf.constant(-1, tf.int64), tf.constant(0, kept.dtype))
    chunk_ids, _ = tf.scan(step, (kept, is_first), initializer=start)
    num_chunks = _count(chunk_ids)
    pieces = tf.RaggedTensor.from_value_rowids(
        per_word[:, :budget], chunk_ids, nrows=num_chunks
    ).merge_dims(1, 2)
    column = tf.ones([num_chunks, 1], pieces.dtype)
    framed = tf.concat(
        [
            tf.RaggedTensor.from_tensor(column * cls_id),
            pieces,
            tf.RaggedTensor.from_tensor(column * sep_id),
        ],
        axis=1,
    )
    token_ids = framed.to_tensor(default_value=pad_id, shape=[None, sequence_length])
    offsets = tf.cumsum(kept, exclusive=True)
    chunk_start = tf.math.segment_min(offsets, chunk_ids)
    positions = offsets - tf.gather(chunk_start, chunk_ids) + 1
    sentence_of_word = word_pieces.value_rowids()
    return {
        "token_ids": token_ids,
        "padding_mask": tf.sequence_mask(framed.row_lengths(), sequence_length),
        "segment_ids": tf.zeros_like(token_ids),
        "first_piece_index": tf.RaggedTensor.from_value_rowids(
            positions, chunk_ids, nrows=num_chunks
        ),
        "sentence_index": tf.math.segment_min(sentence_of_word, chunk_ids),
    }


def gather_word_predictions(piece_predictions, first_piece_index, words_per_sentence):
    """Pick out each word's prediction and regroup them by sentence, in-graph.

    Args:
        piece_predictions: tensor `[chunks, sequence_length, ...]`.
        first_piece_index: int `tf.RaggedTensor` `[chunks, (words)]`, from
            `pack_word_pieces`.
        words_per_sentence: int tensor `[batch]`. e.g.
            `word_pieces.row_lengths()`.

    Returns:
        A `tf.RaggedTensor` `[batch, (words), ...]`.
    """
    length = tf.shape(piece_predictions, out_type=tf.int64)[1]
    flat_positions = (
        first_piece_index.value_rowids() * length + first_piece_index.values
    )
    flat = tf.reshape(
        piece_predictions,
        tf.concat([[-1], tf.shape(piece_predictions)[2:]], axis=0),
    )
    words = tf.gather(flat, flat_positions)
    return tf.RaggedTensor.from_row_lengths(
        words, tf.cast(words_per_sentence, tf.int64)
    )


def _count(chunk_ids):
    """Number of chunks: the last chunk id plus one, 0 without words."""
    return tf.cond(
        tf.size(chunk_ids) > 0,
        lambda: chunk_ids[-1] + 1,
        lambda: tf.constant(0, chunk_ids.dtype),
    )
