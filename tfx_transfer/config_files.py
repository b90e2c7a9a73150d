"""A `RunConfig` as a YAML or JSON file: a run directory's `config.yaml`, or `--config`."""

import json
from pathlib import Path

import yaml

from tfx_transfer.config import RunConfig
from tfx_transfer.files import write_atomic


def load_config(path):
    """Reads a `RunConfig` from a YAML or JSON file.

    Args:
        path: str or Path. The file; `.json` is read as JSON, anything else
            as YAML.

    Returns:
        A `RunConfig`.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Config file not found: {path}")
    text = path.read_text()
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        raise ValueError(f"{path}: not valid YAML/JSON: {error}") from error
    if data is not None and not isinstance(data, dict):
        raise ValueError(f"{path}: the top level must be a mapping.")
    try:
        return RunConfig.from_dict(data, source=str(path))
    except ValueError as error:
        # A range check of the config classes knows the key, not the file.
        if str(error).startswith(str(path)):
            raise
        raise ValueError(f"{path}: {error}") from error


def save_config(config, path):
    """Writes `config` as YAML to `path`."""
    write_atomic(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
