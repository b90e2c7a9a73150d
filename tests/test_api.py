"""The Python API: its docstring Examples run here, on tiny real data, so they cannot rot."""

import doctest

import pytest

import tfx_transfer
from tfx_transfer import api, cli_errors, contrastive, progress
from tfx_transfer.data import image_check, image_header, orientation, tfds_source


@pytest.fixture(scope="module")
def globs(colour_folder, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("api")
    tiny = dict(image_size=64, batch_size=8, epochs=3, fine_tune_epochs=0, augment=False,
                val_fraction=0.25, test_fraction=0.25, output_dir=str(tmp / "runs"),
                verbose=False)
    run = api.fine_tune(colour_folder, task="images", run_name="api", **tiny)
    return {"photos": colour_folder, "tiny": tiny, "run": run, "tmp": tmp}


@pytest.mark.parametrize("module", [api, cli_errors, progress, tfds_source, image_check,
                                    image_header, orientation, contrastive])
def test_the_docstring_examples_run(module, globs):
    failures, tried = doctest.testmod(
        module, extraglobs=globs, optionflags=doctest.ELLIPSIS, verbose=False)
    assert tried > 0 and failures == 0


def test_about_ten_public_names_each_documented_with_an_example():
    names = tfx_transfer.__all__
    assert 8 <= len(names) <= 12
    for name in ("fine_tune", "load_run", "Run", "run_config"):
        assert "Example" in getattr(tfx_transfer, name).__doc__


def test_options_get_the_clis_messages_and_names(colour_folder):
    with pytest.raises(ValueError, match=r"'batch_size' \(--batch-size\): 0 is not in the range"):
        api.run_config(colour_folder, batch_size=0)
    with pytest.raises(ValueError, match="'task' .*'pictures' is not one of"):
        api.run_config(colour_folder, task="pictures")
    with pytest.raises(TypeError, match="Unknown option.*epoch\\b.*fine_tune_epochs"):
        api.run_config(colour_folder, epoch=3)
    config = api.run_config("tfds:some_dataset", task="text", label_key="topic")
    assert config.data.path == "tfds:some_dataset" and config.data.label_key == "topic"


def test_predict_takes_paths_bytes_and_arrays(globs):
    import numpy as np
    from PIL import Image

    run, photos = globs["run"], globs["photos"]
    path = photos / "blue" / "001.png"
    pixels = np.asarray(Image.open(path).convert("RGB"))
    results = run.predict([path, path.read_bytes(), pixels, b"not an image"], top_k=2)
    labels = [r["top_k"][0]["label"] for r in results[:3]]
    assert labels == ["blue"] * 3
    assert len(results[0]["top_k"]) == 2
    assert "error" in results[3] and "decode" in results[3]["error"]


def test_load_run_refuses_a_folder_that_is_not_a_finished_run(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        api.load_run(tmp_path)
