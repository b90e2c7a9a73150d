"""Predictions from an exported model, through its serving signature.

What `python -m tfx_transfer predict` uses: the same SavedModel and the same
`serving_default` signature that TF Serving would run, fed raw bytes.
"""

import numpy as np
import tensorflow as tf

from tfx_transfer import export


class ImagePredictor:
    """Classifies encoded images with an exported SavedModel.

    Args:
        path: str or Path. A run directory or its `saved_model/` folder.

    Example:

    >>> predictor = ImagePredictor("runs/images-efficientnet_lite0-20261126")
    >>> predictor.top_k(open("cat.jpg", "rb").read(), k=3)
    [('cat', 0.91), ('dog', 0.05), ('fox', 0.01)]
    """

    def __init__(self, path):
        self._loaded = export.load_serving_model(path)
        self._serve = self._loaded.signatures["serving_default"]
        self.class_names = export.read_labels(path)

    def predict(self, images):
        """Returns probabilities `[N, C]` for a list of encoded images.

        Raises:
            ValueError: one of `images` is not a decodable JPEG/PNG/GIF/BMP.
        """
        try:
            outputs = self._serve(image_bytes=tf.constant(list(images), tf.string))
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(
                "Could not decode the image bytes (expected JPEG, PNG, GIF or "
                f"BMP): {error.message.splitlines()[0]}"
            ) from error
        return outputs["probabilities"].numpy()

    def top_k(self, image, k=3):
        """Returns the `k` most likely (label, probability) pairs for one image."""
        probabilities = self.predict([image])[0]
        order = np.argsort(probabilities)[::-1][:k]
        return [(self.class_names[i], float(probabilities[i])) for i in order]


def format_top_k(name, pairs):
    """Formats one image's top-k pairs as a line: `name: label (p), ...`."""
    return f"{name}: " + ", ".join(f"{label} ({p:.3f})" for label, p in pairs)
