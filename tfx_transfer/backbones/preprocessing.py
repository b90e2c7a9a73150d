"""The layer that maps raw pixels to what an image backbone was trained on."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfx_transfer")
class ImagePreprocessing(keras.layers.Layer):
    """Maps RGB pixels in [0, 255] to what a backbone was trained on.

    Living inside the model (and so inside the exported SavedModel) means a
    client sends plain pixels, and training and serving cannot disagree.

    Args:
        mode: str. "lite" for (x - 127) / 128 (EfficientNet-Lite), "caffe"
            for BGR with the ImageNet mean subtracted (ResNet50), "tf" for
            x / 127.5 - 1 (MobileNetV2), "none" for models that normalise
            internally (keras.applications EfficientNet).

    Example:

    >>> layer = ImagePreprocessing("tf")
    >>> float(layer(np.full((1, 2, 2, 3), 255.0))[0, 0, 0, 0])
    1.0
    """

    MODES = ("lite", "caffe", "tf", "none")
    CAFFE_BGR_MEAN = (103.939, 116.779, 123.68)

    def __init__(self, mode, **kwargs):
        super().__init__(**kwargs)
        if mode not in self.MODES:
            raise ValueError(
                f"`mode` must be one of {self.MODES}. Received: mode={mode!r}"
            )
        self.mode = mode

    def call(self, images):
        images = ops.cast(images, self.compute_dtype)
        if self.mode == "lite":
            return (images - 127.0) / 128.0
        if self.mode == "tf":
            return images / 127.5 - 1.0
        if self.mode == "caffe":
            bgr = ops.flip(images, axis=-1)
            return bgr - ops.convert_to_tensor(self.CAFFE_BGR_MEAN, images.dtype)
        return images

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}
