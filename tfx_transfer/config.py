"""Run configuration: one frozen dataclass per concern, read from YAML/JSON.

A run is described completely by a `RunConfig`. It is built from defaults,
then a YAML or JSON file (`tfx_transfer.config_files`), then command-line overrides (`tfx_transfer.cli`),
and written back as the run directory's `config.yaml`, so a run can be
repeated or resumed from that file alone. Fields a task decides (backbone,
fractions, sequence length, the stage plan) stay None until `resolved`
fills them from that task's defaults (`tfx_transfer.tasks.defaults`).
Config objects are never mutated; derived configs are new objects.
"""

import dataclasses

from tfx_transfer.config_types import check_fields, check_fractions  # noqa: F401

# `RunConfig.mixed_precision` values; `tfx_transfer.precision` maps them to policies.
MIXED_PRECISION = ("off", "float16", "bfloat16")
# `StageConfig.optimizer` values; `tfx_transfer.stages` builds them.
OPTIMIZERS = ("adam", "adamw", "lbfgs")
# `StageConfig.loss` values: the task's loss on labels, or SetFit's pairs.
STAGE_LOSSES = ("labels", "contrastive")
# `RunConfig.strategy` values; `tfx_transfer.distribute` creates them.
STRATEGIES = ("auto", "default", "mirrored", "multiworker", "tpu")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """Where the examples come from and how they are split and batched.

    Args:
        path: str or None. Folder of images (one sub-folder per class, or
            `train/ val/ test/` folders), a text or CoNLL file, or a
            tensorflow-datasets dataset, `"tfds:NAME[/CONFIG][:VERSION]"`.
            None uses the bundled demo data.
        image_size: int or None. Square input size; None takes the
            backbone's own (224 for the ImageNet backbones).
        val_fraction: float or None. Share of the examples held out for
            validation when no validation split is given; None takes the
            task's default (0.15, or 0.1 for tokens).
        test_fraction: float or None. Share held out for the final test
            report when no test split is given; None as above.
        seed: int. Seed for the split, shuffling and augmentation.
        batch_size: int. Examples per training step.
        class_weights: bool. Weight the loss by inverse class frequency
            when the classes are imbalanced.
        text_column: str. Text tasks: the column (CSV/TSV) or key (JSONL)
            holding the text.
        label_column: str. Text tasks: the column or key holding the label.
        sequence_length: int or None. Text tasks: wordpieces per example;
            longer texts are truncated, longer sentences (tokens task) cut
            into chunks. None takes the task's default (128 text, 64 tokens).
        skip_bad_rows: bool. Text tasks: skip rows with an empty text or
            label, bad JSON or undecodable bytes, counting them in the data
            report, instead of stopping with an error.
        val_path: str or None. Text tasks: a separate validation file.
        test_path: str or None. Text tasks: a separate test file.
        encoding: str. Text tasks: the encoding of the data files, or
            several separated by commas, tried in order (e.g. "utf-8,cp1252").
        tfds_data_dir: str or None. Where `path="tfds:NAME"` datasets are
            prepared; None is TFDS's default (`$TFDS_DATA_DIR` or
            ~/tensorflow_datasets).
        input_key: str or None. TFDS datasets: the feature holding the
            image, text or words; None infers it from the features.
        label_key: str or None. TFDS datasets: the ClassLabel feature (a
            Sequence of them for tokens); None infers it.
    """

    path: str | None = None
    image_size: int | None = None
    val_fraction: float | None = None
    test_fraction: float | None = None
    seed: int = 42
    batch_size: int = 32
    class_weights: bool = True
    text_column: str = "text"
    label_column: str = "label"
    sequence_length: int | None = None
    skip_bad_rows: bool = False
    val_path: str | None = None
    test_path: str | None = None
    encoding: str = "utf-8"
    tfds_data_dir: str | None = None
    input_key: str | None = None
    label_key: str | None = None

    def __post_init__(self):
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)  # None: the task's default (`RunConfig.resolved`).
            if value is not None and not 0 < value < 1:
                raise ValueError(f"`data.{name}` must be in (0, 1). Received: {name}={value}")
        if None not in (self.val_fraction, self.test_fraction):
            check_fractions(self.val_fraction, self.test_fraction, prefix="data.")
        for failed, message in (
            (self.batch_size < 1, f"`data.batch_size` must be >= 1. Received: "
                                  f"batch_size={self.batch_size}"),
            (self.image_size is not None and self.image_size < 32,
             f"`data.image_size` must be >= 32. Received: image_size={self.image_size}"),
            (self.sequence_length is not None and self.sequence_length < 8,
             f"`data.sequence_length` must be >= 8. Received: "
             f"sequence_length={self.sequence_length}"),
        ):
            if failed:
                raise ValueError(message)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Random augmentation applied to the training stream only.

    Args:
        enabled: bool. Master switch; False turns every augmentation off.
        flip: bool. Random horizontal flips.
        rotation: float. Largest rotation, as a fraction of a full turn.
        zoom: float. Largest zoom in or out, as a fraction of the size.
        contrast: float. Largest contrast change, as a fraction.
    """

    enabled: bool = True
    flip: bool = True
    rotation: float = 0.05
    zoom: float = 0.1
    contrast: float = 0.1


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Which backbone, which weights, and the shape of the new head.

    Args:
        backbone: str or None. A name from the task's backbone registry;
            None takes the task's default (efficientnet_lite0 for images,
            minilm_l6 for text).
        weights: str or None. Images: "imagenet" (bundled for
            efficientnet_lite0, a Keras download for the others), a path to
            a weights file, or "none" for random initialisation. Text:
            "pretrained", or a path to a preset folder or model wheel.
            None takes the task's default.
        dropout: float. Dropout rate before the classification layer.
        hidden_units: int. Width of an optional hidden Dense layer in the
            head; 0 for none.
        l2: float. L2 penalty on the head's kernels.
        label_smoothing: float. Label smoothing of the cross-entropy loss.
    """

    backbone: str | None = None
    weights: str | None = None
    dropout: float = 0.2
    hidden_units: int = 0
    l2: float = 0.0
    label_smoothing: float = 0.0

    def __post_init__(self):
        for name in ("dropout", "label_smoothing"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ValueError(f"`model.{name}` must be in [0, 1). "
                                 f"Received: {name}={getattr(self, name)}")


@dataclasses.dataclass(frozen=True)
class StageConfig:
    """One stage of the fine-tuning plan.

    Args:
        name: str. Used for checkpoint and log file names.
        unfreeze: int. How many backbone blocks, counted from the top, are
            trainable; 0 trains the head only. BatchNorm layers stay frozen.
        learning_rate: float. Peak learning rate for this stage.
        epochs: int. Upper bound on epochs; early stopping may end sooner.
        patience: int. Epochs without a better validation accuracy before
            the stage stops and its best epoch is restored.
        optimizer: str. "adam" at a constant rate; "adamw" with a linear
            warm-up over `warmup_fraction` of the stage's steps, then cosine
            decay (the usual recipe for fine-tuning transformers); or, for
            a head-only stage on cached features, "lbfgs": the softmax head
            fitted to convergence with its L2 strength chosen on validation
            (`tfx_transfer.probe`; learning rate and epochs are unused).
        warmup_fraction: float. Share of the stage's steps spent warming up
            (adamw only).
        weight_decay: float. Decoupled weight decay (adamw only).
        loss: str. "labels", the task's loss on the labels; or, for text,
            "contrastive": SetFit's few-shot stage, which tunes the encoder
            (not the head) on pairs of training examples, pulling a class
            together (`tfx_transfer.contrastive`); `epochs` passes over
            the pairs.
        lora_rank: int. 0 trains the unfrozen blocks' weights; r > 0
            freezes them and trains rank-r adapters on the attention query
            and value projections (image backbones: the 1x1 convolutions)
            of those blocks, plus the head (`tfx_transfer.lora`).
        lora_alpha: float or None. The adapters' scale is
            `lora_alpha / lora_rank`; None means `lora_rank` (scale 1).
    """

    name: str
    unfreeze: int
    learning_rate: float
    epochs: int
    patience: int = 3
    optimizer: str = "adam"
    warmup_fraction: float = 0.1
    weight_decay: float = 0.01
    loss: str = "labels"
    lora_rank: int = 0
    lora_alpha: float | None = None

    def __post_init__(self):
        problems = (
            (self.lora_rank < 0, f"`lora_rank` must be >= 0. Received: {self.lora_rank}"),
            (self.lora_rank > 0 and (self.unfreeze == 0 or self.loss != "labels"),
             "LoRA adapts unfrozen blocks: it needs unfreeze > 0 and loss 'labels'. "
             f"Received: unfreeze={self.unfreeze}, loss={self.loss!r}"),
            (self.lora_alpha is not None and not self.lora_alpha > 0,
             f"`lora_alpha` must be > 0. Received: lora_alpha={self.lora_alpha}"),
            (self.loss not in STAGE_LOSSES,
             f"`loss` must be one of {STAGE_LOSSES}. Received: loss={self.loss!r}"),
            (self.loss == "contrastive" and (self.unfreeze == 0 or self.optimizer == "lbfgs"),
             "a contrastive stage tunes the encoder: it needs unfreeze > 0 and optimizer "
             f"adam or adamw. Received: unfreeze={self.unfreeze}, optimizer={self.optimizer!r}"),
            (self.optimizer not in OPTIMIZERS,
             f"`optimizer` must be one of {OPTIMIZERS}. Received: optimizer={self.optimizer!r}"),
            (self.optimizer == "lbfgs" and self.unfreeze,
             "optimizer 'lbfgs' fits a head on frozen features; it needs unfreeze=0. "
             f"Received: unfreeze={self.unfreeze}"),
            (self.unfreeze < 0, f"`unfreeze` must be >= 0. Received: unfreeze={self.unfreeze}"),
            (self.epochs < 0, f"`epochs` must be >= 0. Received: epochs={self.epochs}"),
            (self.patience < 0, f"`patience` must be >= 0. Received: patience={self.patience}"),
            (self.learning_rate <= 0,
             f"`learning_rate` must be > 0. Received: learning_rate={self.learning_rate}"),
        )
        for failed, message in problems:
            if failed:
                raise ValueError(f"Stage '{self.name}': {message}")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything one training run needs.

    Args:
        task: str. A registered task: "images", "text" or "tokens".
        output_dir: str. Parent folder of the run directories.
        run_name: str or None. Name of this run's folder; None makes one
            from the task, backbone and time.
        jit_compile: bool. XLA-compile the training step. Off by default:
            on CPU it runs depthwise convolutions many times slower.
        mixed_precision: str. "off", "float16" or "bfloat16": the Keras
            mixed-precision policy the model is built under
            (`tfx_transfer.precision`). Off by default: both are slower on
            a CPU without bfloat16 instructions; use them on GPUs/TPUs.
        cache_features: bool. Train head-only stages on backbone features
            computed once, instead of running the frozen backbone every
            epoch (`tfx_transfer.features`).
        feature_views: int. With augmentation on, how many augmented views
            of each training image are cached.
        feature_cache: bool. With `cache_features`, also keep the features
            on disk (`tfx_transfer.features.FeatureCache`, under
            `tfx_transfer.files.cache_dir()`), so a later run on the same
            data, weights and preprocessing loads them.
        feature_cache_max_gb: float. The feature cache's size bound; past
            it the least recently used entries are removed.
        refit_head: bool. When the kept stage is an "lbfgs" head, fit it
            once more on train + val features at the C validation chose.
        deterministic: bool. Seeded runs give identical weights: op
            determinism and sequential augmentation (slower).
        few_shot: bool or None. Few-shot mode (`tfx_transfer.few_shot`):
            no validation split, the task's few-shot plan, settings chosen
            by cross-validation. None turns it on below the task's
            `few_shot_below` training examples a class (text 100, images 16).
        keep_checkpoints: bool. Keep every stage's checkpoint and the
            epoch backups once the run has finished; by default only what
            resuming, evaluating and serving need is kept.
        strategy: str. The `tf.distribute` strategy, one of `STRATEGIES`
            (`tfx_transfer.distribute`); "auto" picks from the devices,
            TF_CONFIG and a TPU's environment.
        tpu: str or None. The TPU for "tpu": "local" on a TPU VM, or an
            address such as "grpc://10.0.0.2:8470".
        data: DataConfig.
        augment: AugmentConfig.
        model: ModelConfig.
        stages: tuple of StageConfig or None. Run in order; None takes the
            task's default plan.
    """

    task: str = "images"
    output_dir: str = "runs"
    run_name: str | None = None
    jit_compile: bool = False
    mixed_precision: str = "off"
    cache_features: bool = True
    feature_views: int = 3
    feature_cache: bool = True
    feature_cache_max_gb: float = 10.0
    refit_head: bool = True
    deterministic: bool = False
    keep_checkpoints: bool = False
    few_shot: bool | None = None
    strategy: str = "auto"
    tpu: str | None = None
    data: DataConfig = DataConfig()
    augment: AugmentConfig = AugmentConfig()
    model: ModelConfig = ModelConfig()
    stages: tuple[StageConfig, ...] | None = None

    def __post_init__(self):
        if not isinstance(self.task, str) or not self.task:
            raise ValueError(f"`task` must be a task name. Received: task={self.task!r}")
        for name, allowed in (("mixed_precision", MIXED_PRECISION), ("strategy", STRATEGIES)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"`{name}` must be one of {allowed}. "
                                 f"Received: {name}={getattr(self, name)!r}")
        if self.feature_views < 1:
            raise ValueError(
                f"`feature_views` must be >= 1. Received: feature_views={self.feature_views}"
            )
        if not self.feature_cache_max_gb > 0:
            raise ValueError("`feature_cache_max_gb` must be > 0. "
                             f"Received: feature_cache_max_gb={self.feature_cache_max_gb}")
        if self.stages is None:
            return
        if not self.stages:
            raise ValueError("`stages` must hold at least one stage.")
        names = [stage.name for stage in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"Stage names must be unique. Received: {names}")

    def resolved(self, defaults):
        """Returns this config with every field it leaves None taken from `defaults`.

        Args:
            defaults: `tfx_transfer.tasks.defaults.TaskDefaults`. The task's.

        Returns:
            A new `RunConfig`.

        Example:

        >>> from tfx_transfer.tasks.defaults import DEFAULTS
        >>> RunConfig(task="text").resolved(DEFAULTS["text"]).model.backbone
        'minilm_l6'
        """
        model = dataclasses.replace(
            self.model,
            backbone=self.model.backbone or defaults.backbone,
            weights=self.model.weights or defaults.weights,
        )
        data = dataclasses.replace(
            self.data,
            val_fraction=_given(self.data.val_fraction, defaults.val_fraction),
            test_fraction=_given(self.data.test_fraction, defaults.test_fraction),
            sequence_length=_given(self.data.sequence_length, defaults.sequence_length),
        )
        return dataclasses.replace(
            self, data=data, model=model, stages=self.stages or defaults.stages
        )

    def to_dict(self):
        """Returns the config as plain data (what `config.yaml` holds)."""
        config = dataclasses.asdict(self)
        if self.stages is not None:
            config["stages"] = [dataclasses.asdict(s) for s in self.stages]
        return config

    @classmethod
    def from_dict(cls, config, source="config"):
        """Builds a config from plain data, naming any unknown field.

        Args:
            config: dict. As read from YAML/JSON; missing fields keep their
                defaults.
            source: str. Where `config` came from, for error messages.

        Returns:
            A `RunConfig`.
        """
        config = dict(config or {})
        sections = {"data": DataConfig, "augment": AugmentConfig,
                    "model": ModelConfig}
        check_fields(cls, config, source, skip=(*sections, "stages"))
        kwargs = {}
        for key, value in config.items():
            if key in sections:
                kwargs[key] = _build(sections[key], value, f"{source}: {key}")
            elif key == "stages" and value is not None:
                if not isinstance(value, (list, tuple)):
                    raise ValueError(
                        f"{source}: `stages` must be a list. Received: {value!r}"
                    )
                kwargs[key] = tuple(
                    _build(StageConfig, stage, f"{source}: stages[{i}]")
                    for i, stage in enumerate(value)
                )
            else:  # "stages: null" too: the task's default plan.
                kwargs[key] = value
        return cls(**kwargs)


def _given(value, default):
    return default if value is None else value


def _build(cls, value, source):
    if not isinstance(value, dict):
        raise ValueError(f"{source} must be a mapping. Received: {value!r}")
    check_fields(cls, value, source)
    return cls(**value)
