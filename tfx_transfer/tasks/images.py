"""Image classification: folder reader, image backbone + head, bytes-in serving.

The model takes RGB pixels in [0, 255] at a fixed square size; the
backbone's own normalisation is a layer inside it. The serving function
adds decoding and resizing in front, so a client sends encoded bytes.
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

from tfx_transfer import backbones
from tfx_transfer.classifier import Classifier, classification_head
from tfx_transfer.data import augment, bundled, folders, pipeline, tfds_source
from tfx_transfer.evaluate import baselines
from tfx_transfer.progress import predict_bar
from tfx_transfer.tasks import defaults
from tfx_transfer.tasks.base import Datasets, register_task
from tfx_transfer.tasks.classification import ClassificationTask, serving_outputs


@register_task
class ImagesTask(ClassificationTask):
    """Image classification on a folder of class folders (`--task images`)."""

    name = "images"
    defaults = defaults.IMAGES
    augments = True
    # TF Serving's REST API accepts {"b64": ...} for names ending in _bytes.
    serving_input = "image_bytes"

    def prepare_backbone(self, config):
        return backbones.prepare_image_backbone(
            config.model.backbone, config.model.weights, config.data.image_size
        )

    def read_data(self, data_config, val_fraction=None):
        data_config = tfds_source.local_data_config(data_config, self.name)
        return folders.read_image_folder(
            data_config.path or bundled.bundled_data_dir("fashion_mnist"),
            val_fraction=data_config.val_fraction if val_fraction is None else val_fraction,
            test_fraction=data_config.test_fraction,
            seed=data_config.seed,
        )

    def make_datasets(self, data, config, backbone):
        """Pipelines of (pixels, one-hot labels); the training one augmented.

        In few-shot mode the training stream is not shuffled: each pass
        over it gives the images in one order, so that row `i` of every
        cached view is image `i % N` (`tfx_transfer.stages`).
        """
        augmentation = None
        if config.augment.enabled:
            augmentation = augment.build_augmentation(
                flip=config.augment.flip,
                rotation=config.augment.rotation,
                zoom=config.augment.zoom,
                contrast=config.augment.contrast,
                seed=config.data.seed,
            )
        return Datasets(*(
            pipeline.make_image_dataset(
                data.splits[split],
                image_size=backbone.image_size,
                batch_size=config.data.batch_size,
                num_classes=len(data.class_names),
                training=split == "train",
                augmentation=augmentation if split == "train" else None,
                seed=config.data.seed,
                deterministic=config.deterministic,
                # Few-shot mode's L-BFGS head needs the views of an image
                # lined up, to keep them in one fold; order does not matter to it.
                shuffle=not config.few_shot,
            )
            for split in ("train", "val", "test")
        ))

    def feature_key(self, data, config, backbone):
        """`data_key` (image bytes, paths, labels, batch size, seed), size, decoder, augmentation.

        The augmentation is drawn per batch, hence the batch size in the key.
        """
        augmentation = dataclasses.asdict(config.augment) if config.augment.enabled else None
        return {
            **self.data_key(data, config, files=True),
            "image_size": backbone.image_size,
            "decoder": pipeline.DECODER_VERSION,
            "augment": augmentation,
            "ordered_views": bool(config.few_shot),
        }

    def build_classifier(self, backbone, num_classes, model_config):
        network = backbones.multi_depth_network(backbone.build(), backbone.spec.feature_blocks)
        model = build_image_classifier(
            backbone.spec, network, num_classes, model_config, backbone.image_size
        )
        return Classifier(model, network, backbone.unfreeze_groups)

    def baseline(self, data, config, backbone):
        """Logistic regression on the frozen backbone's pooled top features, unaugmented."""
        network = backbone.build()
        pixels = keras.Input((backbone.image_size, backbone.image_size, 3))
        x = backbones.ImagePreprocessing(backbone.spec.preprocessing)(pixels)
        x = keras.layers.GlobalAveragePooling2D()(network(x, training=False))
        extractor = keras.Model(pixels, x)

        def features(split):
            if not len(data.splits[split]):  # Few-shot mode's validation: none.
                return np.zeros((0, extractor.output_shape[-1]), np.float32)
            return extractor.predict(pipeline.make_image_dataset(
                data.splits[split], image_size=backbone.image_size,
                batch_size=config.data.batch_size, num_classes=len(data.class_names),
                training=False, cache=False,
            ), verbose=predict_bar(f"Baseline: backbone features of the {split} split:"))

        splits = {split: (features(split), np.asarray(data.splits[split].labels))
                  for split in ("train", "val", "test")}
        return baselines.feature_probe(
            splits["train"], splits["val"], splits["test"][0], len(data.class_names),
            class_weight=self.objective(config, data).class_weight,
        )

    def serving_fn(self, classifier, class_names):
        """Encoded image bytes in; decoded and resized as in training.

        Decoding and resizing are the training pipeline's own
        (`pipeline.decode_and_resize`), built from core TensorFlow ops only,
        so a stock TF Serving loads the export.

        Returns:
            A `tf.function` from a `tf.string` vector named `image_bytes` to
            `probabilities` (float32 `[N, C]`) and `label` (string `[N]`).
        """
        model = classifier.model
        image_size = model.input_shape[1]
        image_spec = tf.TensorSpec((image_size, image_size, 3), tf.float32)

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=self.serving_input)])
        def serve(image_bytes):
            images = tf.map_fn(
                lambda data: pipeline.decode_and_resize(data, image_size),
                image_bytes,
                fn_output_signature=image_spec,
            )
            return serving_outputs(model(images, training=False), class_names)

        return serve


def build_image_classifier(spec, backbone, num_classes, model_config, image_size):
    """Puts a new classification head on a frozen image backbone.

    The backbone is called with `training=False`, so its BatchNormalization
    layers stay in inference mode even when later stages unfreeze blocks.
    Each of its outputs is average-pooled ("pool_top" for the last); the
    head reads them concatenated ("pool").

    Args:
        spec: `tfx_transfer.backbones.BackboneSpec`. For its preprocessing.
        backbone: keras.Model. From `backbones.build_backbone`, or with
            several outputs from `backbones.multi_depth_network`.
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
    maps = backbone(x, training=False)
    maps = maps if isinstance(maps, (list, tuple)) else [maps]
    names = [prefix.rstrip("_") for prefix in spec.feature_blocks[: len(maps) - 1]] + ["top"]
    pooled = [keras.layers.GlobalAveragePooling2D(name=f"pool_{name}")(feature_map)
              for name, feature_map in zip(names, maps)]
    x = pooled[0] if len(pooled) == 1 else keras.layers.Concatenate(name="pool")(pooled)
    outputs = classification_head(x, num_classes, model_config)
    return keras.Model(images, outputs, name=f"{spec.name}_classifier")
