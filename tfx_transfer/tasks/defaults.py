"""Each task's defaults, as pure data: backbone, fractions, sequence length, stage plan.

Kept apart from the task classes, as keras-hub keeps a model's presets
apart from its layers, so that `--help` can print them without importing
TensorFlow. Each task class points at its entry (`Task.defaults`); nothing
else holds these numbers. They were chosen on dev sets that are not the
demos' test splits (`benchmarks/recipes.py`), within minutes on 2 CPU cores.
"""

import dataclasses

from tfx_transfer.config import StageConfig


@dataclasses.dataclass(frozen=True)
class TaskDefaults:
    """What a task fills in where a `RunConfig` leaves None.

    Args:
        backbone: str. Default backbone name.
        weights: str. Default weights setting ("imagenet", "pretrained").
        val_fraction: float. Validation share when no split is given.
        test_fraction: float. Test share when no split is given.
        sequence_length: int or None. Wordpieces per example (text tasks).
        stages: tuple of StageConfig. The staged plan: a head stage, then
            fine-tuning stages.
        few_shot_stages: tuple of StageConfig or None. The plan of few-shot
            mode (`tfx_transfer.few_shot`); None: the task has no such mode.
        few_shot_below: int. Few-shot mode turns on by itself below this
            many training examples a class.
    """

    backbone: str
    weights: str
    val_fraction: float
    test_fraction: float
    sequence_length: int | None
    stages: tuple[StageConfig, ...]
    few_shot_stages: tuple[StageConfig, ...] | None = None
    few_shot_below: int = 16

IMAGES = TaskDefaults(
    backbone="efficientnet_lite0",
    weights="imagenet",
    val_fraction=0.15,
    test_fraction=0.15,
    sequence_length=None,
    stages=(
        StageConfig(name="head", unfreeze=0, learning_rate=1e-3, epochs=10,
                    optimizer="lbfgs"),
        # Off (0 epochs) by default: at 70 images per class no fine-tune beat the
        # multi-depth L-BFGS head on three Fashion-MNIST dev sets (top 2 blocks
        # at 1e-4 for 4 epochs, top 4 at 3e-5 for 6; benchmarks/recipes.py),
        # and a kept head is refitted on train + val, worth +0.8 to +1.6 points
        # there. `--fine-tune-epochs 4` runs it; it is kept only beyond the noise.
        StageConfig(name="fine_tune", unfreeze=2, learning_rate=1e-4, epochs=0, patience=2),
    ),
    # The L-BFGS head on augmented views, its C chosen by cross-validation.
    few_shot_stages=(
        StageConfig(name="head", unfreeze=0, learning_rate=1e-3, epochs=10, optimizer="lbfgs"),
    ),
)

TEXT = TaskDefaults(
    backbone="minilm_l6",
    weights="pretrained",
    val_fraction=0.15,
    test_fraction=0.15,
    sequence_length=128,
    stages=(
        # On cached features a head epoch costs well under a second.
        StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=20, patience=3,
                    optimizer="lbfgs"),
        # All six layers for 3 epochs: on the WNUT "names an entity?" dev set
        # 0.750 test accuracy against 0.727 for the top two layers for 2 and
        # 0.705 for the head alone (benchmarks/recipes.py --task text).
        StageConfig(
            name="fine_tune", unfreeze=6, learning_rate=5e-5, epochs=3, patience=1,
            optimizer="adamw",
        ),
    ),
    # SetFit (Tunstall et al. 2022) with its library's defaults: the whole
    # encoder, embeddings included (7 blocks of MiniLM-L6; fewer are taken
    # when a backbone has fewer), one pass of 20 pairs a training example
    # at 2e-5, then the L-BFGS head. At 8 posts a class of WNUT "names an
    # entity?" it scored 0.702 +- 0.024 over 5 seeds, against 0.623 for the
    # head on the frozen encoder (benchmarks/few_shot.py).
    few_shot_stages=(
        StageConfig(name="contrastive", unfreeze=7, learning_rate=2e-5, epochs=1,
                    loss="contrastive"),
        StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=20, optimizer="lbfgs"),
    ),
    # Not only few-shot: on WNUT mentions the mode beat the default plan by
    # +9.1 points at 16 a class (0.732 vs 0.641, 5 seeds), +9.0 at 32 (3 seeds)
    # and +4.9 at 64 (0.775 vs 0.726, 2 seeds); on BBC News +2.5 at 16 (0.955
    # vs 0.930, 3 seeds, better on each). The default plan was chosen
    # at 200 a class. The switch sits between the last measured win and
    # those 200 (benchmarks/few_shot.py --mode --compare-from 16).
    few_shot_below=100,
)

TOKENS = TaskDefaults(
    backbone="minilm_l6",
    weights="pretrained",
    val_fraction=0.1,
    test_fraction=0.1,
    # WNUT tweets are at most 73 wordpieces; longer sentences are chunked.
    sequence_length=64,
    stages=(
        # Frozen features tag poorly; the whole encoder matters. All 6 layers
        # beat the top 3 on WNUT validation by 5.2 points of entity F1
        # (0.618 vs 0.566; test 0.628 vs 0.536), benchmarks/tokens.py.
        StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=10, patience=2),
        StageConfig(
            name="fine_tune", unfreeze=6, learning_rate=2e-4, epochs=4, patience=2,
            optimizer="adamw",
        ),
    ),
)

DEFAULTS = {"images": IMAGES, "text": TEXT, "tokens": TOKENS}

# The learning rate of LoRA stages when `--lora-rank` comes without
# `--fine-tune-learning-rate`: adapters start at zero and need a rate far
# above full fine-tuning's 5e-5 (the LoRA paper: 4e-4 to 5e-4 over 30 to 60
# epochs; here 3). On WNUT mentions, rank 8, 3 epochs: validation accuracy
# 0.790 at 2e-3 against 0.739 at 5e-4 (benchmarks/lora.py).
LORA_LEARNING_RATE = 2e-3
