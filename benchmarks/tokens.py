"""Tokens recipes: how deep to fine-tune, and whether learned tag transitions help decoding.

The protocol behind the tokens defaults (`tfx_transfer/tasks/defaults.py`)
and behind the decoder (`tfx_transfer/decoding.py`). Each variant is a full
`train.run` on the bundled WNUT-16 split with a fixed seed; its kept
weights are then loaded into a fresh tagger, and the test sentences are
decoded two ways:

- `bio`: the BIO constraints alone (what the served model does);
- `bio+transitions`: the constraints plus a CRF-style transition score,
  `w * (log p(tag_j | tag_i) - log p(tag_j))` from the training tags'
  bigram counts (add-one smoothed). Dividing by the prior turns the
  tagger's posteriors into scaled likelihoods, as hybrid HMM decoders do.
  The weight `w` is chosen on the validation sentences, never the test.

Each row gives entity micro-F1 with its 95% bootstrap interval, the
paired difference of the transition decoder against `bio` with its
interval, the most-frequent-tag baseline, seconds and trainable
parameters.

    python benchmarks/tokens.py --variants default,ft6
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from tfx_transfer import tasks, train
from tfx_transfer.config import RunConfig, StageConfig
from tfx_transfer.decoding import is_valid_bio
from tfx_transfer.evaluate import entities
from tfx_transfer.tasks import defaults
from tfx_transfer.tasks.tokens import decode_tags, word_probabilities

WEIGHTS = (0.25, 0.5, 1.0)


def variants():
    """Variant name -> stage plan; "default" is the task's own."""
    head = defaults.TOKENS.stages[0]
    return {
        "default": defaults.TOKENS.stages,
        "ft6": (head, StageConfig("fine_tune", 6, 2e-4, 4, patience=2, optimizer="adamw")),
        "ft6_lr1e-4_x6": (head, StageConfig("fine_tune", 6, 1e-4, 6, patience=2,
                                            optimizer="adamw")),
    }


def transition_scores(tag_sequences, num_tags, weight):
    """`weight` times log p(next | previous) - log p(next), from training tag ids."""
    pairs = np.ones((num_tags, num_tags))
    first = np.ones(num_tags)
    for tags in tag_sequences:
        if len(tags):
            first[tags[0]] += 1
        for a, b in zip(tags[:-1], tags[1:]):
            pairs[a, b] += 1
    prior = np.log(pairs.sum(axis=0) / pairs.sum())
    start = np.log(first / first.sum()) - prior
    steps = np.log(pairs / pairs.sum(axis=1, keepdims=True)) - prior[None]
    return weight * start, weight * steps


def score(run_dir):
    """Decodes val and test with and without transitions; returns the row's numbers."""
    config = train.resume_config(run_dir)
    task = tasks.get_task("tokens")
    config = config.resolved(task.defaults)
    backbone = task.prepare_backbone(config)
    data = task.read_data(config.data)
    classifier = task.build_classifier(backbone, data.num_classes, config.model)
    classifier.model.load_weights(str(Path(run_dir) / "model.keras"))
    names = data.tag_names
    train_tags = [data.tag_ids(s) for s in data.splits["train"]]

    def decoded(split, weight):
        sentences = data.splits[split]
        probabilities, lengths = word_probabilities(
            classifier, [s.words for s in sentences], len(names))
        scores = None if weight == 0 else transition_scores(train_tags, len(names), weight)
        return [list(s.tags) for s in sentences], decode_tags(probabilities, lengths, names,
                                                              scores)

    val_f1 = {}
    for weight in (0.0, *WEIGHTS):
        true, predicted = decoded("val", weight)
        val_f1[weight] = entities.entity_report(true, predicted)["micro"]["f1"]
    chosen = max(WEIGHTS, key=lambda w: val_f1[w])
    true, plain = decoded("test", 0.0)
    _, with_transitions = decoded("test", chosen)
    return {
        "bio": entities.entity_report(true, plain)["micro"]["f1"],
        "bio_interval": list(entities.micro_f1_interval(true, plain)),
        "transitions": entities.entity_report(true, with_transitions)["micro"]["f1"],
        "transition_weight": chosen,
        "val_f1_by_weight": {str(k): v for k, v in val_f1.items()},
        "transitions_vs_bio": entities.compare_micro_f1(true, with_transitions, plain),
        "invalid_sentences": sum(not is_valid_bio(tags) for tags in plain + with_transitions),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variants", default=None, help="comma-separated; default all")
    parser.add_argument("--output-dir", default=None)
    parser.add_argument("--json", default="tokens.json")
    args = parser.parse_args()
    root = Path(args.output_dir or tempfile.mkdtemp(prefix="tokens-"))
    chosen = variants()
    if args.variants:
        chosen = {k: chosen[k] for k in args.variants.split(",")}
    rows = []
    for variant, plan in chosen.items():
        config = RunConfig(task="tokens", output_dir=str(root / "runs"), run_name=variant,
                           stages=plan)
        started = time.time()
        result = train.run(config, verbose=0)
        seconds = time.time() - started
        rows.append({
            "variant": variant, "seconds": seconds,
            "reported_f1": result.metrics["micro"]["f1"],
            "baseline": result.metrics["baseline"]["micro_f1"],
            "trainable_params": max(s.trainable_params for s in result.stages),
            "kept": [s.name for s in result.stages if s.kept][-1],
            **score(result.run_dir),
        })
        print(json.dumps(rows[-1]), flush=True)
    print(format_table(rows))
    Path(args.json).write_text(json.dumps(rows, indent=2))


def format_table(rows):
    lines = [f"{'variant':<15} {'F1 (bio)':>8} {'95% interval':>13} {'+transitions':>12} "
             f"{'diff 95% interval':>18} {'baseline':>8} {'seconds':>7} {'trainable':>10} kept"]
    for r in rows:
        diff = r["transitions_vs_bio"]
        lines.append(
            f"{r['variant']:<15} {r['bio']:8.4f} {r['bio_interval'][0]:.3f}-"
            f"{r['bio_interval'][1]:.3f} {r['transitions']:12.4f} "
            f"{diff['interval'][0]:+8.3f}..{diff['interval'][1]:+.3f} {r['baseline']:8.4f} "
            f"{r['seconds']:7.0f} {r['trainable_params']:10d} {r['kept']} "
            f"(w={r['transition_weight']:g})")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
