"""What the text and token tasks share: a BERT-family encoder and raw-string serving.

`EncoderTask` loads the encoder and its tokenizer (`backbones.text`), keys
the feature cache on the tokenizer's settings, and ships the tokenizer in
the SavedModel. `TextTask` and `TokensTask` build on it.
"""

import tensorflow as tf

from tfx_transfer import backbones
from tfx_transfer.tasks.base import Task


class EncoderTask(Task):
    """A task on a keras-hub BERT-family encoder that serves raw strings."""

    serving_input = "text"

    def prepare_backbone(self, config):
        return backbones.load_text_backbone(
            config.model.backbone, config.model.weights, config.data.sequence_length
        )

    def feature_key(self, data, config, backbone):
        """`data_key` (examples, labels, batch size, seed) and the tokenizer's settings."""
        return {**self.data_key(data, config), **backbone.tokenization_key()}

    def export_objects(self, classifier):
        """The tokenizer, tracked so the SavedModel carries its vocabulary."""
        preprocessor = classifier.preprocessor
        if not preprocessor.built:
            # ExportArchive only tracks built layers; one call builds it.
            preprocessor(tf.constant(["build"]))
        return (preprocessor,)
