"""Checks plain data (a YAML/JSON file, flags) against a config dataclass's fields.

A YAML file can say anything: `epochs: five`, `seed: "3"`, `augment: yes`
where a mapping belongs. Without a check, such a value reaches the
dataclass's own range checks and fails there as a bare `TypeError`
('<' not supported between 'str' and 'int') that names neither the file
nor the key. Here every scalar field is checked against its annotation
first, so the message names both.
"""

import dataclasses
import types
import typing

_SCALARS = {bool: "true or false", int: "an integer", float: "a number", str: "a string",
            type(None): "null"}


def field_names(cls):
    """The field names of a config dataclass."""
    return {field.name for field in dataclasses.fields(cls)}


def _expected(value, hint):
    """None when `value` fits the annotation `hint`, else what the field takes, in words."""
    union = typing.get_origin(hint) in (typing.Union, types.UnionType)
    options = typing.get_args(hint) if union else (hint,)
    for option in options:
        if option not in _SCALARS:
            return None  # Tuples, nested configs: their own checks apply.
        if option is bool and isinstance(value, bool):
            return None
        if option in (int, float) and isinstance(value, int) and not isinstance(value, bool):
            return None
        if option in (float, str, type(None)) and isinstance(value, option):
            return None
    return " or ".join(_SCALARS[option] for option in options)


def check_fields(cls, values, source, skip=()):
    """Raises a ValueError naming `source` and the key for an unknown or mistyped field.

    Args:
        cls: a config dataclass.
        values: dict. Field name -> value, as read.
        source: str. Where the values came from ("run.yaml: data").
        skip: names whose values the caller checks itself.

    Example:

    >>> check_fields(StageConfig, {"name": "head", "epochs": "five"}, "run.yaml: stages[0]")
    Traceback (most recent call last):
    ...
    ValueError: run.yaml: stages[0]: `epochs` must be an integer. Received: epochs='five'
    """
    unknown = sorted(set(values) - field_names(cls))
    if unknown:
        raise ValueError(f"{source}: unknown field(s) {unknown}. Known fields: "
                         f"{sorted(field_names(cls))}")
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        expected = None if name in skip else _expected(value, hints[name])
        if expected:
            raise ValueError(f"{source}: `{name}` must be {expected}. "
                             f"Received: {name}={value!r}")


def check_fractions(val_fraction, test_fraction, allow_empty=False, prefix=""):
    """Raises a ValueError unless the held-out fractions leave data to train on.

    One rule for every reader and for the run config. A run needs a
    validation split (early stopping, stage selection) and a test split
    (the report), so its fractions lie in (0, 1); a reader may also be
    asked for an empty split (`allow_empty`, [0, 1)).

    Args:
        val_fraction: float. Share held out for validation.
        test_fraction: float. Share held out for the test report.
        allow_empty: bool. Accept 0, which leaves that split empty.
        prefix: str. Put before the field names in the message ("data.").

    Example:

    >>> check_fractions(0.15, 0.15)
    >>> check_fractions(0.0, 0.1, allow_empty=True)
    """
    for name, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        low_ok = value >= 0 if allow_empty else value > 0
        if not (low_ok and value < 1):
            interval = "[0, 1)" if allow_empty else "(0, 1)"
            raise ValueError(
                f"`{prefix}{name}` must be in {interval}. Received: {name}={value}"
            )
    if val_fraction + test_fraction >= 1:
        raise ValueError(
            f"`{prefix}val_fraction + {prefix}test_fraction` must be below 1 to "
            f"leave examples to train on. Received: val_fraction={val_fraction}, "
            f"test_fraction={test_fraction}"
        )
