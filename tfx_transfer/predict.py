"""Predictions from an exported model, through its serving signature.

What `python -m tfx_transfer predict` uses: the same SavedModel and the same
`serving_default` signature that TF Serving would run, fed raw bytes or
strings.
"""

from pathlib import Path

import numpy as np
import tensorflow as tf

from tfx_transfer import export
from tfx_transfer.data.folders import IMAGE_EXTENSIONS
from tfx_transfer.evaluate.entities import entity_spans


class Predictor:
    """Classifies raw inputs with an exported SavedModel.

    Works for every task's export: an image model's signature takes encoded
    image bytes (`image_bytes`), a text model's raw strings (`text`).

    Args:
        path: str or Path. A run directory or its `saved_model/` folder.

    Example:

    >>> predictor = Predictor("runs/images-efficientnet_lite0-20261126")
    >>> predictor.top_k(open("cat.jpg", "rb").read(), k=3)
    [('cat', 0.91), ('dog', 0.05), ('fox', 0.01)]
    """

    def __init__(self, path):
        self._loaded = export.load_serving_model(path)
        self._serve = self._loaded.signatures["serving_default"]
        (self.input_name,) = self._serve.structured_input_signature[1]
        self.class_names = export.read_labels(path)

    @property
    def takes_images(self):
        return self.input_name.endswith("_bytes")

    @property
    def tags_tokens(self):
        return "tags" in self._serve.structured_outputs

    def tags(self, sentence):
        """Returns the BIO tags a token model gives each whitespace-separated word of a sentence."""
        out = self._serve(**{self.input_name: tf.constant([sentence])})
        count = int(out["num_words"][0])
        return [t.decode() for t in out["tags"][0].numpy()[:count]]

    def entities(self, sentence):
        """Returns the entities a token model finds in one sentence.

        Returns:
            A list of (entity text, entity type, mean tag probability).
        """
        out = self._serve(**{self.input_name: tf.constant([sentence])})
        count = int(out["num_words"][0])
        words = [w.decode() for w in out["words"][0].numpy()[:count]]
        tags = [t.decode() for t in out["tags"][0].numpy()[:count]]
        return entity_spans(words, tags, out["tag_probabilities"][0].numpy()[:count])

    def predict(self, inputs):
        """Returns probabilities `[N, C]` for a list of encoded images or texts.

        Raises:
            ValueError: one of `inputs` is not a decodable JPEG/PNG/GIF/BMP.
        """
        try:
            outputs = self._serve(**{self.input_name: tf.constant(list(inputs), tf.string)})
        except tf.errors.InvalidArgumentError as error:
            raise ValueError(
                "Could not decode the image bytes (expected JPEG, PNG, GIF or "
                f"BMP): {error.message.splitlines()[0]}"
            ) from error
        return outputs["probabilities"].numpy()

    def run_all(self, names, k=3, batch_size=32):
        """Predicts every input, in batches; a bad one is reported, never fatal.

        Args:
            names: iterable of str. Image file paths for an image model,
                else the texts or sentences themselves.
            k: int. Labels per input.
            batch_size: int. Inputs per call of the signature.

        Yields:
            One dict per input, in order: {"input", "top_k": [{"label",
            "probability"}]} for a classifier, {"input", "entities":
            [{"text", "type", "probability"}]} for a token model, or
            {"input", "error"} with the reason it failed.
        """
        names = iter(names)
        while batch := [name for _, name in zip(range(batch_size), names)]:
            if self.tags_tokens:
                yield from (self._entities_of(name) for name in batch)
                continue
            examples, results = [], {}
            for name in batch:
                try:
                    examples.append((name, self._read(name)))
                except (OSError, ValueError) as error:
                    results[name] = {"input": name, "error": str(error)}
            try:
                rows = self.predict([example for _, example in examples]) if examples else []
                scored = list(zip(examples, rows))
            except ValueError:  # One undecodable image: each is tried alone.
                scored = []
                for name, example in examples:
                    try:
                        scored.append(((name, example), self.predict([example])[0]))
                    except ValueError as error:
                        results[name] = {"input": name, "error": str(error)}
            for (name, _), row in scored:
                results[name] = {"input": name, "top_k": self._top(row, k)}
            yield from (results[name] for name in batch)

    def _read(self, name):
        if not self.takes_images:
            return name
        path = Path(name)
        if not path.is_file():
            raise ValueError("no such image file")
        return path.read_bytes()

    def _entities_of(self, sentence):
        spans = self.entities(sentence)
        return {"input": sentence, "entities": [
            {"text": text, "type": kind, "probability": float(p)} for text, kind, p in spans]}

    def _top(self, probabilities, k):
        order = np.argsort(probabilities)[::-1][:k]
        return [{"label": self.class_names[i], "probability": float(probabilities[i])}
                for i in order]

    def top_k(self, example, k=3):
        """Returns the `k` most likely (label, probability) pairs for one input."""
        probabilities = self.predict([example])[0]
        order = np.argsort(probabilities)[::-1][:k]
        return [(self.class_names[i], float(probabilities[i])) for i in order]


def format_entities(sentence, spans):
    """Formats one sentence's entities: `sentence: [type] text (p), ...`."""
    found = ", ".join(f"[{kind}] {text} ({p:.3f})" for text, kind, p in spans)
    return f"{sentence}: {found or 'no entities'}"


def format_top_k(name, pairs):
    """Formats one image's top-k pairs as a line: `name: label (p), ...`."""
    return f"{name}: " + ", ".join(f"{label} ({p:.3f})" for label, p in pairs)


def format_result(result):
    """One line for a `Predictor.run_all` result (not an error)."""
    if "entities" in result:
        spans = [(e["text"], e["type"], e["probability"]) for e in result["entities"]]
        return format_entities(result["input"], spans)
    return format_top_k(result["input"], [(t["label"], t["probability"]) for t in result["top_k"]])


def expand_inputs(inputs):
    """Image inputs with each folder replaced by the image files under it, sorted.

    Example:

    >>> expand_inputs(["photos/", "cat.jpg"])
    ['photos/a.png', 'photos/b/c.jpg', 'cat.jpg']
    """
    expanded = []
    for name in inputs:
        path = Path(name)
        if path.is_dir():
            expanded += sorted(str(p) for p in path.rglob("*") if p.is_file()
                               and not p.name.startswith(".")
                               and p.name.lower().endswith(IMAGE_EXTENSIONS))
        else:
            expanded.append(name)
    return expanded
