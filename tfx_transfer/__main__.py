"""`python -m tfx_transfer` runs the command-line group."""

from tfx_transfer.cli import main

main(prog_name="python -m tfx_transfer")
