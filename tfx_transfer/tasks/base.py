"""The `Task` every task subclasses, and the registry that finds them by name.

A task is the part of a run that depends on what is being learned: how to
get a backbone, read the data, turn it into `tf.data` pipelines, put a head
on the backbone, score the test split and serve raw inputs. `train.run`
calls these steps in order and nothing else; the stage loop, the feature
cache, the report files and the export are the same for every task.

A subclass that lacks a step fails when it is registered
(`register_task`), not after the data is read.
"""

import abc
import dataclasses
import inspect

from tfx_transfer import evaluate
from tfx_transfer.data.fingerprint import data_fingerprint

TASKS = {}


@dataclasses.dataclass(frozen=True)
class Datasets:
    """A task's train, val and test pipelines, and what making them changed.

    Args:
        train: tf.data.Dataset. Shuffled (and, for images, augmented).
        val: tf.data.Dataset. In a fixed order.
        test: tf.data.Dataset. In a fixed order.
        report: dict. What the pipelines cut or dropped (say, truncated
            wordpieces), merged into the run's `data_report.json`.
    """

    train: object
    val: object
    test: object
    report: dict = dataclasses.field(default_factory=dict)


class Task(abc.ABC):
    """One kind of model: its defaults and the steps a run takes for it.

    Class attributes:
        name: str. What `--task` and `RunConfig.task` call it.
        defaults: `tfx_transfer.tasks.defaults.TaskDefaults`. From
            `tfx_transfer.tasks.defaults`, which `--help` also reads.
        augments: bool. Whether the training stream is randomly augmented
            (then the feature cache stores several views).
        serving_input: str. The SavedModel signature's input name.

    Example:

    >>> task = get_task("images")
    >>> backbone = task.prepare_backbone(config)
    >>> data = task.read_data(config.data)
    >>> datasets = task.make_datasets(data, config, backbone)
    >>> classifier = task.build_classifier(backbone, data.num_classes, config.model)
    """

    name = None
    defaults = None
    augments = False
    serving_input = None

    @abc.abstractmethod
    def prepare_backbone(self, config):
        """Resolves the backbone and its weights; runs before any data is read.

        Returns:
            A backbone description with `unfreeze_groups` and
            `describe(weights)` (`ImageBackbone`, `TextBackbone`).
        """

    @abc.abstractmethod
    def read_data(self, data_config, val_fraction=None):
        """Reads, checks and splits the examples; `path=None` reads the bundled demo.

        Args:
            data_config: `tfx_transfer.config.DataConfig`.
            val_fraction: float or None. Overrides the config's; 0 carves
                no validation split (`tfx_transfer.few_shot.read_data`).

        Returns:
            Data with `class_names`, `num_classes`, `splits` and `report()`.
        """

    @abc.abstractmethod
    def make_datasets(self, data, config, backbone):
        """Returns the `Datasets` the stages train and the report scores on."""

    @abc.abstractmethod
    def feature_key(self, data, config, backbone):
        """Returns a JSON-able description of what the features depend on outside the model.

        The key of the on-disk feature cache, with the backbone's weights
        fingerprint added when the features are computed.
        """

    @abc.abstractmethod
    def build_classifier(self, backbone, num_classes, model_config):
        """Puts a new head on the frozen backbone; returns a `Classifier`."""

    @abc.abstractmethod
    def baseline(self, data, config, backbone):
        """Trains the cheap model the report compares against, on the same split.

        Returns:
            A `tfx_transfer.evaluate.baselines.Baseline` with its test
            predictions, or None when there is none.
        """

    @abc.abstractmethod
    def evaluate(self, classifier, test_data, data, run_dir, baseline=None):
        """Scores the test split, and the baseline beside it.

        Returns:
            A tuple (metrics dict for `metrics.json`, report body text).
        """

    @abc.abstractmethod
    def serving_fn(self, classifier, class_names):
        """Returns the `serving_default` `tf.function`: raw bytes or strings in."""

    @abc.abstractmethod
    def objective(self, config, data):
        """Returns the `tfx_transfer.stages.Objective`: loss, metrics, class weights."""

    def export_objects(self, classifier):
        """Layers besides the model that the serving function uses (a tokenizer)."""
        return () if classifier.preprocessor is None else (classifier.preprocessor,)

    def write_report(self, classifier, test_data, data, stage_results, data_report,
                     run_dir, header, baseline=None):
        """Scores the test split and writes `metrics.json`, `report.txt` and the plots.

        Returns:
            A tuple (metrics dict, report text).
        """
        metrics, body = self.evaluate(classifier, test_data, data, run_dir, baseline)
        # What the data cost, next to the scores: nothing skipped or converted goes unseen.
        metrics["data"] = {key: data_report[key] for key in (
            "totals", "num_skipped", "num_converted", "converted") if key in data_report}
        if "few_shot" in data_report:
            metrics["few_shot"] = data_report["few_shot"]
        report = evaluate.format_report(header, data_report, stage_results, body)
        return evaluate.write_files(run_dir, metrics, report, stage_results), report

    def data_key(self, data, config, files=False):
        """Returns what the features depend on besides the preprocessing.

        Args:
            data: the task's data.
            config: `tfx_transfer.config.RunConfig`, resolved.
            files: bool. The examples are file paths, whose bytes are hashed.

        Returns:
            A JSON-able dict: task, class names, digests of the train and
            val splits (`data_fingerprint`), batch size and seed.
        """
        return {
            "task": self.name,
            "class_names": list(data.class_names),
            **{name: data_fingerprint(data.splits[name], files) for name in ("train", "val")},
            "batch_size": config.data.batch_size,
            "seed": config.data.seed,
        }


def register_task(cls):
    """Registers a `Task` subclass under its `name`; a class decorator.

    Raises:
        TypeError: the class lacks a step (an abstract method), a name,
            defaults or a serving input name, or its name is taken.

    Example:

    >>> @register_task
    ... class ImagesTask(ClassificationTask):
    ...     name = "images"
    """
    if not inspect.isclass(cls) or not issubclass(cls, Task):
        raise TypeError(f"Only Task subclasses can be registered. Received: {cls!r}")
    missing = sorted(cls.__abstractmethods__)
    if missing:
        raise TypeError(
            f"Task {cls.__name__} cannot be registered: it lacks the step(s) {missing}."
        )
    for attribute in ("name", "defaults", "serving_input"):
        if getattr(cls, attribute) is None:
            raise TypeError(f"Task {cls.__name__} cannot be registered: it sets no `{attribute}`.")
    if cls.name in TASKS:
        raise TypeError(f"A task named {cls.name!r} is already registered.")
    TASKS[cls.name] = cls()
    return cls
