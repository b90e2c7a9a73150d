"""Token classification (NER): CoNLL reader, encoder + per-token head, serving.

The same keras-hub BERT encoders as the text task. Each word's tag goes on
its first wordpiece; the other pieces, [CLS], [SEP] and padding carry zero
sample weight, so they count in neither the loss nor the accuracy.
Sentences longer than the sequence length are cut into chunks at word
boundaries. The serving function does the splitting into words, the
wordpiece alignment and the chunking inside the graph, and returns the
words of each sentence with their tags.

Same shape as `tasks/images.py`.
"""

import keras
import numpy as np
import tensorflow as tf

from tfx_transfer import entity_metrics, evaluate, heads
from tfx_transfer.data import alignment, bundled, conll
from tfx_transfer.tasks.classification import data_key
from tfx_transfer.tasks.text import FEATURES, SERVING_INPUT, export_objects, prepare_backbone  # noqa: F401
from tfx_transfer.tasks.text import tokenization_key

AUGMENTS = False  # Whether the training stream is randomly augmented.


def read_data(data_config):
    """Reads and splits CoNLL-style `token TAG` files; tags become BIO.

    Args:
        data_config: `tfx_transfer.config.DataConfig`. `path=None` reads the
            bundled WNUT-16 Twitter NER demo.

    Returns:
        A `tfx_transfer.data.conll.TokenData`.
    """
    return conll.read_token_data(
        data_config.path or bundled.bundled_conll_path(),
        val_path=data_config.val_path,
        test_path=data_config.test_path,
        val_fraction=data_config.val_fraction,
        test_fraction=data_config.test_fraction,
        seed=data_config.seed,
    )


def tokenize(prepared, sentences, tag_ids=None):
    """Cuts sentences (lists of words) into `[CLS] ... [SEP]` chunks of wordpieces."""
    return alignment.tokenize_words(
        prepared.preprocessor.tokenizer,
        [list(words) for words in sentences],
        prepared.sequence_length,
        tag_ids,
    )


def make_datasets(data, config, prepared):
    """Returns (train, val, test) tf.data pipelines of (features, tag ids, weights)."""

    def dataset(name):
        sentences = data.splits[name]
        chunks = tokenize(
            prepared, [s.words for s in sentences], [data.tag_ids(s) for s in sentences]
        )
        weights = (chunks.labels != alignment.IGNORE).astype("float32")
        labels = np.where(chunks.labels == alignment.IGNORE, 0, chunks.labels)
        features = {k: v.astype("int32") for k, v in chunks.features().items()}
        examples = tf.data.Dataset.from_tensor_slices((features, labels, weights))
        if name == "train":
            examples = examples.shuffle(len(labels), config.data.seed, reshuffle_each_iteration=True)
        return examples.batch(config.data.batch_size).prefetch(tf.data.AUTOTUNE)

    return tuple(dataset(name) for name in ("train", "val", "test"))


def feature_key(data, config, prepared):
    """Describes what the encoder features depend on outside the model.

    Returns:
        A JSON-able dict: `data_key` (words, tags, batch size, seed) and
        `tokenization_key` (sequence length, tokenizer).
    """
    return {**data_key("tokens", data, config), **tokenization_key(prepared)}


def build_classifier(prepared, num_tags, model_config):
    """Puts a per-token softmax head on the frozen encoder.

    Returns:
        A tuple (tagger, encoder). The tagger maps the encoder's features to
        tag probabilities `[batch, sequence_length, num_tags]`.
    """
    encoder = prepared.encoder
    encoder.trainable = False
    length = prepared.sequence_length
    inputs = {name: keras.Input((length,), dtype="int32", name=name) for name in FEATURES}
    tokens = encoder(inputs, training=False)["sequence_output"]
    outputs = heads.classification_head(tokens, num_tags, model_config)
    return keras.Model(inputs, outputs, name=f"{prepared.spec.name}_tagger"), encoder


def class_weight(data):
    """None: per-token class weights are not supported by `fit` for sequences."""
    return None


def objective(model_config):
    """Returns `run_stages`' loss and metrics, both masked by sample weights."""
    return {
        "loss": keras.losses.SparseCategoricalCrossentropy(),
        "metrics": (),
        "weighted_metrics": ["accuracy"],
    }


def predict_tags(model, prepared, sentences, tag_names):
    """Tags sentences given as lists of words.

    Returns:
        A list, per sentence, of its tags (one per word).
    """
    chunks = tokenize(prepared, sentences)
    probabilities = model.predict(chunks.features(), batch_size=64, verbose=0)
    per_word = alignment.word_predictions(
        probabilities.argmax(-1), chunks.first_piece_index, chunks.sentence_index
    )
    return [[tag_names[i] for i in ids] for ids in per_word]


def write_report(model, test_data, data, prepared, stage_results, data_report, run_dir, header):
    """Writes the entity-level test report (seqeval) and token accuracy."""
    sentences = data.splits["test"]
    predicted = predict_tags(model, prepared, [s.words for s in sentences], data.tag_names)
    metrics = entity_metrics.entity_report([list(s.tags) for s in sentences], predicted)
    body = (
        f"Test entity micro F1: {metrics['micro']['f1']:.4f}, macro F1 "
        f"{metrics['macro']['f1']:.4f}, token accuracy "
        f"{metrics['token_accuracy']:.4f} ({metrics['num_sentences']} sentences)\n\n"
        + entity_metrics.format_entity_report(metrics)
    )
    report = evaluate.format_report(header, data_report, stage_results, body)
    return evaluate.write_files(run_dir, metrics, report, stage_results), report


def serving_fn(model, tag_names, prepared):
    """Returns the `serving_default` function: raw sentences in, words and tags out.

    Sentences are split into words on whitespace; each word's tag is read
    at its first wordpiece. Outputs are padded to the longest sentence
    (words "" and tags "" past a sentence's end; `num_words` says where).

    Args:
        model: keras.Model. From `build_classifier`.
        tag_names: sequence of str. Tag id -> BIO tag, baked into the graph.
        prepared: TextBackbone. Its tokenizer runs inside the graph.

    Returns:
        A `tf.function` from a `tf.string` vector named `text` to a dict
        with `words` and `tags` (string `[N, W]`), `tag_probabilities`
        (float32 `[N, W]`) and `num_words` (int64 `[N]`).
    """
    tags = tf.constant(list(tag_names))
    tokenizer = prepared.preprocessor.tokenizer
    length = prepared.sequence_length

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_INPUT)])
    def serve(text):
        words = alignment.split_words(text)
        pieces = alignment.word_piece_ids(tokenizer, words)
        packed = alignment.pack_word_pieces(
            pieces, length, tokenizer.cls_token_id, tokenizer.sep_token_id,
            tokenizer.pad_token_id,
        )
        probabilities = model({name: packed[name] for name in FEATURES}, training=False)
        per_word = alignment.gather_word_predictions(
            probabilities, packed["first_piece_index"], pieces.row_lengths()
        )
        best = tf.ragged.map_flat_values(tf.argmax, per_word, axis=-1)
        return {
            "words": words.to_tensor(""),
            "tags": tf.ragged.map_flat_values(tf.gather, tags, best).to_tensor(""),
            "tag_probabilities": tf.ragged.map_flat_values(
                tf.reduce_max, per_word, axis=-1
            ).to_tensor(0.0),
            "num_words": words.row_lengths(),
        }

    return serve


def entity_spans(words, tags, probabilities):
    """Groups one sentence's BIO tags into entities.

    Returns:
        A list of (entity text, entity type, mean tag probability).

    Example:

    >>> entity_spans(["Barack", "Obama", "visited", "Paris"],
    ...              ["B-person", "I-person", "O", "B-geo-loc"], [0.9, 0.8, 1.0, 0.7])
    [('Barack Obama', 'person', 0.85), ('Paris', 'geo-loc', 0.7)]
    """
    spans = []
    for word, tag, probability in zip(words, tags, probabilities):
        kind = tag[2:]
        continues = tag.startswith("I-") and spans and spans[-1][1] == kind and spans[-1][3]
        if continues:
            spans[-1][0].append(word)
            spans[-1][2].append(probability)
        elif tag[:2] in ("B-", "I-"):
            spans.append([[word], kind, [probability], True])
        if tag == "O" and spans:
            spans[-1][3] = False
    return [(" ".join(w), kind, float(np.mean(p))) for w, kind, p, _ in spans]
