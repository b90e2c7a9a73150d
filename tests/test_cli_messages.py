"""Messages from the command line name the flags a user can type, not the Python API."""

import doctest

from click.testing import CliRunner

import harness
from tfx_transfer import cli, cli_errors
from tfx_transfer.tasks import get_task


def _latin1_csv(tmp_path):
    path = harness.write_tickets_csv(tmp_path / "tickets.csv")
    text = path.read_text(encoding="utf-8").replace("great service", "très bien servi")
    path.write_bytes(text.encode("latin-1"))
    return path


def _train(args):
    return CliRunner().invoke(cli.main, ["train", "--task", "text", "--epochs", "1",
                                         "--fine-tune-epochs", "0", *args])


def test_a_latin1_csv_names_the_encoding_and_skip_flags(tmp_path):
    result = _train(["--data", str(_latin1_csv(tmp_path)), "--output-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "--encoding" in result.stderr and "--skip-bad-rows" in result.stderr
    assert "skip_bad_rows=True" not in result.stderr and "`encoding`" not in result.stderr
    assert "tickets.csv:" in result.stderr


def test_the_encoding_flag_and_config_key_read_it(tmp_path):
    path = _latin1_csv(tmp_path)
    config = cli.config_from_flags(None, {"task": "text", "data": str(path),
                                          "encoding": "latin-1"})
    assert config.data.encoding == "latin-1"
    data = get_task("text").read_data(config.data)
    assert any("très" in text for split in data.splits.values() for text in split.items)
    yaml_file = tmp_path / "run.yaml"
    yaml_file.write_text(f"task: text\ndata:\n  path: {path}\n  encoding: latin-1\n")
    assert cli.config_from_flags(str(yaml_file), {}).data.encoding == "latin-1"


def test_a_missing_column_names_the_column_flags(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("body,stars\n" + "".join(f"text {i},{i % 2}\n" for i in range(20)))
    result = _train(["--data", str(path), "--output-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "--text-column and --label-column" in result.stderr, result.stderr
    assert "text_column=" not in result.stderr


def test_in_flag_terms_examples():
    runner = doctest.DocTestRunner()
    for test in doctest.DocTestFinder().find(cli_errors.in_flag_terms,
                                            globs={"in_flag_terms": cli_errors.in_flag_terms}):
        runner.run(test)
    assert runner.failures == 0 and runner.tries >= 3
