"""Reads a legacy `torch.save` state dict without torch, and without trusting it.

The file is a chain of pickles followed by raw tensor storages. A plain
`pickle.load` would run whatever the file names; the unpickler here admits
only the few globals a state dict of tensors needs and refuses the rest.
"""

import collections
import pathlib
import pickle

import numpy as np

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
