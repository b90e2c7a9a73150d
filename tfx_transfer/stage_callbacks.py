"""The callbacks of a Keras-fitted stage, and what lets it resume as if never stopped.

`BackupAndRestore` brings back a stage's weights, optimizer and epoch
after an interrupt, but nothing else: Keras' `EarlyStopping` and
`ModelCheckpoint` start over in every `fit`, so a resumed stage would
forget its best epoch and patience, and `fit`'s history holds only the
epochs run since the resume. Here the stage's CSV log is the record: one
row per finished epoch (`TrimLog` drops the rows of epochs about to run
again), from which `ResumableEarlyStopping` replays its state and
`logged_history` reads the whole stage's history.
"""

import csv
import errno
import json
import math
import os
import shutil
from pathlib import Path

import keras
import numpy as np

from tfx_transfer.files import write_atomic


def stage_callbacks(stage, run_dir, verbose, backup=True, early_stopping=True):
    """The callbacks a stage's `fit` runs with, in the order they must run.

    Args:
        stage: `tfx_transfer.config.StageConfig`.
        run_dir: Path. Checkpoints, logs and backups go under it.
        verbose: int. Keras verbosity for early stopping's messages.
        backup: bool. Back the stage up every epoch so that it can resume.
        early_stopping: bool. Stop on, and checkpoint, the best validation
            accuracy; a stage without validation (contrastive) runs its
            epochs.

    Returns:
        A list of `keras.callbacks.Callback`.
    """
    checkpoints = run_dir / "checkpoints"
    logs = run_dir / "logs"
    checkpoints.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    # A stage on cached features restarts in seconds, so an interrupted one
    # simply runs again; a per-epoch backup would cost more than it saves.
    # Two copies: a process killed while writing one resumes from the other.
    backup_dir = run_dir / "backup" / stage.name
    csv_log = logs / f"{stage.name}.csv"
    # The restore first: TrimLog and the early stopping read what it restored
    # (after a torn backup it falls back to the older copy and its metadata).
    resume = [AtomicBackupAndRestore(str(backup_dir), double_checkpoint=True)]
    return [
        # First: a batch with a NaN loss stops the stage before anything logs it.
        StopOnNonFiniteLoss(),
        *(resume if backup else []),
        # After the restore, before CSVLogger appends.
        TrimLog(csv_log, backup_dir / "training_metadata.json"),
        *([ResumableEarlyStopping(
            csv_log, checkpoints / f"{stage.name}.weights.h5", backup_dir,
            patience=stage.patience, verbose=verbose)] if early_stopping else []),
        # The graph costs a second per stage to write and shows little.
        keras.callbacks.TensorBoard(log_dir=str(logs / stage.name), write_graph=False),
        keras.callbacks.CSVLogger(str(csv_log), append=True),
    ]


# Room asked for beyond twice the weights' own size (HDF5 metadata, slots).
_SPACE_MARGIN = 16 * 2**20


def save_weights_atomic(model, path):
    """Saves `model`'s weights to `path` whole or not at all: a hidden file, then a rename.

    A run killed or out of disk space while saving leaves the previous file
    as it was, never a torn one that loads as half the weights. The free
    space is checked first: h5py, out of space mid-write, leaves a file it
    can neither flush nor close, and may crash the process at exit.

    Raises:
        OSError: ENOSPC, when the folder has too little space for the file.
    """
    path = Path(path)
    needed = 2 * sum(math.prod(v.shape) * np.dtype(v.dtype).itemsize
                     for v in model.weights) + _SPACE_MARGIN
    free = shutil.disk_usage(path.parent).free
    if free < needed:
        raise OSError(errno.ENOSPC, f"No space left on device: {path.parent} has "
                                    f"{free / 2**20:.0f} MiB free, and {path.name} needs "
                                    f"about {needed / 2**20:.0f} MiB")
    tmp = path.with_name(f".{path.name}")  # Still `*.weights.h5`, as Keras requires.
    try:
        model.save_weights(str(tmp))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _copy_atomic(source, target):
    tmp = Path(target).with_name(f".{Path(target).name}")
    try:
        shutil.copyfile(source, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


class AtomicBackupAndRestore(keras.callbacks.BackupAndRestore):
    """Keras' `BackupAndRestore`, with every backup file replaced whole.

    Keras writes the backup in place, so a process killed (or a disk
    filled) mid-write leaves weights that load as an error, or as half a
    model. Here each file is written aside and renamed over the old one,
    the weights before the epoch count that points at them; a backup that
    still fails to load (written by an older version) falls back to the
    previous copy, as Keras does for an unreadable file.
    """

    def _save_model(self):
        os.makedirs(self.backup_dir, exist_ok=True)
        if self.double_checkpoint:
            for latest, previous in ((self._weights_path, self._prev_weights_path),
                                     (self._training_metadata_path,
                                      self._prev_training_metadata_path)):
                if os.path.exists(latest):
                    _copy_atomic(latest, previous)
        save_weights_atomic(self.model, self._weights_path)
        write_atomic(self._training_metadata_path, json.dumps(
            {"epoch": self._current_epoch, "batch": self._last_batch_seen}))

    def _load_model(self):
        try:
            super()._load_model()
        except ValueError as error:
            # HDF5 that is not these weights: Keras falls back only on OSError.
            raise OSError(f"Backup {self._weights_path} does not load: {error}") from error


def _resumed_at(metadata_path):
    """The epoch a stage resumes at: after its last backup, or 0."""
    path = Path(metadata_path)
    return json.loads(path.read_text())["epoch"] if path.is_file() else 0


class TrimLog(keras.callbacks.Callback):
    """Drops a stage's CSV rows of the epochs it is about to run again.

    A stage resumes at the epoch after its last backup (`BackupAndRestore`
    writes `training_metadata.json`), or at 0 without one. A process killed
    after logging an epoch but before (or while) backing it up ran epochs
    that will now run again: their rows are dropped, so the log holds each
    epoch once, as the weights went through it.
    """

    def __init__(self, csv_path, metadata_path):
        super().__init__()
        self.csv_path, self.metadata_path = Path(csv_path), Path(metadata_path)

    def on_train_begin(self, logs=None):
        if not self.csv_path.is_file():
            return
        resumed_at = _resumed_at(self.metadata_path)
        lines = self.csv_path.read_text().splitlines(keepends=True)
        if not lines:
            return
        header, *rows = lines
        kept = [row for row in rows if int(row.split(",", 1)[0]) < resumed_at]
        if len(kept) < len(rows):
            tmp = self.csv_path.with_suffix(".tmp")
            tmp.write_text(header + "".join(kept))
            tmp.replace(self.csv_path)


def logged_history(csv_path):
    """A stage's history, every epoch across resumes, from its CSV log.

    Returns:
        A dict of metric name -> list of floats, one per epoch, as `fit`'s
        `History.history` has it (no "epoch" key); empty without a log.

    Example:

    >>> logged_history("runs/a/logs/fine_tune.csv")["val_accuracy"]  # doctest: +SKIP
    [0.81, 0.84, 0.83, 0.85]
    """
    path = Path(csv_path)
    if not path.is_file():
        return {}
    with path.open(newline="") as file:
        rows = list(csv.DictReader(file))
    names = [name for name in (rows[0] if rows else {}) if name != "epoch"]
    return {name: [float(row[name]) for row in rows] for name in names}


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """Early stopping on validation accuracy that keeps its state across a resume.

    It also writes the best epoch's weights to `checkpoint_path` (what
    `ModelCheckpoint(save_best_only=True)` would), with a copy per best
    epoch in `backup_dir` (the model's weights only, not the optimizer's;
    the last two kept: the newest may belong to an epoch that runs again). On a resumed `fit` it replays
    the logged epochs to get back its best score, best epoch and patience
    count, and loads that epoch's weights as the ones to restore.

    Args:
        csv_path: Path. The stage's CSV log (`TrimLog`-ed).
        checkpoint_path: Path. Where the best epoch's weights go.
        backup_dir: Path. The stage's `BackupAndRestore` folder.
        patience: int. Epochs without improvement before stopping.
        verbose: int.
    """

    def __init__(self, csv_path, checkpoint_path, backup_dir, patience, verbose=0):
        super().__init__(monitor="val_accuracy", mode="max", patience=patience,
                         restore_best_weights=True, verbose=verbose)
        self.csv_path, self.checkpoint_path = Path(csv_path), Path(checkpoint_path)
        self.backup_dir = Path(backup_dir)

    def _best_path(self, epoch):
        return self.backup_dir / f"best_epoch_{epoch}.npz"

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        scores = logged_history(self.csv_path).get(self.monitor, [])
        if not scores:
            return
        self._set_monitor_op()
        for epoch, score in enumerate(scores):  # As `on_epoch_end` counted them.
            self.wait += 1
            if self._is_improvement(score, self.best):
                self.best, self.best_epoch, self.wait = score, epoch, 0
        saved = self._best_path(self.best_epoch)
        if saved.is_file():
            with np.load(saved) as arrays:
                self.best_weights = [arrays[f"arr_{i}"] for i in range(len(arrays.files))]
            # The checkpoint may hold an epoch that is now running again.
            current = self.model.get_weights()
            self.model.set_weights(self.best_weights)
            self._save_checkpoint()
            self.model.set_weights(current)

    def on_epoch_end(self, epoch, logs=None):
        best_before = self.best_epoch if self.best_weights is not None else None
        super().on_epoch_end(epoch, logs)
        if self.best_weights is None or self.best_epoch == best_before:
            return
        # A new best: on disk before the epoch's backup commits the epoch.
        self.backup_dir.mkdir(parents=True, exist_ok=True)
        path = self._best_path(epoch)
        tmp = path.with_name(f".{path.name}")
        with tmp.open("wb") as file:
            np.savez(file, *self.best_weights)
        os.replace(tmp, path)
        self._save_checkpoint()
        for old in self.backup_dir.glob("best_epoch_*.npz"):
            if int(old.stem.rsplit("_", 1)[1]) not in (epoch, best_before):
                old.unlink()

    def _save_checkpoint(self):
        save_weights_atomic(self.model, self.checkpoint_path)


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite; says at which epoch and batch."""

    def __init__(self, epoch, batch, loss):
        super().__init__(f"the loss became {loss} at epoch {epoch + 1}, batch {batch + 1}")
        self.epoch, self.batch, self.loss = epoch, batch, loss


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stops `fit` at the first batch whose loss is NaN or infinite, before it is logged.

    Keras' `TerminateOnNaN` stops too, but only after the epoch's end has
    run: its broken weights are then backed up, checkpointed and logged.
    Raising here skips all of that; `fit_guarded` then restores weights
    that are still good.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            raise NonFiniteLoss(self.epoch, batch, float(loss))


def fit_guarded(model, callbacks, backup_dir, **fit_args):
    """`model.fit` that survives a NaN or infinite loss with the best weights it had.

    Args:
        model: keras.Model. Compiled.
        callbacks: list. From `stage_callbacks`.
        backup_dir: Path. The stage's backup folder, dropped after a stop:
            the stage is over, it will not resume.
        **fit_args: passed to `fit`.

    Returns:
        A pair: `fit`'s `History` (None after a stop) and what stopped the
        stage, as a sentence (None when nothing did).
    """
    started_from = model.get_weights()
    try:
        return model.fit(callbacks=callbacks, **fit_args), None
    except NonFiniteLoss as stop:
        stopping = next(c for c in callbacks if isinstance(c, ResumableEarlyStopping))
        if stopping.best_weights is not None:
            model.set_weights(stopping.best_weights)
            kept = (f"kept its best epoch before that, epoch {stopping.best_epoch + 1} "
                    f"(val_accuracy {float(stopping.best):.4f})")
        else:
            model.set_weights(started_from)
            kept = "no epoch had finished: kept the weights it started from"
        shutil.rmtree(backup_dir, ignore_errors=True)
        return None, f"{stop}; {kept}"
