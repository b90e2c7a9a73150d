"""Token classification (NER): CoNLL reader, encoder + per-token head, sentence serving.

The same keras-hub BERT encoders as the text task (`EncoderTask`). Each
word's tag goes on its first wordpiece; the other pieces, [CLS], [SEP] and
padding carry zero sample weight, so they count in neither the loss nor
the accuracy. Sentences longer than the sequence length are cut into
chunks at word boundaries. The serving function does the splitting into
words, the wordpiece alignment and the chunking inside the graph, and
returns the words of each sentence with their tags.
"""

import keras
import numpy as np
import tensorflow as tf

from tfx_transfer import decoding, evaluate, stages
from tfx_transfer.backbones.text import ENCODER_INPUTS
from tfx_transfer.classifier import Classifier, classification_head
from tfx_transfer.data import alignment, alignment_ops, bundled, conll, tfds_source
from tfx_transfer.data.pipeline import batched
from tfx_transfer.evaluate import baselines
from tfx_transfer.evaluate import entities as entity_metrics
from tfx_transfer.progress import predict_bar
from tfx_transfer.tasks import defaults
from tfx_transfer.tasks.base import Datasets, register_task
from tfx_transfer.tasks.encoder import EncoderTask


@register_task
class TokensTask(EncoderTask):
    """Token classification: one BIO tag per word (`--task tokens`)."""

    name = "tokens"
    defaults = defaults.TOKENS

    def read_data(self, data_config, val_fraction=None):
        """Reads and splits CoNLL-style `token TAG` files; None reads WNUT-16."""
        data_config = tfds_source.local_data_config(data_config, self.name)
        return conll.read_token_data(
            data_config.path or bundled.bundled_conll_path(),
            val_path=data_config.val_path,
            test_path=data_config.test_path,
            val_fraction=data_config.val_fraction if val_fraction is None else val_fraction,
            test_fraction=data_config.test_fraction,
            seed=data_config.seed,
            skip_bad_rows=data_config.skip_bad_rows,
        )

    def make_datasets(self, data, config, backbone):
        """Pipelines of (features, tag ids, weights); the report counts chunks and cuts."""
        report = {"chunks": {}, "long_sentences": {}, "truncated_words": {},
                  "truncated_pieces": {}}

        def dataset(name):
            sentences = data.splits[name]
            chunks = tokenize(
                backbone.preprocessor, [s.words for s in sentences],
                [data.tag_ids(s) for s in sentences],
            )
            report["chunks"][name] = len(chunks.sentence_index)
            report["long_sentences"][name] = int(np.sum(np.bincount(chunks.sentence_index) > 1))
            report["truncated_words"][name] = chunks.truncated_words
            report["truncated_pieces"][name] = chunks.truncated_pieces
            weights = (chunks.labels != alignment.IGNORE).astype("float32")
            labels = np.where(chunks.labels == alignment.IGNORE, 0, chunks.labels)
            features = {k: v.astype("int32") for k, v in chunks.features().items()}
            examples = tf.data.Dataset.from_tensor_slices((features, labels, weights))
            seed = config.data.seed if name == "train" else None
            return batched(examples, config.data.batch_size, shuffle_seed=seed)

        splits = [dataset(name) for name in ("train", "val", "test")]
        return Datasets(*splits, report={"tokenization": report})

    def build_classifier(self, backbone, num_tags, model_config):
        """A per-token softmax head on the frozen encoder: `[batch, length, num_tags]`."""
        encoder = backbone.encoder
        encoder.trainable = False
        inputs = backbone.encoder_inputs()
        tokens = encoder(inputs, training=False)["sequence_output"]
        outputs = classification_head(tokens, num_tags, model_config)
        model = keras.Model(inputs, outputs, name=f"{backbone.spec.name}_tagger")
        return Classifier(model, encoder, backbone.unfreeze_groups, backbone.preprocessor)

    def objective(self, config, data):
        """Cross-entropy and accuracy, both masked by the sample weights.

        No class weights: `fit` does not support them for sequence outputs.
        """
        return stages.Objective(
            loss=keras.losses.SparseCategoricalCrossentropy(),
            metrics=(),
            weighted_metrics=("accuracy",),
        )

    def baseline(self, data, config, backbone):
        """Each word's most frequent training tag."""
        return baselines.most_frequent_tag(
            [(s.words, s.tags) for s in data.splits["train"]],
            [s.words for s in data.splits["test"]],
        )

    def evaluate(self, classifier, test_data, data, run_dir, baseline=None):
        """Entity-level scores (seqeval) and token accuracy of the test sentences."""
        sentences = data.splits["test"]
        true = [list(s.tags) for s in sentences]
        predicted = predict_tags(classifier, [s.words for s in sentences], data.tag_names)
        metrics = entity_metrics.entity_report(true, predicted)
        metrics["micro_f1_interval"] = list(entity_metrics.micro_f1_interval(true, predicted))
        body = (
            f"Test entity micro F1: {metrics['micro']['f1']:.4f} (95% interval "
            f"{metrics['micro_f1_interval'][0]:.4f}-{metrics['micro_f1_interval'][1]:.4f}), "
            f"macro F1 {metrics['macro']['f1']:.4f}, token accuracy "
            f"{metrics['token_accuracy']:.4f} ({metrics['num_sentences']} sentences)\n"
        )
        if baseline is not None:
            metrics["baseline"] = {
                "name": baseline.name, "details": baseline.details,
                "micro_f1": entity_metrics.entity_report(true, baseline.predictions)["micro"]["f1"],
                "micro_f1_interval": list(
                    entity_metrics.micro_f1_interval(true, baseline.predictions)),
            }
            metrics["vs_baseline"] = entity_metrics.compare_micro_f1(
                true, predicted, baseline.predictions)
            body += evaluate.baseline_text(metrics["baseline"], metrics["vs_baseline"],
                                           "entity micro F1",
                                           metrics["baseline"]["micro_f1_interval"]) + "\n"
        return metrics, body + "\n" + entity_metrics.format_entity_report(metrics)

    def serving_fn(self, classifier, tag_names):
        """Raw sentences in, words and tags out.

        Sentences are split into words on whitespace; each word's tag
        probabilities are read at its first wordpiece, and the tags are the
        most probable BIO-valid sequence (`tfx_transfer.decoding`). Outputs are padded to the longest
        sentence (words "" and tags "" past a sentence's end; `num_words`
        says where).

        Returns:
            A `tf.function` from a `tf.string` vector named `text` to
            `words` and `tags` (string `[N, W]`), `tag_probabilities`
            (float32 `[N, W]`) and `num_words` (int64 `[N]`).
        """
        model = classifier.model
        tags = tf.constant(list(tag_names))
        tokenizer = classifier.preprocessor.tokenizer
        length = classifier.preprocessor.sequence_length

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=self.serving_input)])
        def serve(text):
            words = alignment_ops.split_words(text)
            pieces = alignment_ops.word_piece_ids(tokenizer, words)
            packed = alignment_ops.pack_word_pieces(
                pieces, length, tokenizer.cls_token_id, tokenizer.sep_token_id,
                tokenizer.pad_token_id,
            )
            probabilities = model({name: packed[name] for name in ENCODER_INPUTS},
                                  training=False)
            per_word = alignment_ops.gather_word_predictions(
                probabilities, packed["first_piece_index"], pieces.row_lengths()
            )
            num_words = words.row_lengths()
            padded = per_word.to_tensor(0.0)
            best = decoding.constrained_decode(padded, num_words, tag_names)
            is_word = tf.sequence_mask(num_words, tf.shape(best)[1])
            return {
                "words": words.to_tensor(""),
                "tags": tf.where(is_word, tf.gather(tags, best), ""),
                "tag_probabilities": tf.where(
                    is_word, tf.gather(padded, best, batch_dims=2), 0.0),
                "num_words": num_words,
            }

        return serve


def tokenize(preprocessor, sentences, tag_ids=None):
    """Cuts sentences (lists of words) into `[CLS] ... [SEP]` chunks of wordpieces."""
    return alignment.tokenize_words(
        preprocessor.tokenizer,
        [list(words) for words in sentences],
        preprocessor.sequence_length,
        tag_ids,
    )


def predict_tags(classifier, sentences, tag_names):
    """Tags sentences given as lists of words (what the report scores).

    The same decoding as the served model: each word's tag probabilities
    at its first wordpiece, then the most probable BIO-valid sequence.

    Returns:
        A list, per sentence, of its tags (one per word).

    Example:

    >>> predict_tags(classifier, [["Barack", "Obama", "visited", "Paris"]], tag_names)
    [['B-person', 'I-person', 'O', 'B-geo-loc']]
    """
    padded, lengths = word_probabilities(classifier, sentences, len(tag_names))
    return decode_tags(padded, lengths, tag_names)


def word_probabilities(classifier, sentences, num_tags):
    """Each word's tag probabilities, read at its first wordpiece.

    Returns:
        A tuple (probabilities `[N, W, num_tags]`, zero past each
        sentence's end; lengths, a list of N word counts).
    """
    chunks = tokenize(classifier.preprocessor, sentences)
    probabilities = classifier.model.predict(
        chunks.features(), batch_size=64,
        verbose=predict_bar(f"Evaluating on the test split ({len(sentences)} sentences):"))
    per_word = alignment.word_predictions(
        probabilities, chunks.first_piece_index, chunks.sentence_index
    )
    lengths = [len(words) for words in per_word]
    padded = np.zeros((len(per_word), max(lengths, default=0), num_tags), np.float32)
    for row, words in enumerate(per_word):
        padded[row, : len(words)] = words
    return padded, lengths


def decode_tags(probabilities, lengths, tag_names, transition_scores=None):
    """The most probable BIO-valid tags of each sentence, as lists of tag names."""
    best = decoding.constrained_decode(probabilities, lengths, tag_names,
                                       transition_scores).numpy()
    return [[tag_names[i] for i in best[row, :length]] for row, length in enumerate(lengths)]
