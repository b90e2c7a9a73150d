"""The new classification head that every task puts on its backbone."""

import keras


def classification_head(features, num_classes, model_config):
    """Applies dropout, an optional hidden layer and a softmax layer.

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
    x = keras.layers.Dropout(model_config.dropout, name="head_dropout")(features)
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
