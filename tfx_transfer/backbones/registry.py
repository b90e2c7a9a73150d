"""Backbone registries: lookup by name, and the errors a missing backbone raises."""

import socket
import urllib.error

# What a failure to reach a host looks like, wherever it is raised: urllib
# (keras.utils.get_file), requests/urllib3 (keras-hub's Kaggle client), or
# the resolver itself.
_NETWORK_ERRORS = (ConnectionError, TimeoutError, socket.gaierror, urllib.error.URLError)


class WeightsUnavailableError(RuntimeError):
    """Raised when pretrained weights can be neither found nor downloaded."""


def registered(registry, name, kind):
    """Returns `registry[name]`, or raises an error listing the known names.

    Args:
        registry: dict. Name -> spec (`BACKBONES`, `TEXT_BACKBONES`).
        name: str. The name asked for.
        kind: str. What the registry holds, for the message ("backbone").

    Returns:
        The registered spec.

    Example:

    >>> registered({"tiny": 1}, "tiny", "backbone")
    1
    """
    if name not in registry:
        raise ValueError(
            f"Unknown {kind}. Choose one of {sorted(registry)}. Received: backbone={name!r}"
        )
    return registry[name]


def register(registry, spec, kind):
    """Adds `spec` to `registry` under `spec.name`; a taken name is an error.

    Args:
        registry: dict. Name -> spec.
        spec: a spec with a `name` (`BackboneSpec`, `TextBackboneSpec`).
        kind: str. What the registry holds, for the message.

    Returns:
        `spec`, so that it can be used as an expression.
    """
    if spec.name in registry:
        raise ValueError(f"A {kind} named {spec.name!r} is already registered.")
    registry[spec.name] = spec
    return spec


def is_network_error(error):
    """Whether `error`, or an error that caused it, is a failure to reach the network.

    Only then may a loader tell the user "this machine may have no network";
    any other failure (a bad file, a bug, a wrong argument) is reported as
    itself.

    Args:
        error: BaseException.

    Returns:
        bool.

    Example:

    >>> is_network_error(ValueError("bad shape"))
    False
    >>> is_network_error(socket.gaierror(-2, "Name or service not known"))
    True
    """
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, _NETWORK_ERRORS):
            return True
        error = error.__cause__ or error.__context__
    return False
