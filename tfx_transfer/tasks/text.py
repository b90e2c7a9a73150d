"""Text classification: CSV/TSV/JSONL/folder reader, encoder + pooled head, string serving.

The encoder and its tokenizer are keras-hub's (`BertBackbone`,
`BertTextClassifierPreprocessor`). The classifier takes token ids; the
serving function puts the tokenizer in front, so a client sends raw
strings. Its graph holds tensorflow-text ops: `import tensorflow_text`
before loading it (`tfx_transfer.export.load_serving_model` does).
"""

import keras
import tensorflow as tf

from tfx_transfer.classifier import Classifier, classification_head
from tfx_transfer.data import bundled, tfds_source
from tfx_transfer.data import text as text_data
from tfx_transfer.data.pipeline import batched
from tfx_transfer.evaluate import baselines
from tfx_transfer.tasks import defaults
from tfx_transfer.tasks.base import Datasets, register_task
from tfx_transfer.tasks.classification import ClassificationTask, serving_outputs
from tfx_transfer.tasks.encoder import EncoderTask


@register_task
class TextTask(EncoderTask, ClassificationTask):
    """Text classification: one label per text (`--task text`)."""

    name = "text"
    defaults = defaults.TEXT

    def read_data(self, data_config, val_fraction=None):
        """Reads, checks, de-duplicates and splits the texts; None reads BBC News."""
        data_config = tfds_source.local_data_config(data_config, self.name)
        if data_config.path is None:
            path, encoding = bundled.bundled_text_dir(), bundled.BUNDLED_TEXT_ENCODING
        else:
            path, encoding = data_config.path, data_config.encoding
        return text_data.read_text_data(
            path,
            encoding=encoding,
            text_column=data_config.text_column,
            label_column=data_config.label_column,
            val_fraction=data_config.val_fraction if val_fraction is None else val_fraction,
            test_fraction=data_config.test_fraction,
            seed=data_config.seed,
            skip_bad_rows=data_config.skip_bad_rows,
            val_path=data_config.val_path,
            test_path=data_config.test_path,
        )

    def make_datasets(self, data, config, backbone):
        """Pipelines of (token features, one-hot labels), tokenised once and cached."""
        num_classes = len(data.class_names)

        def dataset(name):
            split = data.splits[name]
            # Typed: an empty split (few-shot mode's validation) has no values to infer from.
            texts = tf.data.Dataset.from_tensor_slices((
                tf.constant(list(split.items), tf.string),
                tf.one_hot(tf.constant(list(split.labels), tf.int32), num_classes),
            ))
            tokens = texts.map(
                lambda text, label: (backbone.preprocessor(text), label),
                num_parallel_calls=tf.data.AUTOTUNE,
            ).cache()
            seed = config.data.seed if name == "train" else None
            return batched(tokens, config.data.batch_size, shuffle_seed=seed)

        return Datasets(*(dataset(name) for name in ("train", "val", "test")))

    def build_classifier(self, backbone, num_classes, model_config):
        """Mean-pools the encoder's token outputs over the real tokens, then the head.

        Mean pooling is the sentence-embedding recipe MiniLM was trained
        with, and needs no trained pooler layer.
        """
        encoder = backbone.encoder
        encoder.trainable = False
        inputs = backbone.encoder_inputs()
        tokens = encoder(inputs, training=False)["sequence_output"]
        mask = keras.ops.cast(inputs["padding_mask"], "bool")
        pooled = keras.layers.GlobalAveragePooling1D(name="mean_pool")(tokens, mask=mask)
        outputs = classification_head(pooled, num_classes, model_config)
        model = keras.Model(inputs, outputs, name=f"{backbone.spec.name}_classifier")
        return Classifier(model, encoder, backbone.unfreeze_groups, backbone.preprocessor)

    def baseline(self, data, config, backbone):
        """TF-IDF + logistic regression on the same texts."""
        train, val, test = (data.splits[name] for name in ("train", "val", "test"))
        return baselines.tfidf_logistic_regression(
            (train.items, train.labels), (val.items, val.labels), test.items
        )

    def serving_fn(self, classifier, class_names):
        """Raw strings in, tokenised inside the graph.

        Returns:
            A `tf.function` from a `tf.string` vector named `text` to
            `probabilities` (float32 `[N, C]`) and `label` (string `[N]`).
        """
        model, preprocessor = classifier.model, classifier.preprocessor

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=self.serving_input)])
        def serve(text):
            return serving_outputs(model(preprocessor(text), training=False), class_names)

        return serve
