"""Image classification: reader, backbone + head, serving signature.

The model takes RGB pixels in [0, 255] at a fixed square size; the
backbone's own normalisation is a layer inside it. The serving function
adds decoding and resizing in front, so a client sends encoded bytes.

Every task module has the same shape: `prepare_backbone`, `read_data`,
`make_datasets`, `feature_key`, `build_classifier`, `serving_fn`,
`export_objects`.
"""

import dataclasses

import keras
import tensorflow as tf

from tfx_transfer import backbones, heads
from tfx_transfer.data import augment, bundled, folders, pipeline
from tfx_transfer.tasks.classification import class_weight, objective, write_report  # noqa: F401
from tfx_transfer.tasks.classification import data_key

SERVING_INPUT = "image_bytes"
AUGMENTS = True  # Whether the training stream is randomly augmented.


@dataclasses.dataclass(frozen=True)
class ImageBackbone:
    """A resolved image backbone: what to build, from which weights, at what size.

    Args:
        spec: `tfx_transfer.backbones.BackboneSpec`.
        weights_path: str or None. Local weights file, or None for random.
        image_size: int. Square input resolution.
    """

    spec: backbones.BackboneSpec
    weights_path: str | None
    image_size: int

    @property
    def unfreeze_groups(self):
        return self.spec.unfreeze_groups

    def describe(self, weights):
        return (
            f"backbone {self.spec.name} ({weights} weights), "
            f"{self.image_size}x{self.image_size}"
        )


def prepare_backbone(config):
    """Resolves the backbone and its weights; runs before any data is read.

    Args:
        config: `tfx_transfer.config.RunConfig`, resolved.

    Returns:
        An `ImageBackbone`.
    """
    spec = backbones.get_backbone_spec(config.model.backbone)
    weights_path = backbones.resolve_weights(spec, config.model.weights)
    return ImageBackbone(spec, weights_path, config.data.image_size or spec.image_size)


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


def make_datasets(data, config, prepared):
    """Returns (train, val, test) tf.data pipelines of (pixels, one-hot labels)."""
    augmentation = None
    if config.augment.enabled:
        augmentation = augment.build_augmentation(
            flip=config.augment.flip,
            rotation=config.augment.rotation,
            zoom=config.augment.zoom,
            contrast=config.augment.contrast,
            seed=config.data.seed,
        )
    return tuple(
        pipeline.make_image_dataset(
            data.splits[split],
            image_size=prepared.image_size,
            batch_size=config.data.batch_size,
            num_classes=len(data.class_names),
            training=split == "train",
            augmentation=augmentation if split == "train" else None,
            seed=config.data.seed,
        )
        for split in ("train", "val", "test")
    )


def feature_key(data, config, prepared):
    """Describes what the backbone features depend on outside the model.

    The key of `tfx_transfer.features.FeatureCache` entries, with the
    backbone's weights fingerprint added by `run_stages`.

    Returns:
        A JSON-able dict: `data_key` (image bytes and paths, labels, batch
        size, seed), the image size, and the augmentation settings when the
        training stream is augmented (per batch, hence the batch size).
    """
    augment = dataclasses.asdict(config.augment) if config.augment.enabled else None
    return {
        **data_key("images", data, config, files=True),
        "image_size": prepared.image_size,
        "augment": augment,
    }


def build_classifier(prepared, num_classes, model_config):
    """Builds the backbone from `prepared` and puts a new head on it.

    Returns:
        A tuple (classifier, backbone): the backbone is the classifier's
        layer named "backbone".
    """
    backbone = backbones.build_backbone(
        prepared.spec, prepared.weights_path, prepared.image_size
    )
    model = build_image_classifier(
        prepared.spec, backbone, num_classes, model_config, prepared.image_size
    )
    return model, backbone


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
    backbone.trainable = False
    images = keras.Input((image_size, image_size, 3), name="image")
    x = backbones.ImagePreprocessing(spec.preprocessing, name="preprocess")(images)
    x = backbone(x, training=False)
    x = keras.layers.GlobalAveragePooling2D(name="pool")(x)
    outputs = heads.classification_head(x, num_classes, model_config)
    return keras.Model(images, outputs, name=f"{spec.name}_classifier")


def export_objects(prepared):
    """Objects besides the model that the SavedModel must track (none)."""
    return ()


def serving_fn(model, class_names, prepared):
    """Returns the `serving_default` function: encoded image bytes in.

    Decoding and resizing are the training pipeline's own
    (`pipeline.decode_and_resize`), built from core TensorFlow ops only, so
    a stock TF Serving loads the export. The input is named `image_bytes`:
    TF Serving's REST API accepts `{"b64": ...}` for names ending in
    `_bytes`.

    Args:
        model: keras.Model. From `build_image_classifier`.
        class_names: sequence of str. Index -> label, baked into the graph.
        prepared: ImageBackbone. For the model's input resolution.

    Returns:
        A `tf.function` from a `tf.string` vector to a dict with
        `probabilities` (float32 `[N, C]`) and `label` (string `[N]`).
    """
    image_size = prepared.image_size
    labels = tf.constant(list(class_names))
    image_spec = tf.TensorSpec((image_size, image_size, 3), tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_INPUT)])
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
