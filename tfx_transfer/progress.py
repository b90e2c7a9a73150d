"""What a run shows while it works: its messages, progress bars and step timings.

A run has one verbosity, set once by whoever starts it (the `train`
command's `--quiet` / `--verbose`, `fine_tune(verbose=...)`) with
`verbosity(...)`; every module then asks this one for it instead of
threading a flag through each call:

- `QUIET`: only the final report is printed;
- `NORMAL`: the plan, a line per epoch, a bar for every long step;
- `VERBOSE`: as `NORMAL`, plus the time each step took in the summary.

Bars are Keras' own `Progbar`: redrawn in place on a terminal or in a
notebook (plain text, no widget); elsewhere (a CI log, a file) a single
line when the step ends, so a log does not fill with redraws.
"""

import contextlib
import contextvars
import sys
import time

QUIET, NORMAL, VERBOSE = 0, 1, 2

_LEVEL = contextvars.ContextVar("tfx_transfer_verbosity", default=NORMAL)
_TIMINGS = contextvars.ContextVar("tfx_transfer_timings", default=None)


@contextlib.contextmanager
def verbosity(level):
    """Sets the verbosity of everything run inside the block.

    Args:
        level: int. `QUIET`, `NORMAL` or `VERBOSE`.

    Example:

    >>> with verbosity(QUIET):
    ...     say("not shown")
    >>> say("shown")
    shown
    """
    if level not in (QUIET, NORMAL, VERBOSE):
        raise ValueError(f"verbosity must be {QUIET}, {NORMAL} or {VERBOSE}; got {level!r}.")
    token = _LEVEL.set(level)
    try:
        yield
    finally:
        _LEVEL.reset(token)


def level():
    """The current verbosity (`QUIET`, `NORMAL` or `VERBOSE`)."""
    return _LEVEL.get()


def say(*args, **kwargs):
    """`print`, unless the run is quiet."""
    if level() > QUIET:
        print(*args, **kwargs)


def warn(text):
    """Prints a warning to stderr, whatever the verbosity: it may need acting on."""
    print(f"Warning: {text}", file=sys.stderr)


def keras_verbose():
    """The `verbose=` for Keras' `fit`: 0 when quiet, else one line per epoch."""
    return 0 if level() == QUIET else 2


def _redraws():
    # Keras redraws with "\r"; a notebook renders that in place, a log file does not.
    return (hasattr(sys.stdout, "isatty") and sys.stdout.isatty()) or "ipykernel" in sys.modules


def bar(target, title, unit_name="step", stateful_metrics=None):
    """A Keras progress bar under a title line, or None when the run is quiet.

    Args:
        target: int or None. The number of steps; None when unknown (the
            bar counts up and must be ended with `update(n, finalize=True)`).
        title: str. Printed on the line above the bar.
        unit_name: str. What a step is ("batch", "image").
        stateful_metrics: sequence of str. Values shown as given, not
            averaged (on a terminal; elsewhere the last value is shown).

    Returns:
        A `keras.utils.Progbar`, or None.

    Example:

    >>> progress = bar(3, "Checking files:", unit_name="file")
    Checking files:
    >>> for done in range(1, 4):
    ...     progress.update(done)  # doctest: +SKIP
    """
    if level() == QUIET:
        return None
    import keras  # Here, not at the top: the CLI imports this module before TensorFlow.

    print(title)
    if _redraws():
        return keras.utils.Progbar(target, unit_name=unit_name,
                                   stateful_metrics=stateful_metrics)
    if target is None:
        # Keras' one-line mode prints nothing without a target: redraw, rarely.
        return keras.utils.Progbar(None, unit_name=unit_name, interval=15,
                                   stateful_metrics=stateful_metrics)
    # One line at the end. Keras' one-line mode cannot print stateful metrics
    # (it unpacks them as averages); a stateless one shows its last value.
    return keras.utils.Progbar(target, unit_name=unit_name, verbose=2)


def tracked(items, total, title, unit_name="step"):
    """Yields from `items`, advancing a `bar` of `total` steps as it goes (tqdm's habit).

    Example:

    >>> for path in tracked(paths, len(paths), "Scoring:", unit_name="image"):  # doctest: +SKIP
    ...     score(path)
    """
    progress = bar(total, title, unit_name=unit_name)
    done = 0
    for item in items:
        yield item
        done += 1
        if progress is not None:
            progress.update(done)
    if progress is not None and done != total:
        progress.update(done, finalize=True)


def predict_bar(title):
    """Prints `title`; returns the `verbose=` for a Keras `predict` bar under it (0 if quiet).

    Example:

    >>> probabilities = model.predict(test, verbose=predict_bar("Test split:"))  # doctest: +SKIP
    """
    if level() == QUIET:
        return 0
    print(title)
    return 1 if _redraws() else 2


@contextlib.contextmanager
def recording():
    """Records the `step`s run inside the block; yields their `Timings`.

    Example:

    >>> with recording() as timings:
    ...     with step("data"):
    ...         pass
    >>> list(timings.seconds)
    ['data']
    """
    timings = Timings()
    token = _TIMINGS.set(timings)
    try:
        yield timings
    finally:
        _TIMINGS.reset(token)


def step(name):
    """Times the block as step `name` of the run being recorded, if any."""
    timings = _TIMINGS.get()
    return timings.step(name) if timings is not None else contextlib.nullcontext()


class Timings:
    """Wall-clock seconds of each step of a run, in the order they ran.

    A step run inside another is counted as its own and left out of the
    outer one's, so the seconds add up to the wall time.
    """

    def __init__(self):
        self.seconds = {}
        self._open = []  # [name, started, seconds of the steps inside]

    @contextlib.contextmanager
    def step(self, name):
        """Times the block; a step entered twice adds up."""
        self.seconds.setdefault(name, 0.0)  # Listed in the order the steps start.
        self._open.append([name, time.perf_counter(), 0.0])
        try:
            yield
        finally:
            _, started, inner = self._open.pop()
            elapsed = time.perf_counter() - started
            self.seconds[name] += elapsed - inner
            if self._open:
                self._open[-1][2] += elapsed

    def lines(self):
        """The timings as report lines, with each step's share of the total."""
        total = sum(self.seconds.values()) or 1e-9
        width = max((len(name) for name in self.seconds), default=0)
        rows = [f"  {name:<{width}}  {s:8.1f} s  {100 * s / total:5.1f}%"
                for name, s in self.seconds.items()]
        return ["Timings per step:", *rows, f"  {'total':<{width}}  {total:8.1f} s"]
