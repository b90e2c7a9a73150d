"""A stage interrupted and resumed keeps its best epoch, patience, weights and history."""

import keras
import numpy as np
import pytest

from tfx_transfer import stage_callbacks
from tfx_transfer.config import StageConfig

# Validation accuracy by epoch, scripted: the best is epoch 1, then two worse
# epochs use up a patience of 2, so the stage stops after epoch 3 of 6.
SCORES = [0.5, 0.9, 0.6, 0.4, 0.95, 0.99]
STAGE = StageConfig(name="fine_tune", unfreeze=1, learning_rate=1e-2, epochs=6, patience=2)


class Script(keras.callbacks.Callback):
    """Sets the epoch's val_accuracy before the stage's callbacks read it; may interrupt."""

    def __init__(self, stop_before=None):
        super().__init__()
        self.stop_before, self.weights = stop_before, {}

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.stop_before:
            raise KeyboardInterrupt

    def on_epoch_end(self, epoch, logs=None):
        logs["val_accuracy"] = SCORES[epoch]
        self.weights[epoch] = self.model.get_weights()


def fit(run_dir, script, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 4)).astype("float32")
    y = keras.utils.to_categorical(rng.integers(0, 3, 16), 3)
    callbacks = [script, *stage_callbacks.stage_callbacks(STAGE, run_dir, verbose=0)]
    model.fit(x, y, validation_data=(x[:8], y[:8]), epochs=STAGE.epochs, batch_size=8,
              shuffle=False, callbacks=callbacks, verbose=0)
    return model


@pytest.mark.parametrize("stop_before", [2, 3])
def test_a_resumed_stage_keeps_the_best_epoch_from_before_the_interrupt(tmp_path, stop_before):
    whole = Script()
    reference = fit(tmp_path / "whole", whole)
    expected = stage_callbacks.logged_history(tmp_path / "whole" / "logs" / "fine_tune.csv")
    assert expected["val_accuracy"] == SCORES[:4]  # Stopped after epoch 3: patience used up.

    with pytest.raises(KeyboardInterrupt):
        fit(tmp_path / "cut", Script(stop_before=stop_before))
    # Another process: other initial weights, restored from the backup.
    resumed = fit(tmp_path / "cut", Script(), seed=1)

    history = stage_callbacks.logged_history(tmp_path / "cut" / "logs" / "fine_tune.csv")
    assert history.keys() == expected.keys()
    assert history["val_accuracy"] == SCORES[:4]
    np.testing.assert_allclose(history["loss"], expected["loss"], rtol=1e-5)
    # The weights kept are epoch 1's, as in the uninterrupted stage, not the
    # first epoch after the resume's.
    for kept, best in zip(resumed.get_weights(), whole.weights[1]):
        np.testing.assert_allclose(kept, best, atol=1e-6)
    for a, b in zip(resumed.get_weights(), reference.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    checkpoint = keras.models.clone_model(resumed)
    checkpoint.load_weights(tmp_path / "cut" / "checkpoints" / "fine_tune.weights.h5")
    for saved, best in zip(checkpoint.get_weights(), whole.weights[1]):
        np.testing.assert_allclose(saved, best, atol=1e-6)
    assert not (tmp_path / "cut" / "backup" / "fine_tune").exists()  # Removed once done.


def test_the_history_of_a_stage_without_a_log_is_empty(tmp_path):
    assert stage_callbacks.logged_history(tmp_path / "none.csv") == {}


class Poison(keras.callbacks.Callback):
    """Turns every weight into NaN before one batch, as a diverging step would."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.at, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            self.model.set_weights([np.full_like(w, np.nan) for w in self.model.get_weights()])


@pytest.mark.parametrize("epoch", [0, 2])
def test_a_nan_loss_stops_the_stage_and_keeps_good_weights(tmp_path, epoch):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    start = model.get_weights()
    x = np.random.default_rng(0).normal(size=(16, 4)).astype("float32")
    y = keras.utils.to_categorical(np.arange(16) % 3, 3)
    script = Script()
    callbacks = [script, Poison(epoch, 1),
                 *stage_callbacks.stage_callbacks(STAGE, tmp_path, verbose=0)]
    fit, stopped = stage_callbacks.fit_guarded(
        model, callbacks, tmp_path / "backup" / STAGE.name, x=x, y=y,
        validation_data=(x[:8], y[:8]), epochs=STAGE.epochs, batch_size=8, shuffle=False,
        verbose=0)
    assert fit is None and stopped.startswith(f"the loss became nan at epoch {epoch + 1}, batch 2")
    weights = model.get_weights()
    assert all(np.isfinite(w).all() for w in weights)
    if epoch == 0:
        assert "kept the weights it started from" in stopped
        expected = start
    else:  # Epoch 1 (val_accuracy 0.9) was the best before the NaN.
        assert "kept its best epoch before that, epoch 2 (val_accuracy 0.9000)" in stopped
        expected = script.weights[1]
    for kept, good in zip(weights, expected):
        np.testing.assert_allclose(kept, good, atol=1e-6)
    # Nothing of the broken epoch was logged, and the stage will not resume.
    logged = stage_callbacks.logged_history(tmp_path / "logs" / "fine_tune.csv")
    assert logged.get("val_accuracy", []) == SCORES[:epoch]
    assert not (tmp_path / "backup" / STAGE.name).exists()
