"""What every task builds: a backbone with a new head, bundled as a `Classifier`."""

import dataclasses

import keras


@dataclasses.dataclass(frozen=True)
class Classifier:
    """A task's model and the parts that the stages, report and export need.

    Args:
        model: keras.Model. Model inputs -> probabilities; ends in the
            `classification_head` layers.
        backbone: keras.Model. The pretrained network inside `model`,
            unfrozen block by block (`tfx_transfer.stages`).
        unfreeze_groups: tuple of tuples of str. Layer names of each
            backbone block, top first (`BackboneSpec.unfreeze_groups`).
        preprocessor: keras.layers.Layer or None. Turns raw inputs into
            `model`'s inputs outside the model (a text tokenizer); None when
            the model takes raw pixels itself.

    Example:

    >>> classifier = task.build_classifier(backbone, 5, ModelConfig())
    >>> classifier.model.output_shape
    (None, 5)
    """

    model: keras.Model
    backbone: keras.Model
    unfreeze_groups: tuple
    preprocessor: keras.layers.Layer | None = None

    @property
    def normalization(self):
        """The backbone's normalization, as the stage plan names it.

        Returns:
            "BatchNorm", "LayerNorm" or None.
        """
        for kind, name in ((keras.layers.BatchNormalization, "BatchNorm"),
                           (keras.layers.LayerNormalization, "LayerNorm")):
            if any(isinstance(layer, kind) for layer in self.backbone.layers):
                return name
        return None


@keras.saving.register_keras_serializable(package="tfx_transfer")
class Standardize(keras.layers.Layer):
    """Subtracts a fixed mean and divides by a fixed scale, per feature.

    The head's first layer. It starts as the identity; a head fitted on
    cached features (`tfx_transfer.probe.fit_dense_head`) sets it to the
    training features' statistics, so the softmax layer after it, and the
    dropout before that, see features of mean 0 and variance 1 whatever
    the backbone's scale. Its weights never train.

    Example:

    >>> layer = Standardize()
    >>> layer(np.ones((2, 4))).shape
    (2, 4)
    """

    def build(self, input_shape):
        dim = input_shape[-1]
        self.mean = self.add_weight(shape=(dim,), initializer="zeros", trainable=False,
                                    name="mean")
        self.scale = self.add_weight(shape=(dim,), initializer="ones", trainable=False,
                                     name="scale")

    def call(self, inputs):
        return (inputs - keras.ops.cast(self.mean, inputs.dtype)) / keras.ops.cast(
            self.scale, inputs.dtype)


def classification_head(features, num_classes, model_config):
    """Applies standardization, dropout, an optional hidden layer and a softmax layer.

    Args:
        features: KerasTensor `[batch, dim]`. Pooled backbone features.
        num_classes: int. Width of the softmax layer.
        model_config: `tfx_transfer.config.ModelConfig`. For dropout,
            hidden_units and l2.

    Returns:
        KerasTensor `[batch, num_classes]` of probabilities, from a layer
        named "probabilities".

    Example:

    >>> features = keras.Input((384,))
    >>> probabilities = classification_head(features, 5, ModelConfig())
    """
    regularizer = keras.regularizers.L2(model_config.l2) if model_config.l2 else None
    x = Standardize(name="head_standardize")(features)
    x = keras.layers.Dropout(model_config.dropout, name="head_dropout")(x)
    if model_config.hidden_units:
        x = keras.layers.Dense(
            model_config.hidden_units,
            activation="relu",
            kernel_regularizer=regularizer,
            name="head_hidden",
        )(x)
    return keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=regularizer,
        # Under mixed precision a float16 softmax loses small probabilities.
        dtype="float32",
        name="probabilities",
    )(x)
