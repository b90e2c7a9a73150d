"""report.txt's confusion matrix carries its class labels, as the PNG does."""

import doctest

import numpy as np

from tfx_transfer.evaluate import report


def test_the_confusion_matrix_rows_and_columns_are_labelled():
    names = ["business", "entertainment", "sport"]
    y_true = np.array([0, 0, 1, 1, 2, 2, 2])
    probabilities = np.eye(3)[[0, 1, 1, 1, 2, 2, 0]]
    text = report.classification_body(report.classification_metrics(y_true, probabilities, names))
    matrix = text.split("Confusion matrix (rows: true, columns: predicted):\n")[1].splitlines()
    assert matrix[0].split() == ["business", "entertai", "sport"]
    assert [line.split() for line in matrix[1:]] == [
        ["business", "1", "1", "0"], ["entertainment", "0", "2", "0"], ["sport", "1", "0", "2"]]
    # Right-aligned under their heads.
    assert len({len(line) for line in matrix}) == 1


def test_the_example_runs():
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(report.confusion_lines,
                                            globs={"confusion_lines": report.confusion_lines}):
        runner.run(test)
    assert runner.failures == 0 and runner.tries == 1
