"""The Python API: `fine_tune` a model, `load_run` a finished one, use its `Run`.

Options are the command line's flags spelt with underscores
(`fine_tune_epochs=0` is `--fine-tune-epochs 0`) and are checked by the
same click parameters, so a bad value gets the message the CLI gives.
The Examples run as tests (tests/test_api.py) on tiny data: `photos` is a
folder of red, green and blue images, `tiny` a short training plan.
"""

import contextlib
import io
import json
import shutil
from pathlib import Path

import click
import numpy as np

from tfx_transfer import progress
from tfx_transfer.config_files import load_config

# Parameters of the train command that are not options of a run.
_NOT_OPTIONS = ("config_path", "resume_dir", "quiet", "verbose")


def fine_tune(data=None, task=None, config=None, verbose=True, **options):
    """Fine-tunes a pretrained backbone on labelled data; returns the finished `Run`.

    Args:
        data: str or None. A folder or file in the task's format, or
            `"tfds:NAME[/CONFIG][:VERSION]"`; None uses the bundled demo.
        task: str or None. "images", "text" or "tokens"; None keeps the
            config's (images by default).
        config: RunConfig, str or None. A config, or a YAML/JSON file, that
            the options then override.
        verbose: bool or int. True prints the plan, one line per epoch,
            progress bars and the report; 2 adds the seconds of each step;
            False prints nothing (the report is `Run.report`).
        **options: the `train` command's flags, with underscores:
            `backbone`, `epochs`, `fine_tune_epochs`, `batch_size`,
            `image_size`, `output_dir`, ... (`python -m tfx_transfer train -h`).

    Returns:
        A `Run`.

    Example:

    >>> run = fine_tune(photos, task="images", **tiny)
    >>> sorted(run.class_names)
    ['blue', 'green', 'red']
    >>> run.metrics["accuracy"] > 0.5
    True
    >>> fine_tune(photos, epochs=-1)
    Traceback (most recent call last):
    ...
    ValueError: Invalid value for 'epochs' (--epochs): -1 is not in the range x>=0.
    """
    config = run_config(data=data, task=task, config=config, **options)
    from tfx_transfer.train import pipeline

    if verbose:
        return Run(pipeline.run(config, verbose=2 if verbose == 2 else 1).run_dir)
    with contextlib.redirect_stdout(io.StringIO()):
        return Run(pipeline.run(config, verbose=0).run_dir)


def run_config(data=None, task=None, config=None, **options):
    """The resolved `RunConfig` that `fine_tune` would train, checked as the CLI checks flags.

    Example:

    >>> run_config(photos, task="images", batch_size=8).data.batch_size
    8
    >>> run_config(photos, bogus=1)
    Traceback (most recent call last):
    ...
    TypeError: Unknown option(s) bogus. Options are the train command's flags ...
    """
    from tfx_transfer import cli  # The flags are defined once, on the train command.

    params = {p.name: p for p in cli.train_command.params
              if p.name not in _NOT_OPTIONS and p.expose_value}
    unknown = sorted(set(options) - set(params))
    if unknown:
        raise TypeError(f"Unknown option(s) {', '.join(unknown)}. Options are the train "
                        f"command's flags with underscores: {', '.join(sorted(params))}.")
    ctx = click.Context(cli.train_command)
    flags = {}
    for name, value in dict(options, data=data, task=task).items():
        if value is None:
            continue
        param = params[name]
        try:
            flags[name] = param.type_cast_value(ctx, str(value) if name == "data" else value)
        except click.BadParameter as error:
            flag = param.opts[0]
            raise ValueError(error.format_message().replace(
                f"'{flag}'", f"'{name}' ({flag})")) from error
    return cli.config_from_flags(config, flags)


def load_run(path):
    """Returns the `Run` of a finished run directory.

    Example:

    >>> load_run(run.run_dir).metrics == run.metrics
    True
    """
    return Run(path)


class Run:
    """A finished run: its metrics and report, and what a user does with its model next.

    Args:
        run_dir: str or Path. The run directory (it holds `metrics.json`).

    Example:

    >>> run.report.startswith("tfx_transfer images run")
    True
    >>> run.predict([photos / "red" / "000.png"], top_k=1)[0]["top_k"][0]["label"]
    'red'
    """

    def __init__(self, run_dir):
        self.run_dir = Path(run_dir)
        if not (self.run_dir / "metrics.json").is_file():
            raise FileNotFoundError(f"{self.run_dir} is not a finished run: it holds no "
                                    "metrics.json (resume it with --resume, or fine_tune).")
        self.config = load_config(self.run_dir / "config.yaml")
        self.metrics = json.loads((self.run_dir / "metrics.json").read_text())
        self.report = (self.run_dir / "report.txt").read_text()
        self.class_names = (self.run_dir / "labels.txt").read_text().splitlines()
        self._predictor = None

    def __repr__(self):
        score = self.metrics.get("accuracy", self.metrics.get("entity_f1"))
        return f"Run({str(self.run_dir)!r}, task={self.config.task!r}, test score={score})"

    @property
    def saved_model(self):
        """Path of the exported SavedModel (raw bytes or strings in)."""
        return self.run_dir / "saved_model"

    def predict(self, inputs, top_k=3):
        """Classifies (or tags) inputs with the exported model.

        Args:
            inputs: list of image paths, encoded image bytes or uint8
                arrays `[H, W, 3]` for an image run; of strings otherwise.
            top_k: int. Labels per input.

        Returns:
            A list of dicts, one per input, as `predict --json` prints them:
            `{"input", "top_k": [{"label", "probability"}]}`, or for tokens
            `{"input", "entities": [...]}`, or `{"input", "error"}`.
        """
        from tfx_transfer import predict

        if self._predictor is None:
            self._predictor = predict.Predictor(self.run_dir)
        predictor = self._predictor
        if isinstance(inputs, (str, bytes, Path, np.ndarray)):
            inputs = [inputs]
        if not predictor.takes_images:
            return list(predictor.run_all([str(text) for text in inputs], top_k))
        results = []
        for index, item in enumerate(inputs):
            name = str(item) if isinstance(item, (str, Path)) else f"input {index}"
            try:
                encoded = _encoded(item)
                probabilities = predictor.predict([encoded])[0]
                results.append({"input": name, "top_k": predictor._top(probabilities, top_k)})
            except (OSError, ValueError) as error:
                results.append({"input": name, "error": str(error)})
        return results

    def evaluate(self, data, skip_unknown_labels=False, verbose=True):
        """Scores the exported model on new labelled data; writes `evaluations/<time>/`.

        Args:
            data: str. A folder or file in the run's task format.
            skip_unknown_labels: bool. Leave out (and count) examples whose
                label the model does not know, instead of refusing them.
            verbose: bool. Show the decode check's and the scoring's bars.

        Returns:
            An Evaluation with `.metrics`, `.report` and `.directory`.

        Example:

        >>> run.evaluate(photos, verbose=False).metrics["num_examples"]
        36
        """
        from tfx_transfer.evaluate import new_data

        with progress.verbosity(progress.NORMAL if verbose else progress.QUIET):
            return new_data.evaluate_run(self.run_dir, data, skip_unknown_labels)

    def export(self, path, format="savedmodel", name="model", version=1, quantize="all"):
        """Exports the model for serving or for a phone.

        Args:
            path: str or Path. For "savedmodel", TF Serving's model root:
                the model goes to `path/name/version/`. For "tflite", the
                folder the `.tflite` files, labels.txt and
                export_report.json are copied to.
            format: str. "savedmodel" or "tflite" (image runs only).
            name: str. The model name in TF Serving's layout.
            version: int. The version folder.
            quantize: str. TFLite: "all", "float32", "dynamic" or "int8".

        Returns:
            The Path written.

        Example:

        >>> (run.export(tmp / "serving") / "saved_model.pb").is_file()
        True
        """
        from tfx_transfer import export

        if format == "savedmodel":
            return export.write_serving_layout(self.run_dir, path, name, version)
        if format != "tflite":
            raise ValueError(f"format must be 'savedmodel' or 'tflite'. Received: {format!r}")
        from tfx_transfer import tflite

        tflite.export_run(self.run_dir, tflite.VARIANTS if quantize == "all" else (quantize,))
        target = Path(path)
        shutil.copytree(self.run_dir / tflite.TFLITE_DIR, target, dirs_exist_ok=True)
        return target

    def serve(self, port=8501, name="model", **options):
        """Starts TF Serving's REST API for the model in a background thread.

        Returns:
            The started `tfx_transfer.serve.ModelServer`; `.url` is its
            address and `.close()` stops it.

        Example:

        >>> import urllib.request
        >>> server = run.serve(port=0)
        >>> json.load(urllib.request.urlopen(server.url + "/v1/models/model"))[
        ...     "model_version_status"][0]["state"]
        'AVAILABLE'
        >>> server.close()
        """
        from tfx_transfer.serve import ModelServer

        return ModelServer(self.run_dir, name=name, port=port, **options).start()

    def test_split(self):
        """The run's test examples, read again as the run read them.

        Returns:
            A pair (examples, labels): image paths, texts or sentences (a
            sentence as its words joined by spaces), and their class names
            (for tokens, each sentence's tags).

        Example:

        >>> examples, labels = run.test_split()
        >>> len(examples) == len(labels) == run.metrics["num_examples"]
        True
        """
        from tfx_transfer import few_shot
        from tfx_transfer.tasks import get_task

        with progress.verbosity(progress.QUIET):
            data = few_shot.read_data(get_task(self.config.task), self.config)
        split = data.splits["test"]
        if self.config.task == "tokens":
            return ([" ".join(s.words) for s in split], [list(s.tags) for s in split])
        return list(split.items), [data.class_names[label] for label in split.labels]

    def plot(self):
        """Shows the run's figures (curves, confusion matrix) inline; returns their paths."""
        paths = [p for p in (self.run_dir / "training_curves.png",
                             self.run_dir / "confusion_matrix.png") if p.is_file()]
        try:
            from IPython import get_ipython
            from IPython.display import Image, display

            if get_ipython() is not None:
                for path in paths:
                    display(Image(filename=str(path)))
        except ImportError:
            pass
        return paths


def _encoded(item):
    """Encoded image bytes from a path, bytes, or a uint8 pixel array (PNG-encoded)."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, (str, Path)):
        path = Path(item)
        if not path.is_file():
            raise ValueError("no such image file")
        return path.read_bytes()
    from PIL import Image

    pixels = np.asarray(item)
    if pixels.dtype != np.uint8 or pixels.ndim not in (2, 3):
        raise ValueError(f"an image array must be uint8 [H, W] or [H, W, C]; got "
                         f"{pixels.dtype} {pixels.shape}")
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()
