# SPDX-License-Identifier: Apache-2.0
"""Sphinx configuration of the cvx_lifted documentation.

Build (as CI does; warnings are errors)::

    pip install ".[docs]"
    sphinx-build -W --keep-going -b html docs docs/_build/html

The gallery executes every script of ``examples/`` (about a minute); ``-D plot_gallery=0``
builds the pages without running them. The API pages are written at build time from
:data:`api_modules` below, the one list of documented modules.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document this checkout, whatever else is installed
sys.path.insert(0, str(DOCS / "_ext"))

import cvx_lifted  # noqa: E402  (after the path set-up above)

project = "cvx_lifted"
author = "cvx_lifted developers"
copyright = "cvx_lifted developers; Apache-2.0"  # noqa: A001  (the name Sphinx reads)
version = release = cvx_lifted.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "matplotlib.sphinxext.plot_directive",
    "cvx_docs_api",
    "cvx_docs_layers",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
# api/_layers.md is included by architecture.md, not a page of its own
exclude_patterns = ["_build", "**.ipynb_checkpoints", "auto_examples/*.ipynb", "api/_layers.md"]
templates_path: list[str] = []
html_theme = "alabaster"
html_title = f"cvx_lifted {release}"
html_theme_options = {
    "description": "Lifted neural networks: activations as convex programs",
    "fixed_sidebar": True,
    "page_width": "1180px",
    "sidebar_width": "250px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "relations.html", "searchbox.html"]}
html_static_path: list[str] = []

# ------------------------------------------------------------------------------- API reference
#: Every page of the API reference, in order, in captioned groups (the package's layers, top
#: down). One entry per page: a tuple of alternative names of one module (the first importable
#: is documented, so a module can move without breaking the build); ``""`` as the last
#: alternative makes the page optional; ``pkg.*`` adds the package's public submodules. An
#: object is documented once, under the first page that exports it
#: (``cvx_lifted.LiftedNetwork``), and linked from the others.
api_modules = [
    ("The package", [("cvx_lifted",)]),
    (
        "Networks and estimators",
        [
            ("cvx_lifted.network",),
            ("cvx_lifted.estimator",),
            ("cvx_lifted.predict",),
            ("cvx_lifted.losses",),
            ("cvx_lifted.modelfile",),
            ("cvx_lifted.io",),
            ("cvx_lifted.defaults",),
        ],
    ),
    (
        "Activations",
        [("cvx_lifted.activations.*",), ("cvx_lifted.plugins",), ("cvx_lifted.dcp",)],
    ),
    (
        "Training",
        [
            ("cvx_lifted.bcd",),
            ("cvx_lifted.minibatch",),
            ("cvx_lifted.history",),
            ("cvx_lifted.paths",),
            ("cvx_lifted.threads",),
            ("cvx_lifted.blocks",),
            ("cvx_lifted.compile",),
            ("cvx_lifted.kernels.*",),
        ],
    ),
    (
        "Tools",
        [
            ("cvx_lifted.verify",),
            ("cvx_lifted.testing",),
            ("cvx_lifted.plot",),
            ("cvx_lifted.datasets",),
            ("cvx_lifted.tables",),
            ("cvx_lifted.tune",),
            ("cvx_lifted.exceptions",),
        ],
    ),
    ("Beyond one machine", [("cvx_lifted.distributed.*",)]),
    ("PyTorch", [("cvx_lifted.interop.torch",)]),
    ("The paper's experiment", [("cvx_lifted.paper.*", "cvx_lifted.experiments")]),
]
api_intro = """
Rows are samples throughout: ``X`` has shape ``(m, n)``, a layer computes
``phi(X @ W.T + b)``. Start with the package itself (:mod:`cvx_lifted`): the activation
catalogue, :class:`~cvx_lifted.LiftedNetwork` and the scikit-learn estimators. Every object is
documented once, under its public name; the pages of the modules that define it link there.
"""

autodoc_member_order = "bysource"
autodoc_typehints = "signature"
autodoc_preserve_defaults = True

numpydoc_show_class_members = False  # autodoc's :members: lists the methods
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False
# Docstring checks (numpydoc's validation; each failure is a warning, so an error under -W).
# Checked: the summary line (present, capitalised, ends with a period), every parameter
# documented, in signature order, with a type, and no unknown one; a Returns (Yields) section
# for what returns (yields); known sections in the standard order. Not checked: extended
# summaries, See Also and Examples (ES01, SA01, EX01: not every function needs them); the
# layout ruff's pydocstyle rules check in the source (GL01, GL02, SS05, SS06); and conventions
# this code base writes differently on purpose: a self-explanatory parameter or return value
# given by its type alone (PR07, RT03: "X : array_like of shape (m, n)"), type spellings and
# description punctuation (PR06, PR08, PR09, RT02, RT04, RT05), methods that inherit their
# docstring (GL08).
numpydoc_validation_checks = {
    "GL03",  # double line break
    "GL06",  # unknown section
    "GL07",  # sections in the wrong order
    "GL09",  # deprecation warning placement
    "GL10",  # a bad math directive
    "SS01",  # no summary
    "SS02",  # summary does not start with a capital letter
    "SS03",  # summary does not end with a period
    "SS04",  # summary with leading whitespace
    "PR01",  # parameter not documented
    "PR02",  # unknown parameter documented
    "PR03",  # parameters documented in the wrong order
    "PR04",  # parameter without a type
    "PR05",  # parameter type ending with a period
    "PR10",  # missing space before the colon
    "RT01",  # no Returns section
    "YD01",  # no Yields section
}
# Private helpers and dunder methods are not checked.
numpydoc_validation_exclude = {r"\._[a-z]", r"\.__[a-z]+__$"}
# A one-line docstring with no section at all (a small helper its signature explains) needs
# neither a Parameters (PR01) nor a Returns (RT01) section, and a dataclass documented field by
# field in an Attributes section needs no Parameters section. Any other docstring documents
# every parameter and what it returns.
_NO_SECTIONS = r"\A(?![\s\S]*\n\s*-{3,}\s*(?:\n|\Z))"
_ATTRIBUTES = r"(?:\A|\n)\s*Attributes\s*\n\s*-{3,}\s*(?:\n|\Z)"
# A context manager (``@contextlib.contextmanager``) documents what it yields; numpydoc sees
# the decorated function, which returns, and would ask for a Returns section.
_YIELDS = r"(?:\A|\n)\s*Yields\s*\n\s*-{3,}\s*(?:\n|\Z)"
# numpydoc drops a first parameter named ``cls`` from the signature as if every function were
# a classmethod, so it takes the documented ``cls`` of ``register_activation(cls)`` for an
# unknown parameter (PR02).
numpydoc_validation_overrides = {
    "PR01": [_NO_SECTIONS, _ATTRIBUTES],
    "RT01": [_NO_SECTIONS, _YIELDS],
    "PR02": [r"(?:\A|\n)\s*cls : "],
}

# ------------------------------------------------------------------------------------ gallery
sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"\.py$",  # execute every example
    "within_subsection_order": "cvx_docs_gallery.ExampleOrder",
    "image_scrapers": ("cvx_docs_gallery.scrape_png_files",),
    "reset_modules": (),
    "remove_config_comments": True,
    "abort_on_example_error": True,
    "download_all_examples": False,
    "show_signature": False,
}

# ------------------------------------------------------------------- architecture diagram
plot_include_source = False
plot_html_show_source_link = False
plot_html_show_formats = False
plot_formats = [("png", 110)]

# ---------------------------------------------------------------------------------- Markdown
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]


def _check_gallery_dependencies(app: Any) -> None:
    """Stop with a clear message when the gallery would run an example that cannot run.

    Parameters
    ----------
    app : sphinx.application.Sphinx
        The running application.
    """
    runs = str(app.config.plot_gallery).lower() not in ("0", "false")
    if runs and importlib.util.find_spec("torch") is None:
        raise RuntimeError(
            "the gallery runs every example, and examples/lifted_init_torch.py needs PyTorch: "
            'pip install torch==2.13.0 && pip install ".[torch]", or build the pages without '
            "running the examples: sphinx-build -D plot_gallery=0 ..."
        )


def setup(app: Any) -> None:
    """Check the gallery's dependencies before sphinx-gallery runs the examples.

    Parameters
    ----------
    app : sphinx.application.Sphinx
        The running application.
    """
    app.connect("builder-inited", _check_gallery_dependencies, priority=100)
