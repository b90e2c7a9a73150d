"""Training runs: `run(config)` and `python -m tfx_transfer.train`.

The pipeline is `pipeline.py`. It is loaded on first use, so that
`python -m tfx_transfer.train --help` answers without importing TensorFlow.
"""

_PIPELINE_NAMES = ("run", "RunResult", "resume_config", "new_run_dir", "CONFIG_FILE",
                   "DATA_REPORT_FILE")

__all__ = list(_PIPELINE_NAMES)


def __getattr__(name):
    if name in _PIPELINE_NAMES:
        from tfx_transfer import startup

        startup.import_tensorflow()
        from tfx_transfer.train import pipeline

        return getattr(pipeline, name)
    raise AttributeError(f"module 'tfx_transfer.train' has no attribute {name!r}")
