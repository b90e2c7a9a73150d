"""Tests for tfx_transfer.data.alignment with the real MiniLM tokenizer."""

import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from tfx_transfer.data.alignment import IGNORE
from tfx_transfer.data.alignment import align_labels
from tfx_transfer.data.alignment_ops import gather_word_predictions
from tfx_transfer.data.alignment_ops import pack_word_pieces
from tfx_transfer.data.alignment_ops import split_words
from tfx_transfer.data.alignment import tokenize_words
from tfx_transfer.data.alignment_ops import word_piece_ids
from tfx_transfer.data.alignment import word_piece_lists
from tfx_transfer.data.alignment import word_predictions
from tfx_transfer.backbones.minilm import minilm_l6_folder

# Words the MiniLM vocabulary cuts into several pieces, or cannot read.
TRICKY = [
    "Tokenization",
    "unbelievably",
    "Obama's",
    "@user123",
    "#hashtag",
    "\U0001f600",
    "naïve",
    "state-of-the-art",
    "\u200b",
    "x",
]
LONG_SENTENCE = (
    "The unbelievably long #hashtag-filled tweet by @user123 about "
    "Tokenization , Obama's speech and state-of-the-art NER models , "
    "which kept going on and on well past any sensible length for a tweet ."
).split()


@pytest.fixture(scope="module")
def tokenizer():
    return keras_hub.tokenizers.BertTokenizer.from_preset(str(minilm_l6_folder()))


def in_graph_chunks(tokenizer, sentences, sequence_length):
    """The serving path: raw strings -> words -> pieces -> packed chunks."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def prepare(texts):
        pieces = word_piece_ids(tokenizer, split_words(texts))
        packed = pack_word_pieces(
            pieces,
            sequence_length,
            tokenizer.cls_token_id,
            tokenizer.sep_token_id,
            tokenizer.pad_token_id,
        )
        return packed, pieces.row_lengths()

    return prepare(tf.constant([" ".join(words) for words in sentences]))


def test_align_labels_by_hand():
    (chunk,) = align_labels([2, 1, 3], [5, 0, 7], sequence_length=10)
    assert chunk.labels == (
        IGNORE,
        5,
        IGNORE,
        0,
        7,
        IGNORE,
        IGNORE,
        IGNORE,
        IGNORE,
        IGNORE,
    )
    assert chunk.first_piece_index == (1, 3, 4)
    assert (chunk.word_start, chunk.word_stop) == (0, 3)
    assert (chunk.piece_start, chunk.piece_stop) == (0, 6)
    # Four pieces fit a chunk of 6; the third word starts the next one.
    first, second = align_labels([2, 1, 3], [5, 0, 7], sequence_length=6)
    assert (first.word_stop, first.labels) == (
        2,
        (IGNORE, 5, IGNORE, 0, IGNORE, IGNORE),
    )
    assert (second.word_start, second.first_piece_index) == (2, (1,))
    assert (second.piece_start, second.piece_stop) == (3, 6)


def test_a_word_longer_than_a_chunk_is_cut_alone_and_counted():
    chunks = align_labels([1, 9, 1], [1, 2, 3], sequence_length=6)
    assert [(c.word_start, c.word_stop) for c in chunks] == [(0, 1), (1, 2), (2, 3)]
    assert [c.truncated_pieces for c in chunks] == [0, 5, 0]
    assert (chunks[1].piece_start, chunks[1].piece_stop) == (1, 5)
    assert chunks[2].piece_start == 10


def test_a_sentence_of_1000_words_is_chunked_whole_not_cut():
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 4, size=1000)  # 1 to 3 wordpieces a word
    labels = rng.integers(0, 5, size=1000)
    chunks = align_labels(counts, labels, sequence_length=128)
    # Every word once, in order, each label on its word's first piece.
    assert [c.word_start for c in chunks] == [0] + [c.word_stop for c in chunks[:-1]]
    assert chunks[-1].word_stop == 1000
    assert sum(c.truncated_pieces for c in chunks) == 0
    kept = [label for c in chunks for label in c.labels if label != IGNORE]
    assert kept == labels.tolist()
    assert all(len(c.labels) == 128 for c in chunks)
    # As few chunks as the 126-piece budget allows, give or take a word per chunk.
    assert len(chunks) >= int(np.ceil(counts.sum() / 126))
    assert len(chunks) <= int(np.ceil(counts.sum() / (126 - 2)))


def test_align_labels_rejects_bad_input():
    with pytest.raises(ValueError, match="sequence_length=2"):
        align_labels([1], [0], sequence_length=2)
    with pytest.raises(ValueError, match="at least one piece"):
        align_labels([1, 0], [0, 1], sequence_length=8)
    with pytest.raises(ValueError, match="same length"):
        align_labels([1, 1], [0], sequence_length=8)


def test_tricky_words_split_into_pieces(tokenizer):
    pieces = word_piece_lists(tokenizer, TRICKY)
    tokens = [[tokenizer.id_to_token(i) for i in word] for word in pieces]
    assert tokens[0] == ["token", "##ization"]
    assert tokens[2] == ["obama", "'", "s"]
    assert tokens[3] == ["@", "user", "##12", "##3"]
    # No emoji in the vocabulary; keras-hub keeps accents, so "naïve" is
    # unknown too; a zero-width space gives no piece and becomes [UNK].
    assert tokens[5] == tokens[6] == tokens[8] == ["[UNK]"]


def test_word_labels_round_trip_through_pieces(tokenizer):
    sentences = [TRICKY, ["Obama's", "speech"], ["x"]]
    labels = [list(range(1, len(words) + 1)) for words in sentences]
    chunks = tokenize_words(tokenizer, sentences, 32, word_labels=labels)
    assert chunks.token_ids.shape == (3, 32)
    assert list(chunks.sentence_index) == [0, 1, 2]
    assert chunks.truncated_pieces == 0
    piece_counts = [len(p) for p in word_piece_lists(tokenizer, TRICKY)]
    assert max(piece_counts) > 3
    for row, first in enumerate(chunks.first_piece_index):
        # Exactly the first pieces carry labels; [CLS], [SEP], the other
        # pieces and the padding are ignored.
        labelled = np.flatnonzero(chunks.labels[row] != IGNORE)
        assert labelled.tolist() == first.tolist()
        assert chunks.token_ids[row, 0] == tokenizer.cls_token_id
        length = int(chunks.padding_mask[row].sum())
        assert chunks.token_ids[row, length - 1] == tokenizer.sep_token_id
        assert (chunks.token_ids[row, length:] == tokenizer.pad_token_id).all()
    assert np.diff(chunks.first_piece_index[0]).tolist() == piece_counts[:-1]
    back = word_predictions(
        chunks.labels, chunks.first_piece_index, chunks.sentence_index
    )
    assert [b.tolist() for b in back] == labels


def test_long_sentence_is_split_into_chunks_covering_every_word_once(tokenizer):
    labels = list(range(len(LONG_SENTENCE)))
    sentences = [["short"], LONG_SENTENCE]
    chunks = tokenize_words(tokenizer, sentences, 16, word_labels=[[7], labels])
    total_pieces = sum(len(p) for p in word_piece_lists(tokenizer, LONG_SENTENCE))
    assert total_pieces > 2 * 14
    assert list(chunks.sentence_index[:2]) == [0, 1]
    assert (chunks.sentence_index[1:] == 1).all() and len(chunks.sentence_index) > 3
    covered = []
    for start, first in zip(chunks.word_start[1:], chunks.first_piece_index[1:]):
        covered += range(start, start + len(first))
    assert covered == labels
    assert chunks.truncated_pieces == 0
    # Without labels the chunks are the same.
    unlabelled = tokenize_words(tokenizer, sentences, 16)
    assert unlabelled.labels is None
    np.testing.assert_array_equal(unlabelled.token_ids, chunks.token_ids)
    back = word_predictions(
        chunks.labels, chunks.first_piece_index, chunks.sentence_index
    )
    assert back[0].tolist() == [7] and back[1].tolist() == labels


@pytest.mark.parametrize("sequence_length", [5, 16, 64])
def test_in_graph_path_equals_python_path(tokenizer, sequence_length):
    sentences = [TRICKY, LONG_SENTENCE, ["x"], ["Obama's", "speech"]]
    expected = tokenize_words(tokenizer, sentences, sequence_length)
    # With 3 pieces a chunk, "unbelievably" (5), "@user123" (4) and others
    # lose some; the in-graph path must cut them the same way.
    assert (expected.truncated_words > 0) == (sequence_length == 5)
    packed, words_per_sentence = in_graph_chunks(tokenizer, sentences, sequence_length)
    assert words_per_sentence.numpy().tolist() == [len(s) for s in sentences]
    for key in ("token_ids", "padding_mask", "segment_ids", "sentence_index"):
        np.testing.assert_array_equal(packed[key].numpy(), getattr(expected, key))
    assert packed["first_piece_index"].to_list() == [
        first.tolist() for first in expected.first_piece_index
    ]
    # Any per-position output maps back to the same words either way.
    outputs = np.random.default_rng(0).normal(size=(*expected.token_ids.shape, 3))
    words = gather_word_predictions(
        tf.constant(outputs), packed["first_piece_index"], words_per_sentence
    )
    python_words = word_predictions(
        outputs, expected.first_piece_index, expected.sentence_index
    )
    for graph_rows, python_rows in zip(words.to_list(), python_words):
        np.testing.assert_allclose(graph_rows, python_rows)


def test_in_graph_path_keeps_empty_sentences_and_runs_eagerly(tokenizer):
    packed, words_per_sentence = in_graph_chunks(tokenizer, [["a", "b"], []], 8)
    assert packed["token_ids"].shape == (1, 8)
    words = gather_word_predictions(
        packed["token_ids"], packed["first_piece_index"], words_per_sentence
    )
    assert words.to_list() == [[1037, 1038], []]
    # Eagerly a keras-hub tokenizer returns lists; the result is the same.
    eager = word_piece_ids(tokenizer, tf.ragged.constant([["Obama's", "\u200b"]]))
    assert eager.to_list() == [[[8112, 1005, 1055], [100]]]
