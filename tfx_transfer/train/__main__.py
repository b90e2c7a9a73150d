"""`python -m tfx_transfer.train`: the `train` command (flags in `tfx_transfer.cli`)."""

from tfx_transfer.cli import train_command

train_command(prog_name="python -m tfx_transfer.train")
