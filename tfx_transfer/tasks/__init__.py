"""Tasks: what a run learns. One `Task` subclass per task, found by name.

`base.py` holds the `Task` class and the registry; `classification.py` and
`encoder.py` what several tasks share; `images.py`, `text.py`, `tokens.py`
the tasks; `defaults.py` their defaults as pure data. Importing this
package is cheap: the task modules (and TensorFlow) load on the first
`get_task`, while `--help` reads `DEFAULTS` alone.
"""

import importlib

from tfx_transfer.tasks.defaults import DEFAULTS

# The built-in tasks, each registered by its own module on import.
TASK_NAMES = tuple(DEFAULTS)


def get_task(name):
    """Returns the registered `Task` called `name`.

    Example:

    >>> get_task("text").defaults.backbone
    'minilm_l6'
    """
    from tfx_transfer import startup

    startup.import_tensorflow()
    from tfx_transfer.tasks.base import TASKS

    if name in TASK_NAMES and name not in TASKS:
        importlib.import_module(f"tfx_transfer.tasks.{name}")
    if name not in TASKS:
        raise ValueError(
            f"Unknown task. Choose one of {sorted(set(TASKS) | set(TASK_NAMES))}. "
            f"Received: task={name!r}"
        )
    return TASKS[name]


def resolve(config):
    """Returns `config` with its task's defaults filled in (`RunConfig.resolved`).

    Reads only `DEFAULTS`, so it imports no TensorFlow.

    Example:

    >>> resolve(RunConfig(task="tokens")).data.sequence_length
    64
    """
    if config.task not in DEFAULTS:
        return config.resolved(get_task(config.task).defaults)
    return config.resolved(DEFAULTS[config.task])
