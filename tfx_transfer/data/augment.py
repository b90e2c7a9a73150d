"""Random image augmentation built from Keras preprocessing layers."""

import keras


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
        A `keras.Sequential` named `"augmentation"`, or None when every
        augmentation is off.

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
    # Layers sharing one seed would draw the same random numbers, tying e.g.
    # the rotation angle to the zoom factor; offset each layer's seed.
    layers = []
    if flip:
        layers.append(keras.layers.RandomFlip("horizontal", seed=seed))
    if rotation:
        layers.append(
            keras.layers.RandomRotation(rotation, fill_mode="reflect", seed=seed + 1)
        )
    if zoom:
        layers.append(
            keras.layers.RandomZoom(zoom, fill_mode="reflect", seed=seed + 2)
        )
    if contrast:
        layers.append(
            keras.layers.RandomContrast(contrast, value_range=(0, 255), seed=seed + 3)
        )
    if not layers:
        return None
    return keras.Sequential(layers, name="augmentation")
