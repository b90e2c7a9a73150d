import collections
import hashlib
import os
import pathlib
import pickle
import sys
import types
import zipfile

import numpy as np
import pytest

from tfx_transfer import files
from tfx_transfer.backbones import torch_state_dict, weights

_MAGIC = 0x1950A86A20F9469CFC6C
_SYS_INFO = {
    "protocol_version": 1001,
    "little_endian": True,
    "type_sizes": {"short": 2, "int": 4, "long": 4},
}


# === A legacy `torch.save` writer, for crafting files torch would write ===


class _Storage:
    def __init__(self, key, data, view=None):
        self.key = key
        self.data = np.ascontiguousarray(data)
        self.view = view  # (view_key, offset, numel) as old torch pickled.


class _Tensor:
    def __init__(self, storage, offset, size, stride, rebuild="v2"):
        self.storage = storage
        self.args = (offset, tuple(size), tuple(stride))
        self.rebuild = rebuild

    def __reduce__(self):
        utils = sys.modules["torch._utils"]
        if self.rebuild == "v2":
            hooks = collections.OrderedDict()
            return (
                utils._rebuild_tensor_v2,
                (self.storage, *self.args, False, hooks),
            )
        return (utils._rebuild_tensor, (self.storage, *self.args))


_STORAGE_NAMES = {
    np.dtype("float32"): "FloatStorage",
    np.dtype("float16"): "HalfStorage",
    np.dtype("int64"): "LongStorage",
}


def _fake_torch():
    # Only names, so `pickle` can write the globals a real file holds; the
    # reader never sees these objects.
    torch = types.ModuleType("torch")
    utils = types.ModuleType("torch._utils")
    for name in ("_rebuild_tensor", "_rebuild_tensor_v2"):

        def stub(*args):
            raise AssertionError("never called: only pickled by name")

        stub.__module__ = "torch._utils"
        stub.__name__ = stub.__qualname__ = name
        setattr(utils, name, stub)
    for name in _STORAGE_NAMES.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch._utils = utils
    return torch, utils


def _write_legacy_torch_file(path, state, header=(_MAGIC, 1001, _SYS_INFO)):
    """Writes `state` ({name: _Tensor}) the way legacy `torch.save` does."""
    roots = {}
    for tensor in state.values():
        roots.setdefault(tensor.storage.key, tensor.storage)

    with pytest.MonkeyPatch.context() as patch:
        torch, utils = _fake_torch()
        patch.setitem(sys.modules, "torch", torch)
        patch.setitem(sys.modules, "torch._utils", utils)

        class Pickler(pickle.Pickler):
            def persistent_id(self, obj):
                if not isinstance(obj, _Storage):
                    return None
                storage_type = getattr(torch, _STORAGE_NAMES[obj.data.dtype])
                return (
                    "storage",
                    storage_type,
                    obj.key,
                    "cpu",
                    obj.data.size,
                    obj.view,
                )

        with open(path, "wb") as f:
            for item in header:
                pickle.dump(item, f, protocol=2)
            Pickler(f, protocol=2).dump(collections.OrderedDict(state))
            pickle.dump(list(roots), f, protocol=2)
            for storage in roots.values():
                f.write(np.int64(storage.data.size).tobytes())
                little_endian = storage.data.dtype.newbyteorder("<")
                f.write(storage.data.astype(little_endian).tobytes())
    return path


# === Hashing and cache location ===


def test_cache_dir_follows_env_and_creates_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("TFX_TRANSFER_HOME", str(tmp_path / "home"))
    assert files.cache_dir() == tmp_path / "home"
    monkeypatch.delenv("TFX_TRANSFER_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert files.cache_dir() == tmp_path / ".cache" / "tfx_transfer"
    assert list(tmp_path.iterdir()) == []


def test_sha256_file_streams_large_files(tmp_path):
    data = np.random.default_rng(0).bytes(3 * (1 << 20) + 17)
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert files.sha256_file(path) == hashlib.sha256(data).hexdigest()


def test_verify_sha256_names_path_and_both_hashes(tmp_path):
    path = tmp_path / "w.bin"
    path.write_bytes(b"weights")
    actual = hashlib.sha256(b"weights").hexdigest()
    weights.verify_sha256(path, actual)
    wrong = "0" * 64
    with pytest.raises(weights.WeightsIntegrityError) as info:
        weights.verify_sha256(path, wrong)
    message = str(info.value)
    assert str(path) in message and wrong in message and actual in message
    assert "delete" in message.lower() and "reinstall" in message.lower()


def test_verify_sha256_missing_file(tmp_path):
    path = tmp_path / "absent.bin"
    with pytest.raises(weights.WeightsIntegrityError, match="missing") as info:
        weights.verify_sha256(path, "0" * 64)
    assert str(path) in str(info.value)


def test_pinned_checkpoint_is_found_and_verified():
    path = weights.efficientnet_lite0_pth_path()
    assert path.name == "efficientnet-lite0-57934424.pth"
    assert files.sha256_file(path) == weights.EFFICIENTNET_LITE0_PTH_SHA256


# === The legacy torch reader ===


def test_load_real_checkpoint():
    state = torch_state_dict.load_torch_state_dict(weights.efficientnet_lite0_pth_path())
    assert len(state) == 296
    assert state["_conv_stem.weight"].shape == (32, 3, 3, 3)
    assert state["_blocks.15._depthwise_conv.weight"].shape == (1152, 1, 3, 3)
    assert state["_fc.weight"].shape == (1000, 1280)
    assert state["_fc.weight"].dtype == np.float32
    assert state["_bn0.num_batches_tracked"].dtype == np.int64
    # Arrays are copies the caller owns, not views into file bytes.
    assert all(a.flags.owndata or a.base is None for a in state.values())
    assert state["_bn0.running_var"].min() >= 0


def test_load_strided_views_offsets_and_shared_storage(tmp_path):
    data = np.arange(24, dtype=np.float32)
    shared = _Storage("s0", data)
    # An old-style storage view: elements 4..19 of a root storage.
    view = _Storage("s1", np.arange(100, 130, dtype=np.float32), ("v1", 4, 16))
    state = {
        "contiguous": _Tensor(shared, 0, (2, 3, 4), (12, 4, 1)),
        "transposed": _Tensor(shared, 0, (4, 6), (1, 4)),
        "offset": _Tensor(shared, 6, (3,), (2,), rebuild="v1"),
        "view": _Tensor(view, 2, (2, 3), (3, 1)),
        "half": _Tensor(_Storage("s2", np.array([0.5, -2], "float16")), 0, (2,), (1,)),
        "scalar": _Tensor(_Storage("s3", np.array([7], "int64")), 0, (), ()),
    }
    path = _write_legacy_torch_file(tmp_path / "crafted.pth", state)

    loaded = torch_state_dict.load_torch_state_dict(path)

    assert list(loaded) == list(state)
    np.testing.assert_array_equal(loaded["contiguous"], data.reshape(2, 3, 4))
    np.testing.assert_array_equal(loaded["transposed"], data.reshape(6, 4).T)
    np.testing.assert_array_equal(loaded["offset"], [6, 8, 10])
    np.testing.assert_array_equal(
        loaded["view"], np.arange(106, 112, dtype=np.float32).reshape(2, 3)
    )
    assert loaded["half"].dtype == np.float16
    np.testing.assert_array_equal(loaded["half"], [0.5, -2])
    assert loaded["scalar"].shape == () and loaded["scalar"] == 7
    loaded["transposed"][0, 0] = -1.0  # A writable copy.


def test_forbidden_global_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        for item in (_MAGIC, 1001, _SYS_INFO):
            pickle.dump(item, f, protocol=2)
        pickle.dump(collections.OrderedDict(x=Payload()), f, protocol=2)
        pickle.dump([], f, protocol=2)

    with pytest.raises(pickle.UnpicklingError) as info:
        torch_state_dict.load_torch_state_dict(path)
    assert f"{os.system.__module__}.system" in str(info.value)
    assert str(path) in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    "module, name",
    [
        ("builtins", "eval"),
        ("torch", "load"),
        ("torch._utils", "_rebuild_parameter"),
        ("collections", "namedtuple"),
        ("numpy", "load"),
    ],
)
def test_only_state_dict_globals_are_admitted(tmp_path, module, name):
    path = tmp_path / "global.pth"
    with open(path, "wb") as f:
        for item in (_MAGIC, 1001, _SYS_INFO):
            pickle.dump(item, f, protocol=2)
        # GLOBAL, EMPTY_TUPLE, REDUCE, STOP: "call module.name()".
        f.write(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b")R.")
    with pytest.raises(pickle.UnpicklingError, match=f"{module}.{name}"):
        torch_state_dict.load_torch_state_dict(path)


def test_zip_format_is_refused(tmp_path):
    path = tmp_path / "new_format.pth"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", b"")
    with pytest.raises(ValueError, match="zip-format.*not supported") as info:
        torch_state_dict.load_torch_state_dict(path)
    assert str(path) in str(info.value)


@pytest.mark.parametrize(
    "header, match",
    [
        ((12345, 1001, _SYS_INFO), "bad magic number"),
        ((_MAGIC, 1000, _SYS_INFO), "protocol 1000"),
        ((_MAGIC, 1001, {"little_endian": False}), "little-endian"),
    ],
)
def test_bad_header_is_refused(tmp_path, header, match):
    state = {"w": _Tensor(_Storage("0", np.zeros(2, "float32")), 0, (2,), (1,))}
    path = _write_legacy_torch_file(tmp_path / "bad.pth", state, header)
    with pytest.raises(ValueError, match=match) as info:
        torch_state_dict.load_torch_state_dict(path)
    assert str(path) in str(info.value)


def test_not_a_pickle_is_refused(tmp_path):
    path = tmp_path / "noise.pth"
    path.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(64))
    with pytest.raises(ValueError, match="not a valid legacy torch.save"):
        torch_state_dict.load_torch_state_dict(path)


def test_view_past_its_storage_is_refused(tmp_path):
    # `as_strided` would read whatever memory follows; the reader must not.
    storage = _Storage("0", np.zeros(4, "float32"))
    state = {"w": _Tensor(storage, 1, (2, 2), (2, 1))}
    path = _write_legacy_torch_file(tmp_path / "oob.pth", state)
    with pytest.raises(ValueError, match="reaches past its storage"):
        torch_state_dict.load_torch_state_dict(path)


def test_truncated_file_is_refused(tmp_path):
    state = {"w": _Tensor(_Storage("0", np.ones(64, "float32")), 0, (64,), (1,))}
    path = _write_legacy_torch_file(tmp_path / "whole.pth", state)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match="truncated"):
        torch_state_dict.load_torch_state_dict(path)


# === The verified cache ===


class _Builder:
    """Writes fixed bytes and counts how often it was asked to."""

    def __init__(self, payload=b"converted weights"):
        self.payload = payload
        self.calls = 0

    def __call__(self, path):
        self.calls += 1
        assert path.name.endswith("-model.weights.h5")
        pathlib.Path(path).write_bytes(self.payload)


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("TFX_TRANSFER_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


def test_cached_file_builds_once_with_sidecar(home):
    build = _Builder()
    path = weights.cached_file("model.weights.h5", build)
    again = weights.cached_file("model.weights.h5", build)

    assert path == again == home / "weights" / "model.weights.h5"
    assert build.calls == 1
    sidecar = home / "weights" / "model.weights.h5.sha256"
    assert sidecar.read_text().strip() == files.sha256_file(path)
    # Only the file and its sidecar: no temporary files left behind.
    assert sorted(p.name for p in (home / "weights").iterdir()) == [
        "model.weights.h5",
        "model.weights.h5.sha256",
    ]


def test_cached_file_refuses_tampered_file(home):
    path = weights.cached_file("model.weights.h5", _Builder())
    expected = files.sha256_file(path)
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01
    path.write_bytes(bytes(data))
    actual = files.sha256_file(path)

    with pytest.raises(weights.WeightsIntegrityError) as info:
        weights.cached_file("model.weights.h5", _Builder())
    message = str(info.value)
    assert expected in message and actual in message and str(path) in message
    assert "delete" in message.lower()


@pytest.mark.parametrize("removed", ["model.weights.h5", "model.weights.h5.sha256"])
def test_cached_file_rebuilds_missing_file_or_sidecar(home, removed):
    weights.cached_file("model.weights.h5", _Builder())
    (home / "weights" / removed).unlink()
    build = _Builder()
    path = weights.cached_file("model.weights.h5", build)
    assert build.calls == 1
    assert path.read_bytes() == build.payload


def test_cached_file_refuses_malformed_sidecar(home):
    path = weights.cached_file("model.weights.h5", _Builder())
    sidecar = path.with_name(path.name + ".sha256")
    sidecar.write_text("not a digest\n")
    with pytest.raises(weights.WeightsIntegrityError, match="sidecar|Sidecar"):
        weights.cached_file("model.weights.h5", _Builder())


def test_failed_build_leaves_nothing_behind(home):
    def failing_build(path):
        pathlib.Path(path).write_bytes(b"half")
        raise RuntimeError("conversion failed")

    with pytest.raises(RuntimeError, match="conversion failed"):
        weights.cached_file("model.weights.h5", failing_build)
    assert list((home / "weights").iterdir()) == []
