"""How the commands fail: exit 1 with a one-line reason, a traceback only with `--debug`.

Click already exits 2 on a usage error and 1 on a `ClickException`. What
it does not do is keep an unexpected exception (a TensorFlow op error, a
bug) from printing a page of traceback at a user who only needs the
reason. `Command` and `Group` turn any such exception into one line and
exit 1; `--debug` (on the group or on any command) prints the traceback
as well, for a bug report. `in_flag_terms` puts a message written for the
Python API into the flags a command-line user can type.
"""

import re
import sys
import traceback

import click

_HINT = " (rerun with --debug for the traceback)"
# A reason longer than this is cut: some TensorFlow messages run to pages.
_MAX_REASON = 400


def one_line(error):
    """A one-line reason for an exception: its type and its message, whitespace folded.

    Args:
        error: the exception.

    Returns:
        A string such as `"InvalidArgumentError: Unknown image file format."`.

    Example:
    >>> one_line(ValueError("bad\\n  value"))
    'ValueError: bad value'
    """
    message = " ".join(str(error).split())
    if len(message) > _MAX_REASON:
        message = message[:_MAX_REASON] + " ..."
    name = type(error).__name__
    return f"{name}: {message}" if message else name


def in_flag_terms(message, field_flags):
    """A message written for the Python API, in the flags a command-line user can type.

    Args:
        message: str. Names arguments (`skip_bad_rows=True`, `text_column=`)
            or config fields (`` `data.val_fraction` ``).
        field_flags: dict. Flag name (underscores) -> dotted config field.

    Returns:
        The message with each of those as its flag (`--skip-bad-rows`).

    Example:

    >>> flags = {"text_column": "data.text_column", "label_column": "data.label_column",
    ...          "skip_bad_rows": "data.skip_bad_rows", "val_fraction": "data.val_fraction"}
    >>> in_flag_terms("pass text_column= and label_column=, or skip_bad_rows=True", flags)
    'pass --text-column and --label-column, or --skip-bad-rows'
    >>> in_flag_terms("`data.val_fraction` must be in (0, 1). Received: val_fraction=1.5", flags)
    '--val-fraction must be in (0, 1). Received: val_fraction=1.5'
    """
    for flag, dotted in field_flags.items():
        option = "--" + flag.replace("_", "-")
        leaf = dotted.rpartition(".")[2]
        for name in {dotted, leaf}:
            message = message.replace(f"`{name}`", option)
        message = re.sub(rf"\b{leaf}=True\b", option, message)
        # `leaf=` followed by nothing (an argument to fill in), not `leaf=value`.
        message = re.sub(rf"\b{leaf}=(?=[\s,.;)]|$)", option, message)
    return message


def _debug_callback(ctx, _param, value):
    if value:
        ctx.meta["tfx_transfer.debug"] = True


debug_option = click.option(
    "--debug", is_flag=True, expose_value=False, is_eager=True, callback=_debug_callback,
    help="On a failure, print the full traceback as well as the reason.")


def _invoke_reporting(invoke, ctx):
    try:
        return invoke(ctx)
    except (click.exceptions.Exit, click.Abort, SystemExit, KeyboardInterrupt):
        raise
    except click.ClickException as error:
        if ctx.meta.get("tfx_transfer.debug") and error.__cause__ is not None:
            traceback.print_exception(error.__cause__, file=sys.stderr)
        raise
    except Exception as error:
        if ctx.meta.get("tfx_transfer.debug"):
            raise
        raise click.ClickException(one_line(error) + _HINT) from error


class Command(click.Command):
    """A click command that reports an unexpected exception in one line (exit 1).

    Example:
    >>> @click.command(cls=Command)
    ... def fail():
    ...     raise RuntimeError("disk on fire")
    >>> from click.testing import CliRunner
    >>> result = CliRunner().invoke(fail, [])
    >>> result.exit_code, "Traceback" in result.output
    (1, False)
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        debug_option(self)

    def invoke(self, ctx):
        return _invoke_reporting(super().invoke, ctx)


class Group(click.Group):
    """A click group whose `--debug` reaches every subcommand (each a `Command`)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        debug_option(self)
