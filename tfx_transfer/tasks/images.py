"""Image classification: reader, backbone + head, serving signature.

The model takes RGB pixels in [0, 255] at a fixed square size; the
backbone's own normalisation is a layer inside it. The serving function
adds decoding and resizing in front, so a client sends encoded bytes.
"""

import keras
import tensorflow as tf

from tfx_transfer import backbones
from tfx_transfer.data import bundled, folders, pipeline

BACKBONE_LAYER = "backbone"


def read_data(data_config):
    """Lists, validates and splits the images named by `data_config`.

    Args:
        data_config: `tfx_transfer.config.DataConfig`. `path=None` reads the
            bundled Fashion-MNIST demo.

    Returns:
        A `tfx_transfer.data.ImageFolderData`.
    """
    root = data_config.path or bundled.bundled_data_dir("fashion_mnist")
    return folders.read_image_folder(
        root,
        val_fraction=data_config.val_fraction,
        test_fraction=data_config.test_fraction,
        seed=data_config.seed,
    )


def build_image_classifier(spec, backbone, num_classes, model_config, image_size):
    """Puts a new classification head on a frozen backbone.

    The backbone is called with `training=False`, so its BatchNormalization
    layers stay in inference mode even when later stages unfreeze blocks.

    Args:
        spec: `tfx_transfer.backbones.BackboneSpec`. For its preprocessing.
        backbone: keras.Model. From `backbones.build_backbone`.
        num_classes: int. Width of the softmax layer.
        model_config: `tfx_transfer.config.ModelConfig`. Head settings.
        image_size: int. Square input resolution.

    Returns:
        A functional `keras.Model` from pixels in [0, 255], shape
        `(batch, image_size, image_size, 3)`, to class probabilities.

    Example:

    >>> spec = backbones.get_backbone_spec("mobilenet_v2")
    >>> backbone = backbones.build_backbone(spec, None, 96)
    >>> model = build_image_classifier(spec, backbone, 3, ModelConfig(), 96)
    >>> model.output_shape
    (None, 3)
    """
    regularizer = (
        keras.regularizers.L2(model_config.l2) if model_config.l2 else None
    )
    backbone.trainable = False

    # Layers.
    preprocess = backbones.ImagePreprocessing(spec.preprocessing, name="preprocess")
    pool = keras.layers.GlobalAveragePooling2D(name="pool")
    dropout = keras.layers.Dropout(model_config.dropout, name="head_dropout")
    hidden = None
    if model_config.hidden_units:
        hidden = keras.layers.Dense(
            model_config.hidden_units,
            activation="relu",
            kernel_regularizer=regularizer,
            name="head_hidden",
        )
    classify = keras.layers.Dense(
        num_classes,
        activation="softmax",
        kernel_regularizer=regularizer,
        name="probabilities",
    )

    # Functional model.
    images = keras.Input((image_size, image_size, 3), name="image")
    x = backbone(preprocess(images), training=False)
    x = dropout(pool(x))
    if hidden is not None:
        x = hidden(x)
    outputs = classify(x)
    return keras.Model(images, outputs, name=f"{spec.name}_classifier")


def serving_fn(model, class_names, image_size):
    """Returns the `serving_default` function: encoded image bytes in.

    Decoding and resizing are the training pipeline's own
    (`pipeline.decode_and_resize`), built from core TensorFlow ops only, so
    a stock TF Serving loads the export. The input is named `image_bytes`:
    TF Serving's REST API accepts `{"b64": ...}` for names ending in
    `_bytes`.

    Args:
        model: keras.Model. From `build_image_classifier`.
        class_names: sequence of str. Index -> label, baked into the graph.
        image_size: int. The model's input resolution.

    Returns:
        A `tf.function` from a `tf.string` vector to a dict with
        `probabilities` (float32 `[N, C]`) and `label` (string `[N]`).
    """
    labels = tf.constant(list(class_names))
    image_spec = tf.TensorSpec((image_size, image_size, 3), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def serve(image_bytes):
        images = tf.map_fn(
            lambda data: pipeline.decode_and_resize(data, image_size),
            image_bytes,
            fn_output_signature=image_spec,
        )
        probabilities = model(images, training=False)
        return {
            "probabilities": probabilities,
            "label": tf.gather(labels, tf.argmax(probabilities, axis=-1)),
        }

    return serve
