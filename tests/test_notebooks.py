"""The Colab notebooks, executed top to bottom on tiny samples of the bundled data, on CPU."""

import csv
import shutil

import nbformat
import pytest
from nbclient import NotebookClient

from tfx_transfer.data import bundled, conll
from tfx_transfer.data import text as text_data

NOTEBOOKS = bundled.bundled_data_dir().parents[1] / "notebooks"


def _images(folder):
    for class_dir in sorted(p for p in bundled.bundled_data_dir().iterdir() if p.is_dir()):
        target = folder / class_dir.name
        target.mkdir(parents=True)
        for path in sorted(class_dir.glob("*.png"))[:8]:
            shutil.copy(path, target / path.name)
    return folder


def _texts(folder):
    data = text_data.read_text_data(bundled.bundled_text_dir(),
                                    encoding=bundled.BUNDLED_TEXT_ENCODING)
    split, path = data.splits["train"], folder / "bbc_sample.csv"
    taken = {}
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for text, label in zip(split.items, split.labels):
            if taken.setdefault(label, 0) < 12:
                taken[label] += 1
                writer.writerow([text[:400], data.class_names[label]])
    return path


def _sentences(folder):
    sentences = conll.read_conll(bundled.bundled_conll_path())[:80]
    path = folder / "wnut_sample.conll"
    path.write_text("\n\n".join("\n".join(f"{w}\t{t}" for w, t in zip(s.words, s.tags))
                                for s in sentences) + "\n", encoding="utf-8")
    return path


SAMPLES = {"images": (_images, {"image_size": 64}),
           "text": (_texts, {"sequence_length": 32}),
           "tokens": (_sentences, {"sequence_length": 32})}


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_committed_notebook_has_no_outputs(name):
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    nbformat.validate(notebook)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert all(not cell.outputs and cell.execution_count is None for cell in code)
    assert "parameters" in code[0].metadata.get("tags", [])


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_the_notebook_runs_top_to_bottom(name, tmp_path):
    make, sizes = SAMPLES[name]
    sample = tmp_path / "sample"
    sample.mkdir()
    data = make(sample) if name != "images" else _images(sample / "photos")
    options = dict(sizes, batch_size=8, epochs=2, fine_tune_epochs=0, val_fraction=0.25,
                   test_fraction=0.25, output_dir=str(tmp_path / "runs"), verbose=False)
    notebook = nbformat.read(NOTEBOOKS / f"{name}.ipynb", as_version=4)
    at = next(i for i, cell in enumerate(notebook.cells)
              if "parameters" in cell.metadata.get("tags", []))
    notebook.cells.insert(at + 1, nbformat.v4.new_code_cell(
        f"INSTALL = False\nDATA = {str(data)!r}\nSTRATEGY = 'default'\n"
        f"EXPORT_DIR = {str(tmp_path / 'exported')!r}\nOPTIONS = {options!r}"))
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    outputs = "".join(out.get("text", "") for cell in notebook.cells
                      if cell.cell_type == "code" for out in cell.outputs)
    assert f"tfx_transfer {name} run" in outputs
    assert (tmp_path / "exported" / "model" / "1" / "saved_model.pb").is_file()
    assert '"' in outputs and "predictions" not in outputs  # the REST answer was printed
    shown = [kind for cell in notebook.cells if cell.cell_type == "code"
             for out in cell.outputs for kind in out.get("data", {})]
    # Curves (+ confusion matrix for classes; + the grid of test images), or a table.
    assert shown.count("image/png") >= {"images": 3, "text": 2, "tokens": 1}[name]
    assert name == "images" or "text/html" in shown
