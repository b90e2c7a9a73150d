"""One module per task, each of the same shape (see `tasks/images.py`)."""

from tfx_transfer.tasks import images, text, tokens

TASKS = {"images": images, "text": text, "tokens": tokens}


def get_task(name):
    """Returns the task module registered under `name`."""
    if name not in TASKS:
        raise ValueError(f"Unknown task. Choose one of {sorted(TASKS)}. Received: task={name!r}")
    return TASKS[name]
