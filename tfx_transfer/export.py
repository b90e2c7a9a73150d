"""Export: a SavedModel for TF Serving, the `.keras` model and the labels.

Every export is written into a temporary sibling folder and renamed into
place, so a reader (or TF Serving watching the folder) never sees a
half-written model.
"""

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

import keras
import tensorflow as tf

from tfx_transfer.progress import bar

SAVED_MODEL_DIR = "saved_model"
KERAS_FILE = "model.keras"
LABELS_FILE = "labels.txt"


@contextlib.contextmanager
def atomic_path(final_path):
    """Yields a temporary path next to `final_path`, renamed there on success.

    If the body raises, the temporary file or folder is removed and any
    existing `final_path` is left untouched.

    Args:
        final_path: str or Path. Where the file or folder should end up.

    Example:

    >>> with atomic_path("out/saved_model") as tmp:
    ...     tf.saved_model.save(module, str(tmp))
    """
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{final_path.name}.", dir=final_path.parent))
    tmp = staging / final_path.name
    try:
        yield tmp
        if final_path.exists():
            # A folder cannot be renamed over a non-empty one: move the old
            # export aside first, then drop it once the new one is in place.
            old = staging / "previous"
            os.replace(final_path, old)
        os.replace(tmp, final_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def export_saved_model(model, serving_fn, path, track=()):
    """Writes a SavedModel whose `serving_default` is `serving_fn`.

    Args:
        model: keras.Model. Tracked so its variables are saved.
        serving_fn: tf.function with an input signature; returns a dict.
        path: str or Path. Destination folder, replaced atomically.
        track: sequence of Keras layers the serving function also uses
            (a text preprocessor and its vocabulary).

    Returns:
        The destination as a Path.
    """
    archive = keras.export.ExportArchive()
    for layer in (model, *track):
        archive.track(layer)
    archive.add_endpoint(name="serving_default", fn=serving_fn)
    with atomic_path(path) as tmp:
        archive.write_out(str(tmp), verbose=False)
    return Path(path)


def export_run(model, serving_fn, class_names, run_dir, track=()):
    """Writes the run's deployable artefacts.

    Args:
        model: keras.Model. The trained classifier.
        serving_fn: tf.function. From the task's `serving_fn`.
        class_names: sequence of str.
        run_dir: str or Path.
        track: sequence of layers besides `model` that `serving_fn` uses.

    Returns:
        The SavedModel folder as a Path.
    """
    run_dir = Path(run_dir)
    parts = bar(3, f"Exporting {LABELS_FILE}, {KERAS_FILE} and {SAVED_MODEL_DIR}/ to {run_dir}:",
                unit_name="file")
    with atomic_path(run_dir / LABELS_FILE) as tmp:
        tmp.write_text("".join(f"{name}\n" for name in class_names))
    with atomic_path(run_dir / KERAS_FILE) as tmp:
        model.save(tmp)
    if parts is not None:
        parts.update(2)
    saved = export_saved_model(model, serving_fn, run_dir / SAVED_MODEL_DIR, track)
    if parts is not None:
        parts.update(3)
    return saved


def _model_dir(path):
    path = Path(path)
    return path.parent if path.name == SAVED_MODEL_DIR else path


def read_labels(path):
    """Returns the class names of an export (a run directory or its SavedModel)."""
    labels = _model_dir(path) / LABELS_FILE
    if not labels.is_file():
        raise FileNotFoundError(f"No {LABELS_FILE} next to the model in {_model_dir(path)}.")
    return labels.read_text().splitlines()


def load_serving_model(path):
    """Loads an exported SavedModel, as TF Serving would.

    Args:
        path: str or Path. A run directory or its `saved_model/` folder.

    Returns:
        The loaded object; call `.signatures["serving_default"]` on it. Keep
        the object alive while using the signature (it owns the variables).
    """
    path = Path(path)
    if (path / SAVED_MODEL_DIR).is_dir():
        path = path / SAVED_MODEL_DIR
    if not (path / "saved_model.pb").is_file():
        raise FileNotFoundError(
            f"No SavedModel in {path}: expected a run directory holding "
            f"{SAVED_MODEL_DIR}/ or a SavedModel folder."
        )
    # Text models' graphs hold tensorflow-text ops (the tokenizer); loading
    # registers them.
    import tensorflow_text  # noqa: F401

    return tf.saved_model.load(str(path))


def write_serving_layout(run_dir, base_path, name, version=1):
    """Copies a run's SavedModel into TF Serving's layout, `base_path/name/version/`.

    Args:
        run_dir: str or Path. A run directory (or a SavedModel folder).
        base_path: str or Path. TF Serving's model root (`--model_base_path`'s parent).
        name: str. The model name.
        version: int. The version folder; an existing one is refused, since
            TF Serving may be serving it.

    Returns:
        The Path of the version folder, written atomically.
    """
    source = Path(run_dir)
    source = source / SAVED_MODEL_DIR if (source / SAVED_MODEL_DIR).is_dir() else source
    if not (source / "saved_model.pb").is_file():
        raise FileNotFoundError(f"No SavedModel in {run_dir}.")
    target = Path(base_path) / name / str(version)
    if target.exists():
        raise FileExistsError(f"{target} exists; TF Serving may be serving it. Give another "
                              "--version.")
    with atomic_path(target) as tmp:
        shutil.copytree(source, tmp)
    return target
