"""Mixed precision: which Keras dtype policy a run builds its model under.

Measured on a 2-core AVX-512 CPU without bfloat16 instructions (`python
-m tfx_transfer bench`): mixed float16 and bfloat16 run the backbones
2-2.5x slower than float32, so "off" is the default; on GPUs and TPUs
mixed precision is usually the faster choice.
"""

import contextlib

import keras

from tfx_transfer.config import MIXED_PRECISION

POLICIES = dict(zip(MIXED_PRECISION, ("float32", "mixed_float16", "mixed_bfloat16")))


def policy_name(mixed_precision):
    """Returns the Keras dtype policy name for a `mixed_precision` setting.

    Args:
        mixed_precision: str. "off", "float16" or "bfloat16".

    Returns:
        str. "float32", "mixed_float16" or "mixed_bfloat16".
    """
    if mixed_precision not in POLICIES:
        raise ValueError(
            f"`mixed_precision` must be one of {MIXED_PRECISION}. "
            f"Received: mixed_precision={mixed_precision!r}"
        )
    return POLICIES[mixed_precision]


@contextlib.contextmanager
def dtype_policy(mixed_precision):
    """Builds layers under a mixed-precision policy, restoring the old one after.

    Layers take their dtype policy when they are created, so the model must
    be built inside the block; it keeps computing in that precision
    afterwards. The head's softmax stays float32 (`tfx_transfer.heads`), and
    `compile` adds loss scaling for float16 by itself.

    Args:
        mixed_precision: str. "off", "float16" or "bfloat16".

    Example:

    >>> with dtype_policy("bfloat16"):
    ...     model, backbone = task.build_classifier(prepared, 5, model_config)
    """
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy_name(mixed_precision))
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)
