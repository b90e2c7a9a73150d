"""Data readers: image folders, text files, tf.data pipelines, weights.

`class_weights` here is the module; its function is
`tfx_transfer.data.class_weights.class_weights`. Re-exporting the function
under the same name would hide the module from `from tfx_transfer.data import
class_weights`.
"""

from tfx_transfer.data import class_weights
from tfx_transfer.data.augment import build_augmentation
from tfx_transfer.data.bundled import BUNDLED_TEXT_ENCODING
from tfx_transfer.data.bundled import bundled_data_dir
from tfx_transfer.data.bundled import bundled_text_dir
from tfx_transfer.data.folders import IMAGE_EXTENSIONS
from tfx_transfer.data.folders import ImageFolderData
from tfx_transfer.data.folders import read_image_folder
from tfx_transfer.data.pipeline import decode_and_resize
from tfx_transfer.data.pipeline import make_image_dataset
from tfx_transfer.data.splits import Split
from tfx_transfer.data.text import TEXT_EXTENSIONS
from tfx_transfer.data.text import TextData
from tfx_transfer.data.text import read_text_data

__all__ = [
    "BUNDLED_TEXT_ENCODING",
    "IMAGE_EXTENSIONS",
    "ImageFolderData",
    "Split",
    "TEXT_EXTENSIONS",
    "TextData",
    "build_augmentation",
    "bundled_data_dir",
    "bundled_text_dir",
    "class_weights",
    "decode_and_resize",
    "make_image_dataset",
    "read_image_folder",
    "read_text_data",
]
