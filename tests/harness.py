"""One harness for every task, in the manner of keras-hub's `run_task_test`.

`train_tiny` runs the real pipeline (`train.run`) on tiny data with a short
plan; `check_task_run` then checks what every task must give a user,
whatever it learns:

- the run directory holds every file a user needs;
- `model.keras` loads back (custom layers registered) and, behind the
  task's own serving function, answers raw inputs exactly as the exported
  SavedModel does in a fresh process that has none of this code;
- resuming the finished run trains nothing and reproduces its report.
"""

import csv
import dataclasses
import json
import zipfile

import h5py
import keras
import numpy as np
import tensorflow as tf
import yaml
from PIL import Image

from conftest import serve_in_fresh_process
from tfx_transfer import tasks, train
from tfx_transfer.config import RunConfig, StageConfig
from tfx_transfer.config_files import load_config
from tfx_transfer.feature_store import FeatureCache

SHORT_PLAN = (
    StageConfig(name="head", unfreeze=0, learning_rate=1e-2, epochs=3, optimizer="lbfgs"),
    StageConfig(name="fine_tune", unfreeze=1, learning_rate=1e-4, epochs=1),
)
TICKETS = {
    "billing": ["I was charged twice for order {}", "refund the extra fee on invoice {}",
                "my card was billed {} times"],
    "delivery": ["parcel {} never arrived", "the courier lost package {}",
                 "delivery {} is late again"],
    "praise": ["great service, thank you {}", "lovely staff, five stars {}",
               "really happy with purchase {}"],
}
RUN_FILES = ("config.yaml", "data_report.json", "metrics.json", "report.txt",
             "training_curves.png", "labels.txt", "model.keras", "stages.json",
             "saved_model/saved_model.pb", "logs/head.csv")
# Removed once a run has finished (kept with --keep-checkpoints).
CHECKPOINT_FOLDERS = ("checkpoints", "backup")


def write_tickets_csv(path, per_template=4):
    """Writes a tiny three-class support-ticket CSV (text, label); returns its path."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for label, templates in TICKETS.items():
            writer.writerows([template.format(n), label] for template in templates
                             for n in range(per_template))
    return path


def train_tiny(task, output_dir, data, model=None, stages=SHORT_PLAN, **fields):
    """Runs `train.run` for `task` on tiny data; returns its `RunResult`."""
    config = RunConfig(task=task, output_dir=str(output_dir), run_name=f"tiny-{task}",
                       data=data, stages=stages, **({"model": model} if model else {}),
                       **fields)
    return train.run(config, verbose=1)


def check_task_run(result, raw_inputs, capsys=None):
    """Checks a finished tiny run as every task must pass; returns the served outputs.

    Args:
        result: `RunResult` from `train_tiny`.
        raw_inputs: list of what a client sends (image bytes or strings).
        capsys: pytest's capsys fixture, to read what resuming printed.
    """
    run_dir = result.run_dir
    for name in RUN_FILES:
        assert (run_dir / name).exists(), name
    for name in CHECKPOINT_FOLDERS:
        assert not (run_dir / name).exists(), name
    config = load_config(run_dir / "config.yaml")
    task = tasks.get_task(config.task)
    assert [s["name"] for s in result.metrics["stages"]] == [s.name for s in config.stages]
    assert (run_dir / "report.txt").read_text() == result.report
    # Every report compares against its task's cheap baseline, with intervals.
    metrics = result.metrics
    assert metrics["vs_baseline"]["verdict"] in ("beats", "does not beat", "is worse than")
    low, high = metrics["vs_baseline"]["interval"]
    assert low <= metrics["vs_baseline"]["gain"] <= high
    assert "Baseline, " + metrics["baseline"]["name"] in result.report
    assert "95% interval" in result.report

    # Save/load round trip, behind the task's own serving function.
    class_names = (run_dir / "labels.txt").read_text().splitlines()
    loaded = keras.saving.load_model(run_dir / "model.keras")
    classifier = task.build_classifier(task.prepare_backbone(config), len(class_names),
                                       config.model)
    classifier = dataclasses.replace(classifier, model=loaded)
    serve = task.serving_fn(classifier, class_names)
    expected = {k: v.numpy() for k, v in serve(tf.constant(raw_inputs)).items()}
    served = serve_in_fresh_process(result.saved_model, text_ops=task.serving_input == "text",
                                    **{task.serving_input: raw_inputs})
    assert set(served) == set(expected)
    for key, value in expected.items():
        if value.dtype.kind in "fc":
            np.testing.assert_allclose(served[key], value, atol=1e-5, err_msg=key)
        else:
            np.testing.assert_array_equal(served[key], value, err_msg=key)

    # Resume of a finished run: nothing trains again, the report is the same.
    again = train.run(run_dir=run_dir, verbose=1)
    if capsys is not None:
        assert "already finished" in capsys.readouterr().out
    assert again.stages == result.stages
    assert {k: v for k, v in again.metrics.items() if k != "stages"} == \
        {k: v for k, v in result.metrics.items() if k != "stages"}
    return served


def check_files_whole(run_dir, home=None):
    """Asserts every file of a run (and feature cache entry) under its final name is whole.

    For runs killed or stopped at any moment: what is there must be complete.

    Args:
        run_dir: Path. The run directory; it may not exist yet.
        home: Path or None. A `TFX_TRANSFER_HOME` whose feature cache to check.

    Returns:
        How many files were checked.
    """
    checked = 0
    if not run_dir.exists():
        return checked
    # A run directory appears only with its config (filled under a hidden name).
    assert (run_dir / "config.yaml").is_file()
    for path in sorted(run_dir.rglob("*")):
        if not path.is_file() or path.name.startswith(".") or "backup" in path.parts:
            continue  # Temporary files, and Keras' own epoch backups (torn ones are handled).
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".yaml":
            yaml.safe_load(path.read_text())
        elif path.suffix == ".png":
            Image.open(path).verify()
        elif path.suffix == ".keras":
            with zipfile.ZipFile(path) as archive:
                assert archive.testzip() is None
        elif path.name.endswith(".weights.h5"):
            with h5py.File(path, "r"):
                pass
        elif path.name == "report.txt":
            assert "Confusion matrix" in path.read_text()
        elif path.name == "labels.txt":
            assert path.read_text().endswith("\n")
        else:
            continue
        checked += 1
    saved_model = run_dir / "saved_model"
    if saved_model.exists():
        assert (saved_model / "saved_model.pb").is_file()
        assert (saved_model / "variables" / "variables.index").is_file()
        checked += 1
    cache = FeatureCache(home / "features") if home else None
    for entry in cache.entries() if cache else ():
        assert cache.load(entry["key"]) is not None, entry
        checked += 1
    return checked
