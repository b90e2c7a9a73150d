"""Where the small data sets committed with the repository live."""

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
