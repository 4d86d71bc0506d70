# SPDX-License-Identifier: Apache-2.0
"""sphinx-gallery helpers: the examples' figures and their order in the gallery.

The examples draw with :class:`matplotlib.figure.Figure` (never :mod:`matplotlib.pyplot`) and save
PNG files into the current directory, which sphinx-gallery sets to ``examples/``. The default
matplotlib scraper looks at pyplot's figures only, so :func:`scrape_png_files` collects the PNG
files an example wrote instead: it moves each into the gallery's image folder (nothing is left
behind in ``examples/``) and returns the reStructuredText that shows it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sphinx_gallery.scrapers import figure_rst  # type: ignore[import-untyped]

#: When this module was imported, i.e. before any example ran: older PNG files are not outputs.
_STARTED = time.time()

#: The gallery's order: from one activation to a trained network and its use in PyTorch.
ORDER = (
    "relu_as_argmin.py",
    "custom_activation.py",
    "sigmoid_fenchel.py",
    "dpp_compile_once.py",
    "train_digits.py",
    "lifted_init_torch.py",
    "dask_local_cluster.py",
)


def scrape_png_files(block: Any, block_vars: dict[str, Any], gallery_conf: dict[str, Any]) -> str:
    """Move the PNG files a code block wrote into the gallery and return the rST showing them.

    Parameters
    ----------
    block : sphinx_gallery.py_source_parser.Block
        The code block just executed (unused).
    block_vars : dict
        sphinx-gallery's block variables (``src_file``, ``image_path_iterator``).
    gallery_conf : dict
        sphinx-gallery's configuration (``src_dir``).

    Returns
    -------
    str
        reStructuredText for the images, empty when the block wrote none.
    """
    folder = Path(block_vars["src_file"]).parent
    written = sorted(
        (p for p in folder.glob("*.png") if p.stat().st_mtime >= _STARTED),
        key=lambda p: p.stat().st_mtime,
    )
    targets = []
    for png, target in zip(written, block_vars["image_path_iterator"], strict=False):
        png.replace(target)
        targets.append(target)
    if not targets:
        return ""
    return str(figure_rst(targets, gallery_conf["src_dir"]))


class ExampleOrder:
    """Sort key of the examples: the position in :data:`ORDER`, unknown files last by name.

    Parameters
    ----------
    src_dir : str
        The gallery's source folder (required by sphinx-gallery; unused).
    """

    def __init__(self, src_dir: str) -> None:
        self.src_dir = src_dir

    def __call__(self, filename: str) -> tuple[int, str]:
        """Return the sort key of ``filename``.

        Parameters
        ----------
        filename : str
            The example's file name.

        Returns
        -------
        tuple of (int, str)
            Position in :data:`ORDER` (its length when absent) and the name.
        """
        name = Path(filename).name
        return (ORDER.index(name) if name in ORDER else len(ORDER), name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
