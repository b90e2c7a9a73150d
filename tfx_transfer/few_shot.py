"""Few-shot mode: what a run changes when it has a handful of labelled examples a class.

Below the task's `few_shot_below` training examples a class on average
(`tfx_transfer.tasks.defaults`; counting the validation split the run
would carve), or when asked (`--few-shot`):

- no validation split is carved; its examples train too. Four held-out
  posts score a model to within +-0.5, and they are a sixth of the data;
- the task's few-shot plan replaces its default one (text: SetFit's
  contrastive stage, `tfx_transfer.contrastive`, then the L-BFGS head;
  images: the L-BFGS head on augmented views of each image);
- the head's L2 strength is chosen by k-fold cross-validation over the
  training examples (`tfx_transfer.probe`), and the report gives that
  score and its spread over the folds beside the test score;
- a batch larger than the training set is cut to it.

The decision is written to `config.yaml` (`few_shot: true`, the plan), so
a resumed run makes the same one, and to `data_report.json`,
`metrics.json` and `report.txt` ("few_shot").
"""

import dataclasses

from tfx_transfer.data.splits import Split, SplitTooSmall, sorted_split


@dataclasses.dataclass(frozen=True)
class Decision:
    """Whether a run is in few-shot mode, and why.

    Args:
        on: bool.
        per_class: float. Training examples a class (with the validation
            split the run would carve).
        reason: str. One sentence for the log and the report.
        threshold: int. The task's `few_shot_below`.
    """

    on: bool
    per_class: float
    reason: str
    threshold: int

    def report(self):
        """The JSON-able entry of `data_report.json` and `metrics.json`."""
        return {"on": self.on, "per_class": round(self.per_class, 2),
                "threshold": self.threshold, "reason": self.reason}


def read_data(task, config):
    """`task.read_data`, without the validation split when it cannot be carved and the mode applies.

    With 4 images of each of 10 classes a 15% validation split cannot hold
    every class, and reading fails before the mode could say that it
    carves none; this reads the data again without it when few-shot mode
    takes the run so read (`decide`). Otherwise the error stands.

    Args:
        task: `tfx_transfer.tasks.Task`.
        config: `tfx_transfer.config.RunConfig`, resolved.

    Returns:
        The task's data, as `task.read_data` returns it.
    """
    try:
        return task.read_data(config.data)
    except SplitTooSmall as error:
        if error.carving != "val" or task.defaults.few_shot_stages is None:
            raise
        data = task.read_data(config.data, val_fraction=0.0)
        if not decide(config, data, task.defaults).on:
            raise
        return data


def decide(config, data, defaults):
    """Whether few-shot mode takes the run, and why; `apply` acts on it.

    Args:
        config: `tfx_transfer.config.RunConfig`, resolved. Its `few_shot`:
            True forces the mode, False turns it off, None decides by
            `defaults.few_shot_below`.
        data: the task's data (`LabelledData`), as read.
        defaults: the task's `TaskDefaults`, for its plans.

    Returns:
        A `Decision`.

    Raises:
        ValueError: `few_shot=True` for a task without the mode (tokens).

    Example:

    >>> decide(config, data, DEFAULTS["text"]).reason
    'Few-shot mode: 8.0 training examples a class (below 100) ...'
    """
    carved = _val_carved(data)
    count = len(data.splits["train"]) + (len(data.splits["val"]) if carved else 0)
    per_class = count / data.num_classes
    threshold = defaults.few_shot_below
    plan = defaults.few_shot_stages
    if plan is None and config.few_shot:
        raise ValueError(f"Task {config.task!r} has no few-shot mode; leave --few-shot out.")
    if plan is None or (config.few_shot is None and per_class >= threshold):
        return Decision(False, per_class, "", threshold)
    if config.few_shot is False or (config.few_shot is None and config.stages != defaults.stages):
        why = ("off (--no-few-shot)" if config.few_shot is False else
               "not applied: the stage plan was given (--few-shot applies its own)")
        return Decision(
            False, per_class, f"Few-shot mode {why}; {per_class:.1f} training examples a class.",
            threshold)
    why = (f"below {threshold}" if per_class < threshold else "asked for with --few-shot")
    validation = ("no validation split: its examples train too, and the head's L2 strength is "
                  "chosen by cross-validation over the training examples" if carved else
                  "the given validation split chooses the head's L2 strength")
    reason = (f"Few-shot mode: {per_class:.1f} training examples a class ({why}); "
              f"{validation}; plan: {' then '.join(s.name for s in _plan(config, plan))}. "
              "--no-few-shot turns it off.")
    return Decision(True, per_class, reason, threshold)


def apply(config, data, defaults, unfreeze_groups):
    """Decides few-shot mode (`decide`); returns the run's config and data as the mode has them.

    Args:
        config: `tfx_transfer.config.RunConfig`, resolved.
        data: the task's data (`LabelledData`), as read.
        defaults: the task's `TaskDefaults`, for its plans.
        unfreeze_groups: the backbone's blocks; a plan asks for no more.

    Returns:
        A tuple (config, data, `Decision`). In the mode, config has
        `few_shot=True` and the few-shot plan, and data no carved
        validation split.

    Example:

    >>> config, data, decision = apply(config, data, DEFAULTS["text"], groups)
    >>> decision.on
    True
    """
    decision = decide(config, data, defaults)
    if not decision.on:
        return config, data, decision
    stages = tuple(dataclasses.replace(s, unfreeze=min(s.unfreeze, len(unfreeze_groups)))
                   for s in _plan(config, defaults.few_shot_stages))
    if _val_carved(data):
        train, val = data.splits["train"], data.splits["val"]
        merged = sorted_split(list(train.items) + list(val.items),
                              list(train.labels) + list(val.labels))
        data = dataclasses.replace(
            data, splits={**data.splits, "train": merged, "val": Split()},
            carved_splits=tuple(name for name in data.carved_splits if name != "val"))
    batch_size = min(config.data.batch_size, len(data.splits["train"]))
    config = dataclasses.replace(config, few_shot=True, stages=stages,
                                 data=dataclasses.replace(config.data, batch_size=batch_size))
    return config, data, decision


def _val_carved(data):
    """Whether the validation split was drawn from the training data (or none was made).

    Not read from a file the user gave: empty when `read_data` could not carve one.
    """
    return ("val" in data.carved_splits or data.split_source == "seeded split"
            or not len(data.splits["val"]))


def _plan(config, plan):
    """The mode's plan: the task's, unless the config's own has a contrastive stage."""
    return config.stages if any(s.loss == "contrastive" for s in config.stages) else plan
