"""Tag decoding under the BIO constraints: Viterbi over each word's tag log-probabilities.

Taking each word's most probable tag on its own can give sequences that
are not BIO at all: an `I-person` after `O`, or `I-geo-loc` right after
`B-person`. The decoder instead finds the most probable sequence among
the valid ones: a sentence may not start with `I-X`, and `I-X` may only
follow `B-X` or `I-X`. It runs in TensorFlow, so the report's predictions
(`tasks.tokens.predict_tags`) and the served model's use the same code,
and a stock TF Serving runs it (core ops only).
"""

import numpy as np
import tensorflow as tf

# Additive log-score of a forbidden step: far below any real path, finite
# so that sums stay exact.
FORBIDDEN = -1e9


def bio_constraints(tag_names):
    """Returns which tags may start a sentence and which may follow which.

    Args:
        tag_names: sequence of str. "O", "B-type" and "I-type" tags.

    Returns:
        A tuple (start `[T]`, transitions `[T, T]`) of bool arrays;
        `transitions[i, j]` says whether tag j may follow tag i.

    Example:

    >>> start, transitions = bio_constraints(["O", "B-per", "I-per"])
    >>> start.tolist(), transitions[0].tolist()
    ([True, True, False], [True, True, False])
    """
    names = list(tag_names)

    def inside_of(tag):
        return tag[2:] if tag.startswith("I-") else None

    start = np.array([inside_of(tag) is None for tag in names])
    transitions = np.ones((len(names), len(names)), bool)
    for j, tag in enumerate(names):
        kind = inside_of(tag)
        if kind is not None:
            transitions[:, j] = [previous in (f"B-{kind}", f"I-{kind}") for previous in names]
    return start, transitions


def constrained_decode(probabilities, lengths, tag_names, transition_scores=None):
    """Returns the most probable BIO-valid tag ids of each sentence.

    Args:
        probabilities: float tensor `[N, W, T]`. Each word's tag
            probabilities, sentences padded to W words.
        lengths: int tensor `[N]`. Real words per sentence.
        tag_names: sequence of str. The T tags, "O" / "B-x" / "I-x".
        transition_scores: None, or a tuple of float arrays (start `[T]`,
            transitions `[T, T]`) of log-scores added to every path's
            first tag and to each step from tag i to tag j (a CRF's
            transition potentials). None adds nothing: the BIO
            constraints alone.

    Returns:
        An int32 tensor `[N, W]` of tag ids; positions past a sentence's
        length hold its last tag.

    Example:

    >>> constrained_decode([[[0.1, 0.3, 0.6]]], [1], ["O", "B-per", "I-per"]).numpy()
    array([[1]], dtype=int32)
    """
    start_ok, transitions_ok = bio_constraints(tag_names)
    start, transitions = np.where(start_ok, 0.0, FORBIDDEN), np.where(transitions_ok, 0.0, FORBIDDEN)
    if transition_scores is not None:
        start, transitions = start + transition_scores[0], transitions + transition_scores[1]
    start, transitions = tf.constant(start, tf.float32), tf.constant(transitions, tf.float32)
    probabilities = tf.convert_to_tensor(probabilities, tf.float32)
    lengths = tf.cast(lengths, tf.int32)
    width = tf.shape(probabilities)[1]
    # At least two positions, so the scans below never run over nothing.
    padded = tf.pad(probabilities, [[0, 0], [0, tf.maximum(2 - width, 0)], [0, 0]],
                    constant_values=1.0)
    emissions = tf.math.log(tf.maximum(padded, 1e-12))
    valid = tf.sequence_mask(lengths, tf.shape(emissions)[1])
    num_tags = len(start_ok)
    identity = tf.tile(tf.range(num_tags)[None], [tf.shape(emissions)[0], 1])

    def forward(carry, step):
        score, _ = carry
        emission, is_word = step
        candidates = score[:, :, None] + transitions[None]  # [N, from, to]
        best_previous = tf.argmax(candidates, axis=1, output_type=tf.int32)
        new_score = tf.reduce_max(candidates, axis=1) + emission
        # Past a sentence's end the score stands still and points to itself.
        return (tf.where(is_word[:, None], new_score, score),
                tf.where(is_word[:, None], best_previous, identity))

    scores, pointers = tf.scan(
        forward,
        (tf.transpose(emissions[:, 1:], [1, 0, 2]), tf.transpose(valid[:, 1:])),
        initializer=(emissions[:, 0] + start, identity),
    )
    last = tf.argmax(scores[-1], axis=-1, output_type=tf.int32)
    earlier = tf.scan(lambda tag, pointer: tf.gather(pointer, tag, batch_dims=1),
                      pointers, initializer=last, reverse=True)
    tags = tf.transpose(tf.concat([earlier, last[None]], axis=0))
    return tags[:, :width]


def is_valid_bio(tags):
    """Whether one sentence's tags obey BIO: every `I-X` continues an `X`.

    Example:

    >>> is_valid_bio(["B-per", "I-per", "O"]), is_valid_bio(["O", "I-per"])
    (True, False)
    """
    previous = "O"
    for tag in tags:
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True
