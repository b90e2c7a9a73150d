"""Random image augmentation as Keras preprocessing layers."""

import math

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="tfx_transfer")
class RandomAffine(keras.layers.Layer):
    """Randomly flips, rotates and zooms each image with one resampling.

    Keras' `RandomFlip`, `RandomRotation` and `RandomZoom` each resample the
    whole batch; composing the three into one affine transform per image
    resamples once, which halves the cost of augmentation at 224 pixels on
    a CPU (where it, not decoding, bounds the input pipeline).

    Args:
        flip: bool. Random horizontal flips.
        rotation: float. Largest rotation as a fraction of a full turn
            (0.05 is 18 degrees either way).
        zoom: float. Largest zoom in or out as a fraction of the size.
        seed: int or None. Seed of the random draws.
        **kwargs: Base layer arguments.

    Example:

    >>> layer = RandomAffine(rotation=0.05, zoom=0.1, seed=1)
    >>> layer(images, training=True).shape == images.shape
    True
    """

    def __init__(self, flip=True, rotation=0.0, zoom=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.flip, self.rotation, self.zoom, self.seed = flip, rotation, zoom, seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, images, training=False):
        if not training:
            return images
        batch = ops.shape(images)[0]
        dtype = "float32"
        angle = self.rotation * 2 * math.pi
        theta = keras.random.uniform((batch,), -angle, angle, seed=self.seed_generator)
        scale = keras.random.uniform(
            (batch,), 1 - self.zoom, 1 + self.zoom, seed=self.seed_generator
        )
        mirror = ops.ones((batch,), dtype)
        if self.flip:
            draw = keras.random.uniform((batch,), seed=self.seed_generator)
            mirror = ops.where(draw < 0.5, -1.0, 1.0)
        # Output pixel -> input pixel about the image centre: scale * R * F.
        cos, sin = ops.cos(theta) * scale, ops.sin(theta) * scale
        m00, m01, m10, m11 = mirror * cos, -sin, mirror * sin, cos
        cy = (ops.cast(ops.shape(images)[1], dtype) - 1) / 2
        cx = (ops.cast(ops.shape(images)[2], dtype) - 1) / 2
        zeros = ops.zeros((batch,), dtype)
        transform = ops.stack(
            [m00, m01, cx - m00 * cx - m01 * cy, m10, m11, cy - m10 * cx - m11 * cy,
             zeros, zeros],
            axis=1,
        )
        moved = ops.image.affine_transform(
            ops.cast(images, dtype), transform, fill_mode="reflect"
        )
        return ops.cast(moved, images.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(flip=self.flip, rotation=self.rotation, zoom=self.zoom, seed=self.seed)
        return config


def build_augmentation(flip=True, rotation=0.05, zoom=0.1, contrast=0.1, seed=42):
    """Build a Keras model that randomly flips, rotates, zooms and tints images.

    The layers work on float images in 0..255 and keep them in that range
    (reflection fill for rotation and zoom, clipping for contrast), so the
    model fits between `make_image_dataset` and a backbone's own scaling.
    They act only when called with `training=True`.

    Args:
        flip: bool. random horizontal flips.
        rotation: float. largest rotation as a fraction of a full turn
            (0.05 is 18 degrees either way); 0 turns it off.
        zoom: float. largest zoom in or out as a fraction of the size;
            0 turns it off.
        contrast: float. largest contrast change, in [0, 1]; 0 turns it off.
        seed: int. base seed; each layer gets its own seed derived from it.

    Returns:
        A `keras.Sequential` named `"augmentation"` (a `RandomAffine` for the
        geometry, a `RandomContrast`), or None when every augmentation is off.

    Example:

    ```python
    augmentation = build_augmentation(rotation=0.1)
    images = augmentation(tf.zeros([8, 224, 224, 3]), training=True)
    ```
    """
    amounts = {"rotation": rotation, "zoom": zoom, "contrast": contrast}
    for name, value in amounts.items():
        if value < 0:
            raise ValueError(
                f"`{name}` must not be negative. Received: {name}={value}"
            )
    # Layers sharing one seed would draw the same random numbers, tying the
    # geometry to the contrast; offset each layer's seed.
    layers = []
    if flip or rotation or zoom:
        layers.append(RandomAffine(flip, rotation, zoom, seed=seed, name="random_affine"))
    if contrast:
        layers.append(
            keras.layers.RandomContrast(contrast, value_range=(0, 255), seed=seed + 1)
        )
    if not layers:
        return None
    return keras.Sequential(layers, name="augmentation")
