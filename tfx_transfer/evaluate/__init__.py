"""The evaluation report: metrics, intervals, baselines, entity scores and plots.

`report` scores a test split and writes `metrics.json` and `report.txt`;
`intervals` gives the 95% intervals; `baselines` the cheap models every
report compares against; `entities` the entity-level scores of the token
task; `plots` the figures.
"""

from tfx_transfer.evaluate.plots import plot_confusion_matrix, plot_training_curves
from tfx_transfer.evaluate.report import (
    baseline_text,
    classification_body,
    classification_metrics,
    compare_to_baseline,
    converted_line,
    format_report,
    predict_dataset,
    write_files,
)

__all__ = [
    "baseline_text",
    "classification_body",
    "classification_metrics",
    "compare_to_baseline",
    "converted_line",
    "format_report",
    "plot_confusion_matrix",
    "plot_training_curves",
    "predict_dataset",
    "write_files",
]
