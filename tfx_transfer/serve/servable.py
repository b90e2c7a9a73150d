"""One served model version: its signatures, as TF Serving describes and runs them."""

import re
from pathlib import Path

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.protobuf import saved_model_pb2

from tfx_transfer import export

DEFAULT_SIGNATURE = "serving_default"


class ServingError(Exception):
    """A request that cannot be answered, with the HTTP status TF Serving gives it.

    Args:
        message: str. Sent back as `{"error": message}`.
        status: int. 400 (a bad request), 404 (no such model, version or
            signature), 413 (too large) or 500.
    """

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


def find_versions(path):
    """The SavedModel folders under `path`, by version number.

    Args:
        path: str or Path. A run directory, a SavedModel folder, or a TF
            Serving model base path (`NAME/` holding `1/`, `2/`, ...).

    Returns:
        A dict {version (int): SavedModel folder (Path)}; a run directory or
        a bare SavedModel is version 1.

    Raises:
        FileNotFoundError: `path` holds no SavedModel.
    """
    path = Path(path)
    if (path / export.SAVED_MODEL_DIR / "saved_model.pb").is_file():
        return {1: path / export.SAVED_MODEL_DIR}
    if (path / "saved_model.pb").is_file():
        return {1: path}
    versions = {int(child.name): child for child in path.iterdir() if child.is_dir()
                and re.fullmatch(r"\d+", child.name)
                and (child / "saved_model.pb").is_file()} if path.is_dir() else {}
    if not versions:
        raise FileNotFoundError(
            f"No SavedModel in {path}: expected a run directory, a SavedModel folder, or "
            "a model base path with numbered version folders (NAME/1/saved_model.pb).")
    return versions


class Servable:
    """A loaded SavedModel version that runs its signatures on NumPy inputs.

    Args:
        path: str or Path. The SavedModel folder.
        name: str. The model name clients use in `/v1/models/NAME`.
        version: int. Its version number.

    Example:

    >>> servable = Servable("runs/fashion/saved_model", "fashion")
    >>> servable.run("serving_default", {"image_bytes": np.array([png_bytes], object)})
    {'label': array([b'shirt'], dtype=object), 'probabilities': array([[...]])}
    """

    def __init__(self, path, name, version=1):
        self.path, self.name, self.version = Path(path), name, version
        self._loaded = export.load_serving_model(self.path)
        self._functions = dict(self._loaded.signatures)
        proto = saved_model_pb2.SavedModel()
        proto.ParseFromString((self.path / "saved_model.pb").read_bytes())
        self.signature_defs = {
            key: value for key, value in proto.meta_graphs[0].signature_def.items()
            if key != "__saved_model_init_op"}

    def signature(self, name):
        """The signature's function; `name` "" or None is serving_default."""
        name = name or DEFAULT_SIGNATURE
        if name not in self._functions:
            raise ServingError(
                f'Serving signature name: "{name}" not found in signature def', status=404)
        return self._functions[name]

    def input_specs(self, name):
        """{input name: tf.TensorSpec} of a signature."""
        return dict(self.signature(name).structured_input_signature[1])

    def output_specs(self, name):
        """{output name: tf.TensorSpec} of a signature."""
        return dict(self.signature(name).structured_outputs)

    def batchable(self, name):
        """Whether rows of separate requests can share one call and be split back exactly.

        Only when every output has a known shape past the batch axis: a
        token model pads its outputs to the longest sentence in the call,
        so a request's answer would depend on the requests beside it.
        """
        return all(spec.shape.rank and spec.shape[1:].is_fully_defined()
                   for spec in self.output_specs(name).values())

    def run(self, name, inputs):
        """Runs a signature on {input name: NumPy array}; returns {output name: array}.

        Raises:
            ServingError: the model refused the inputs (say, bytes that are
                not an image), status 400.
        """
        function = self.signature(name)
        specs = self.input_specs(name)
        try:
            outputs = function(**{key: tf.constant(value, specs[key].dtype)
                                  for key, value in inputs.items()})
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            raise ServingError(error_text(error)) from error
        return {key: value.numpy() for key, value in outputs.items()}

    def status(self):
        """The body of `GET /v1/models/NAME`, as TF Serving writes it."""
        return {"model_version_status": [{
            "version": str(self.version), "state": "AVAILABLE",
            "status": {"error_code": "OK", "error_message": ""}}]}

    def metadata(self):
        """The body of `GET /v1/models/NAME/metadata`: the signature_def map, as TF Serving nests it."""
        signature_defs = {
            key: json_format.MessageToDict(value, preserving_proto_field_name=True,
                                           always_print_fields_with_no_presence=True)
            for key, value in self.signature_defs.items()}
        return {
            "model_spec": {"name": self.name, "signature_name": "",
                           "version": str(self.version)},
            "metadata": {"signature_def": {"signature_def": signature_defs}},
        }


def rows_of(arrays):
    """The batch size of {name: array}, or a ServingError if the inputs disagree."""
    sizes = {key: int(np.shape(value)[0]) if np.ndim(value) else None
             for key, value in arrays.items()}
    if None in sizes.values() or len(set(sizes.values())) != 1:
        raise ServingError(
            "Every input must have the same size in its first (batch) dimension; got "
            + ", ".join(f"{key}: {size}" for key, size in sizes.items()))
    return next(iter(sizes.values()))


def error_text(error):
    """The line of a TensorFlow error that says what was wrong, without graph noise.

    Example:

    >>> error_text(tf.errors.InvalidArgumentError(None, None, "Graph execution error:\n\n"
    ...            "Detected at node DecodeImage\nUnknown image file format."))
    'Unknown image file format.'
    """
    message = getattr(error, "message", None) or str(error)
    for line in message.splitlines():
        line = line.strip()
        if line and not line.startswith(("Graph execution error", "Detected at node", "[[",
                                         "File ", "Node:", "<stack traces")):
            return re.sub(r"^\{\{function_node [^}]*\}\}\s*|\s*\[Op:.*$", "", line)
    return message.strip() or type(error).__name__
