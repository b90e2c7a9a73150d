"""Exit codes: 0 success, 2 usage error, 1 failure in one line; a traceback only with --debug."""

import pytest
from click.testing import CliRunner

from tfx_transfer.cli import main
from tfx_transfer.cli_errors import one_line


@pytest.fixture
def corrupt_saved_model(tmp_path):
    # Not a mock: a real file that TensorFlow's SavedModel loader fails to parse.
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "saved_model.pb").write_bytes(b"\x08\x96\x01 this is not a protobuf " * 40)
    return folder


def _run(args):
    return CliRunner().invoke(main, args)


def test_an_unexpected_failure_is_one_line_and_exit_1(corrupt_saved_model):
    result = _run(["predict", str(corrupt_saved_model), "hello"])
    assert result.exit_code == 1
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: OSError: ")
    assert "saved_model.pb" in lines[0] and "--debug" in lines[0]
    assert "Traceback" not in result.output


@pytest.mark.parametrize("where", ["group", "command"])
def test_debug_shows_the_traceback(corrupt_saved_model, where):
    args = ["predict", str(corrupt_saved_model), "hello"]
    args = ["--debug", *args] if where == "group" else [*args, "--debug"]
    result = _run(args)
    assert result.exit_code == 1
    # The exception reaches the runner unconverted: click would print its traceback.
    assert isinstance(result.exception, OSError)


def test_a_known_failure_keeps_its_own_message(tmp_path):
    result = _run(["predict", str(tmp_path), "hello"])
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: ") and "Traceback" not in result.output
    assert "OSError" not in result.stderr and str(tmp_path) in result.stderr


@pytest.mark.parametrize("args", [["predict"], ["predict", "--bogus"], ["no-such-command"],
                                  ["train", "--epochs", "-3"]])
def test_a_usage_error_exits_2(args):
    result = _run(args)
    assert result.exit_code == 2
    assert "Traceback" not in result.output


def test_success_exits_0():
    assert _run(["--version"]).exit_code == 0
    assert _run(["train", "--help"]).exit_code == 0


def test_one_line_folds_long_and_multiline_messages():
    assert one_line(ValueError("a\n\n  b\tc")) == "ValueError: a b c"
    assert one_line(KeyError()) == "KeyError"
    folded = one_line(RuntimeError("x" * 5000))
    assert len(folded) < 500 and folded.endswith(" ...")
