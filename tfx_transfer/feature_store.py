"""Backbone features kept on disk: one folder per key, written atomically, checked on load."""

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np


class FeatureCache:
    """Stored feature arrays on disk, one folder per key, written atomically.

    An entry `<directory>/<key>/` holds one `.npy` file per array and a
    `meta.json` (description, shapes, dtypes, SHA-256 of each array,
    creation time). An entry that is missing a file, does not match its
    checksums or holds the wrong number of arrays is ignored with a
    warning, so the caller computes the features again and overwrites it.

    The cache is bounded: after each `save`, the least recently used
    entries (by their last `load` or `save`) are removed until the cache
    holds at most `max_bytes`; the entry just saved always stays.

    Args:
        directory: str or Path. Created on the first `save`.
        max_bytes: int or None. The size bound; None for none.

    Example:

    >>> cache = FeatureCache(weights.cache_dir() / "features")
    >>> key = cache.key({"data": "...", "weights": weights_fingerprint(extractor)})
    >>> arrays = cache.load(key)  # None: not stored yet, or broken
    """

    FORMAT = 1  # Bump when the layout changes: old entries then never match.
    META = "meta.json"
    _BROKEN = (OSError, ValueError, KeyError, TypeError, EOFError)

    def __init__(self, directory, max_bytes=None):
        self.directory = Path(directory)
        self.max_bytes = max_bytes

    def key(self, description):
        """Returns the key of a JSON-able `description`: SHA-256 of its sorted JSON."""
        text = json.dumps([self.FORMAT, description], sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def load(self, key):
        """Returns the tuple of arrays stored under `key`, or None (absent or broken)."""
        entry = self.directory / key
        if not entry.exists():
            return None
        try:
            arrays = self._read(entry)
            os.utime(entry / self.META)  # Recently used: evicted last.
            return arrays
        except self._BROKEN as error:
            print(f"Warning: ignoring broken feature cache entry {entry} "
                  f"({type(error).__name__}: {error}); computing its features again.")
            return None

    def save(self, key, arrays, description):
        """Stores `arrays` under `key`, with `description` in its meta.json.

        Everything is written to a hidden temporary sibling folder that is
        then renamed into place, so a reader never sees half an entry.

        Args:
            key: str. From `key(description)`.
            arrays: sequence of NumPy arrays.
            description: dict. JSON-able; what the features were made from.

        Returns:
            The entry's Path.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        # Hidden and named unlike a key: `load` never takes it for an entry.
        temp = Path(tempfile.mkdtemp(prefix=f".{key[:12]}.", suffix=".tmp",
                                     dir=self.directory))
        try:
            meta = {"description": description, "shapes": [], "dtypes": [], "sha256": [],
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
            for index, array in enumerate(arrays):
                array = np.ascontiguousarray(array)
                np.save(temp / f"{index}.npy", array, allow_pickle=False)
                meta["shapes"].append(list(array.shape))
                meta["dtypes"].append(str(array.dtype))
                meta["sha256"].append(hashlib.sha256(array).hexdigest())
            (temp / self.META).write_text(json.dumps(meta, indent=2))
            self._publish(temp, self.directory / key)
        finally:
            shutil.rmtree(temp, ignore_errors=True)  # Gone already if published.
        self.evict(keep=key)
        return self.directory / key

    def entries(self):
        """The stored entries, least recently used first.

        Returns:
            A list of dicts: `key`, `bytes`, `last_used` (seconds since the
            epoch) and `description` (None for an entry without a readable
            meta.json).
        """
        found = []
        if not self.directory.is_dir():
            return found
        for entry in self.directory.iterdir():
            if entry.name.startswith(".") or not entry.is_dir():
                continue  # Writes in progress, or moved aside for removal.
            meta = entry / self.META
            try:
                used, description = meta.stat().st_mtime, json.loads(meta.read_text())
            except (OSError, ValueError):
                used, description = entry.stat().st_mtime, None
            found.append({
                "key": entry.name, "last_used": used,
                "bytes": sum(f.stat().st_size for f in entry.iterdir() if f.is_file()),
                "description": (description or {}).get("description"),
            })
        return sorted(found, key=lambda item: item["last_used"])

    def evict(self, keep=None):
        """Removes least recently used entries until the cache fits `max_bytes`.

        Args:
            keep: str or None. A key never removed (the entry just written).

        Returns:
            The list of removed keys.
        """
        if self.max_bytes is None:
            return []
        entries = self.entries()
        total, removed = sum(item["bytes"] for item in entries), []
        for item in entries:
            if total <= self.max_bytes:
                break
            if item["key"] == keep:
                continue
            self.remove(item["key"])
            total -= item["bytes"]
            removed.append(item["key"])
        return removed

    def remove(self, key):
        """Removes one entry, renamed aside first so no reader sees it half-deleted."""
        entry = self.directory / key
        stale = entry.with_name(f".{key[:12]}.{uuid.uuid4().hex}.stale")
        with contextlib.suppress(FileNotFoundError):
            os.rename(entry, stale)
        shutil.rmtree(stale, ignore_errors=True)

    def _read(self, entry):
        meta = json.loads((entry / self.META).read_text())
        if self.key(meta["description"]) != entry.name:
            raise ValueError("its description does not match its key")
        count = len(meta["shapes"])
        if len(list(entry.glob("*.npy"))) != count:
            raise ValueError(f"meta.json lists {count} arrays; the folder holds more or fewer")
        arrays = []
        for index, (shape, dtype, digest) in enumerate(
            zip(meta["shapes"], meta["dtypes"], meta["sha256"], strict=True)
        ):
            # No pickles: a cache folder must not be a way to run code.
            array = np.load(entry / f"{index}.npy", allow_pickle=False)
            if list(array.shape) != shape or str(array.dtype) != dtype:
                raise ValueError(
                    f"array {index} is {array.dtype}{array.shape}, not {dtype}{shape}"
                )
            # Renames are atomic but not durable: a power cut can leave a
            # truncated file behind the rename, which this catches.
            if hashlib.sha256(np.ascontiguousarray(array)).hexdigest() != digest:
                raise ValueError(f"array {index} does not match its SHA-256")
            arrays.append(array)
        return tuple(arrays)

    def _publish(self, temp, entry):
        for attempt in range(2):
            try:
                os.rename(temp, entry)  # Atomic; refused while `entry` exists.
                return
            except OSError:
                if not entry.is_dir():
                    raise
            if attempt or self._is_valid(entry):
                return  # A concurrent writer stored the same features first.
            # A broken entry, which `load` refused: moved aside, then replaced.
            self.remove(entry.name)

    def _is_valid(self, entry):
        try:
            self._read(entry)
        except self._BROKEN:
            return False
        return True
