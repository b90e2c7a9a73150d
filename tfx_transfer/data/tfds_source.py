"""`--data tfds:NAME[/CONFIG][:VERSION]`: a tensorflow-datasets dataset as the task's files.

A TFDS dataset is written once, into the cache, in the format the task
already reads: an image tree with `train/ val/ test/` folders (the encoded
image bytes as stored, not re-encoded), JSONL files of `text`/`label`, or
tab-separated CoNLL files. Every check, split rule, report and cache key of
the file readers then applies unchanged, and a resumed run finds the same
files. The dataset's own train/validation/test splits are kept; a missing
one is carved from train by the reader, stratified and seeded.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import socket
import tempfile
from pathlib import Path

from tfx_transfer.files import cache_dir
from tfx_transfer.progress import say

PREFIX = "tfds:"
# TFDS split names that mean validation or test, in order of preference.
_VAL_SPLITS = ("validation", "val", "valid", "dev")
_TEST_SPLITS = ("test",)
# Preferred feature names when a dataset has several candidates.
_PREFERRED_INPUTS = ("image", "text", "sentence", "review", "content", "tokens", "words")
_PREFERRED_LABELS = ("label", "ner", "ner_tags", "tags")
# Bump when the written layout changes, so old copies are not reused.
_LAYOUT_VERSION = 1


def is_tfds(path):
    """Whether a `--data` value names a TFDS dataset (`tfds:NAME...`)."""
    return isinstance(path, str) and path.startswith(PREFIX)


def parse_spec(path):
    """Splits `tfds:NAME[/CONFIG][:VERSION]` into TFDS's own `NAME[/CONFIG][:VERSION]`.

    Args:
        path: str. The `--data` value.

    Returns:
        The dataset string `tfds.builder` takes.

    Example:

    >>> parse_spec("tfds:glue/sst2:2.0.0")
    'glue/sst2:2.0.0'
    """
    spec = path[len(PREFIX):].strip()
    name = spec.split("/")[0].split(":")[0]
    if not name or not name.replace("_", "").isalnum() or spec.count(":") > 1:
        raise ValueError(f"`data.path` {path!r} is not a TFDS dataset name: use "
                         "tfds:NAME, tfds:NAME/CONFIG or tfds:NAME/CONFIG:VERSION "
                         "(e.g. tfds:tf_flowers, tfds:glue/sst2:2.0.0).")
    return spec


def local_data_config(data_config, task):
    """The `DataConfig` of a TFDS dataset written out as the task's files; others as given.

    Args:
        data_config: DataConfig. `path` may be a `tfds:` string.
        task: str. "images", "text" or "tokens": the format to write.

    Returns:
        A `DataConfig` whose `path`, `val_path` and `test_path` are local files.
    """
    if not is_tfds(data_config.path):
        return data_config
    files = materialize(data_config.path, task, data_dir=data_config.tfds_data_dir,
                        input_key=data_config.input_key, label_key=data_config.label_key)
    return dataclasses.replace(
        data_config, path=str(files["train"]), val_path=_str(files.get("val")),
        test_path=_str(files.get("test")), text_column="text", label_column="label",
    )


def _str(path):
    return None if path is None else str(path)


def materialize(path, task, data_dir=None, input_key=None, label_key=None):
    """Writes a TFDS dataset's splits as the task's files (once; later calls reuse them).

    Args:
        path: str. `tfds:NAME[/CONFIG][:VERSION]`.
        task: str. "images", "text" or "tokens".
        data_dir: str or None. TFDS's data directory (`--tfds-data-dir`);
            None is TFDS's default (`$TFDS_DATA_DIR` or ~/tensorflow_datasets).
        input_key: str or None. The feature holding the image, text or
            words; None infers it from the features.
        label_key: str or None. The ClassLabel feature (a Sequence of them
            for tokens); None infers it.

    Returns:
        A dict `{"train": Path, "val": Path, "test": Path}`, without the
        splits the dataset does not have (the reader carves those). For
        images the train entry is the tree's root folder.
    """
    builder = _prepared_builder(path, data_dir)
    keys = _infer_keys(builder.info.features, task, input_key, label_key, path)
    splits = _choose_splits(builder.info.splits, path)
    identity = {"dataset": builder.info.full_name, "task": task, "keys": keys,
                "splits": splits, "layout": _LAYOUT_VERSION}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:16]
    target = cache_dir() / "tfds" / builder.info.full_name.replace("/", "_") / digest
    if not (target / "done.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written beside its final name, then renamed: never a half-written copy.
        scratch = Path(tempfile.mkdtemp(prefix=".writing-", dir=target.parent))
        try:
            counts = _WRITERS[task](builder, keys, splits, scratch)
            (scratch / "done.json").write_text(json.dumps({**identity, "counts": counts}))
            if target.exists():
                shutil.rmtree(target)
            os.replace(scratch, target)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        say(f"Wrote {builder.info.full_name} as {task} files to {target}: "
            + ", ".join(f"{name} {count}" for name, count in counts.items()))
    if task == "images":
        return {"train": target}
    suffix = ".jsonl" if task == "text" else ".conll"
    return {name: target / f"{name}{suffix}" for name in splits}


def _prepared_builder(path, data_dir):
    import tensorflow_datasets as tfds

    spec = parse_spec(path)
    try:
        builder = tfds.builder(spec, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError as error:
        first = str(error).splitlines()[0]
        raise ValueError(f"`data.path` {path!r}: {first} See the catalogue at "
                         "https://www.tensorflow.org/datasets/catalog.") from error
    if builder.is_prepared():
        return builder
    where = data_dir or "TFDS's default data directory"
    if not online():
        raise FileNotFoundError(
            f"TFDS dataset {spec!r} is not prepared in {where}, and this machine cannot "
            "reach the network to download it. Prepare it first on a machine with a "
            f"network (python -c \"import tensorflow_datasets as tfds; tfds.load('{spec}', "
            "data_dir='DIR')\"), copy DIR here, and pass --tfds-data-dir DIR.")
    say(f"Downloading and preparing TFDS dataset {spec} into {where}...")
    builder.download_and_prepare()
    return builder


def online():
    """Whether TFDS's download host answers; False fails fast instead of retrying for minutes."""
    if os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy"):
        return True
    try:
        socket.create_connection(("storage.googleapis.com", 443), timeout=5).close()
        return True
    except OSError:
        return False


def _infer_keys(features, task, input_key, label_key, path):
    import tensorflow_datasets as tfds

    f = tfds.features

    def is_label(feature):
        if task == "tokens":
            return (isinstance(feature, f.Sequence)
                    and isinstance(feature.feature, f.ClassLabel))
        return isinstance(feature, f.ClassLabel)

    def is_input(feature):
        if task == "images":
            return isinstance(feature, f.Image)
        if task == "text":
            return isinstance(feature, f.Text)
        return isinstance(feature, f.Sequence) and isinstance(feature.feature, f.Text)

    kinds = {"images": "Image feature", "text": "Text feature",
             "tokens": "Sequence of Text (the words)"}
    chosen_input = _pick(features, is_input, input_key, _PREFERRED_INPUTS,
                         kinds[task], "--image-key/--text-key", path)
    chosen_label = _pick(features, is_label, label_key, _PREFERRED_LABELS,
                         "Sequence of ClassLabel (the tags)" if task == "tokens"
                         else "ClassLabel feature", "--label-key", path)
    return {"input": chosen_input, "label": chosen_label}


def _pick(features, accepts, given, preferred, kind, flag, path):
    names = list(features.keys())
    if given is not None:
        if given not in features:
            raise ValueError(f"{flag} {given!r}: {path} has no such feature; it has "
                             f"{', '.join(names)}.")
        if not accepts(features[given]):
            raise ValueError(f"{flag} {given!r} of {path} is a {type(features[given]).__name__}, "
                             f"not a usable {kind}.")
        return given
    candidates = [name for name in names if accepts(features[name])]
    if not candidates:
        raise ValueError(f"{path} has no {kind}: its features are "
                         f"{', '.join(f'{n} ({type(features[n]).__name__})' for n in names)}.")
    if len(candidates) == 1:
        return candidates[0]
    for name in preferred:
        if name in candidates:
            return name
    raise ValueError(f"{path} has several candidates for the {kind}: {', '.join(candidates)}. "
                     f"Choose one with {flag}.")


def _choose_splits(available, path):
    names = set(available.keys())
    if "train" not in names:
        raise ValueError(f"{path} has no 'train' split (it has {', '.join(sorted(names))}).")
    splits = {"train": "train"}
    for ours, theirs in (("val", _VAL_SPLITS), ("test", _TEST_SPLITS)):
        found = [name for name in theirs if name in names]
        if found:
            splits[ours] = found[0]
    return splits


def _examples(builder, split, skip_decoding=()):
    import tensorflow_datasets as tfds

    decoders = {key: tfds.decode.SkipDecoding() for key in skip_decoding}
    dataset = builder.as_dataset(split=split, decoders=decoders or None, shuffle_files=False)
    return tfds.as_numpy(dataset)


def _write_images(builder, keys, splits, folder):
    names = builder.info.features[keys["label"]].names
    counts = {}
    for ours, theirs in splits.items():
        count = 0
        for index, example in enumerate(_examples(builder, theirs, [keys["input"]])):
            data = bytes(example[keys["input"]])
            class_dir = folder / ours / _safe(names[int(example[keys["label"]])])
            class_dir.mkdir(parents=True, exist_ok=True)
            (class_dir / f"{index:07d}{_extension(data)}").write_bytes(data)
            count += 1
        counts[ours] = count
    return counts


def _write_texts(builder, keys, splits, folder):
    names = builder.info.features[keys["label"]].names
    counts = {}
    for ours, theirs in splits.items():
        lines = []
        for example in _examples(builder, theirs):
            text = example[keys["input"]]
            text = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
            lines.append(json.dumps({"text": text, "label": names[int(example[keys["label"]])]},
                                    ensure_ascii=False))
        (folder / f"{ours}.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
        counts[ours] = len(lines)
    return counts


def _write_conll(builder, keys, splits, folder):
    names = builder.info.features[keys["label"]].feature.names
    counts = {}
    for ours, theirs in splits.items():
        blocks = []
        for example in _examples(builder, theirs):
            rows = []
            for word, tag in zip(example[keys["input"]], example[keys["label"]]):
                word = word.decode("utf-8", "replace") if isinstance(word, bytes) else str(word)
                # One token per line, tab-separated: inner whitespace would split it.
                word = "_".join(word.split())
                if word:
                    rows.append(f"{word}\t{names[int(tag)]}")
            if rows:
                blocks.append("\n".join(rows))
        (folder / f"{ours}.conll").write_text("\n\n".join(blocks) + "\n", encoding="utf-8")
        counts[ours] = len(blocks)
    return counts


_WRITERS = {"images": _write_images, "text": _write_texts, "tokens": _write_conll}


def _safe(name):
    """A class name as a folder name: path separators and leading dots cannot be kept."""
    name = str(name).replace("/", "_").replace("\\", "_").strip()
    return name.lstrip(".") or "_"


def _extension(data):
    if data.startswith(b"\x89PNG"):
        return ".png"
    if data.startswith(b"\xff\xd8"):
        return ".jpg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return ".gif"
    if data.startswith(b"BM"):
        return ".bmp"
    # WebP and others: the folder reader names the file it cannot use.
    return ".png"
