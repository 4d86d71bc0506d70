# SPDX-License-Identifier: Apache-2.0
"""Write the architecture page's table of layers from the import contract in ``pyproject.toml``.

The project states its layering once, as an import-linter ``layers`` contract
(``[tool.importlinter]`` in ``pyproject.toml``, checked by the tests). This extension turns
that contract into a Markdown table, ``api/_layers.md``, which ``architecture.md`` includes:
one row per layer, top layer first, each module with the first line of its docstring. So the
page cannot drift from the contract. A module of the contract that cannot be imported is a
build warning (an error under ``-W``).
"""

from __future__ import annotations

import importlib
import re
import tomllib
from pathlib import Path
from typing import Any

from sphinx.application import Sphinx
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: The generated table, relative to the documentation sources (ignored by git and by Sphinx).
OUT_FILE = "api/_layers.md"

_ROLE = re.compile(r":(?:py:)?([a-z]+):`([^`]+)`")


def layers_contract(pyproject: Path) -> tuple[str, list[str]]:
    """Read the package's ``layers`` contract.

    Parameters
    ----------
    pyproject : pathlib.Path
        The project's ``pyproject.toml``.

    Returns
    -------
    tuple of (str, list of str)
        The root package and its layers, top layer first (as import-linter lists them).

    Raises
    ------
    ValueError
        If the file holds no ``layers`` contract.
    """
    config = tomllib.loads(pyproject.read_text(encoding="utf-8"))
    linter = config.get("tool", {}).get("importlinter", {})
    for contract in linter.get("contracts", []):
        if contract.get("type") == "layers":
            root = contract.get("containers", [linter.get("root_package", "")])[0]
            return str(root), [str(layer) for layer in contract["layers"]]
    raise ValueError(f"{pyproject} has no import-linter 'layers' contract")


def summary(module_name: str) -> str:
    """Return the first line of a module's docstring, its roles in MyST syntax.

    Parameters
    ----------
    module_name : str
        Dotted module name.

    Returns
    -------
    str
        The summary line (empty when the module has no docstring).
    """
    doc = (importlib.import_module(module_name).__doc__ or "").strip()
    first = doc.splitlines()[0] if doc else ""
    return _ROLE.sub(r"{\1}`\2`", first).replace("|", "\\|")


def layers_table(root: str, layers: list[str]) -> str:
    """Return the Markdown table of the layers.

    Parameters
    ----------
    root : str
        The root package (``cvx_lifted``).
    layers : list of str
        Layers as import-linter writes them, top first; ``a | b`` are independent siblings.

    Returns
    -------
    str
        The table.
    """
    rows = ["| layer | module | what it holds |", "| --- | --- | --- |"]
    for depth, layer in enumerate(layers):
        number = len(layers) - depth
        for i, name in enumerate(part.strip() for part in re.split(r"[|:]", layer)):
            full = f"{root}.{name}"
            try:
                text = summary(full)
            except ImportError as exc:
                logger.warning("layers of %s: cannot import %s: %s", root, full, exc)
                text = ""
            label = str(number) if i == 0 else ""
            rows.append(f"| {label} | {{mod}}`{full}` | {text} |")
    return "\n".join(rows) + "\n"


def generate(app: Sphinx) -> None:
    """Write :data:`OUT_FILE` (Sphinx ``builder-inited`` hook).

    Parameters
    ----------
    app : sphinx.application.Sphinx
        The running application.
    """
    root, layers = layers_contract(Path(app.confdir).parent / "pyproject.toml")
    out = Path(app.srcdir) / OUT_FILE
    out.parent.mkdir(exist_ok=True)
    text = layers_table(root, layers)
    if not out.is_file() or out.read_text(encoding="utf-8") != text:
        out.write_text(text, encoding="utf-8")


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the table generator.

    Parameters
    ----------
    app : sphinx.application.Sphinx
        The running application.

    Returns
    -------
    dict
        Extension metadata.
    """
    app.connect("builder-inited", generate)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
