# SPDX-License-Identifier: Apache-2.0
"""Write the pages of the API reference from the module list in ``docs/conf.py``.

``api_modules`` (a Sphinx config value) is a list of ``(caption, entries)`` groups; each entry
becomes one page, ``api/<module>.rst``, holding the module's docstring and every name of its
``__all__``: classes (with their documented methods), functions, exceptions and constants. An
object is documented once, under the first public name that reaches it
(``cvx_lifted.LiftedNetwork`` rather than ``cvx_lifted.network.LiftedNetwork``); the later
pages link to it. That keeps every cross-reference unambiguous.

An entry is a tuple of alternative module names: the first importable one is documented (so a
module can move without breaking the build); an empty string as the last alternative makes the
page optional. A name ending in ``.*`` adds the package's public submodules after it. A module
listed but not importable, or a constant without a ``#:`` comment, is a build warning (an error
under ``-W``).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import typing
from pathlib import Path
from types import ModuleType
from typing import Any

from sphinx.application import Sphinx
from sphinx.pycode import ModuleAnalyzer
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: Folder of the generated pages, relative to the documentation sources (ignored by git).
OUT_DIR = "api"


def _import(name: str) -> ModuleType | None:
    """Return the module ``name`` or ``None`` when it does not exist.

    Parameters
    ----------
    name : str
        Dotted module name.

    Returns
    -------
    module or None
        The imported module.
    """
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # a missing module is an alternative not taken; a missing dependency *inside* an
        # existing module is an error worth seeing
        if exc.name is not None and name.startswith(exc.name):
            return None
        raise


def resolve_modules(entries: list[tuple[str, ...]]) -> list[ModuleType]:
    """Turn the configured entries of one group into the modules to document, in order.

    Parameters
    ----------
    entries : list of tuple of str
        The entries of one group of the ``api_modules`` config value.

    Returns
    -------
    list of module
        One module per entry whose alternatives include an importable one, followed (for a
        ``package.*`` entry) by the package's public submodules.
    """
    modules: list[ModuleType] = []
    for alternatives in entries:
        found = None
        for name in alternatives:
            if not name:
                break
            found = _import(name.removesuffix(".*"))
            if found is not None:
                break
        if found is None:
            if alternatives[-1]:
                logger.warning("API reference: none of %s can be imported", alternatives)
            continue
        modules.append(found)
        if name.endswith(".*"):
            for info in pkgutil.iter_modules(found.__path__, prefix=found.__name__ + "."):
                if info.name.rsplit(".", 1)[-1].startswith("_"):
                    continue
                try:
                    modules.append(importlib.import_module(info.name))
                except ImportError as exc:
                    logger.warning("API reference: cannot import %s: %s", info.name, exc)
    return modules


def _public_names(module: ModuleType) -> list[str]:
    """Return the module's ``__all__``, or its public names defined in it.

    Parameters
    ----------
    module : module
        The module.

    Returns
    -------
    list of str
        The names to document.
    """
    names = getattr(module, "__all__", None)
    if names is not None:
        return [n for n in names if not n.startswith("__")]
    return [
        n
        for n, obj in vars(module).items()
        if not n.startswith("_") and getattr(obj, "__module__", None) == module.__name__
    ]


def _kind(obj: Any) -> str:
    """Return the autodoc directive that documents ``obj``.

    Parameters
    ----------
    obj : object
        Any object.

    Returns
    -------
    str
        ``"exception"``, ``"class"``, ``"function"`` or ``"data"``.
    """
    if inspect.isclass(obj):
        return "exception" if issubclass(obj, BaseException) else "class"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        return "function"
    return "data"


def _data_comment(name: str, obj: Any, modules: list[ModuleType]) -> str | None:
    """Find the ``#:`` comment of a constant in the module that assigns it.

    Parameters
    ----------
    name : str
        The constant's name (the same in every module that imports it).
    obj : object
        Its value, compared by identity.
    modules : list of module
        Where to look, in order.

    Returns
    -------
    str or None
        The comment's text.
    """
    for module in modules:
        if vars(module).get(name) is not obj:
            continue
        try:
            docs = ModuleAnalyzer.for_module(module.__name__).find_attr_docs()
        except Exception:  # no source (a compiled module): nothing to find
            continue
        lines = docs.get(("", name))
        if lines:
            return "\n".join(lines).strip()
    return None


def _is_type_alias(obj: Any) -> bool:
    """Tell whether ``obj`` is a type alias such as ``Literal["a", "b"]`` (its value documents it).

    Parameters
    ----------
    obj : object
        A module-level value.

    Returns
    -------
    bool
        Whether it is a parametrised type from :mod:`typing` or a ``type`` statement's alias.
    """
    alias_type = getattr(typing, "TypeAliasType", ())  # Python 3.12 and later
    return typing.get_origin(obj) is not None or isinstance(obj, alias_type)


def _alias_text(obj: Any) -> str:
    """Return a type alias as it would be written in code.

    Parameters
    ----------
    obj : object
        A type alias.

    Returns
    -------
    str
        Its text without the ``typing.`` prefixes.
    """
    value = getattr(obj, "__value__", obj)  # a ``type X = ...`` alias holds its value there
    return repr(value).replace("typing.", "")


_HEADINGS = {
    "class": "Classes",
    "function": "Functions",
    "exception": "Exceptions",
    "data": "Constants",
}
_ROLES = {"class": "class", "function": "func", "exception": "exc", "data": "data"}


def module_page(
    module: ModuleType, documented: dict[int, str], everything: list[ModuleType]
) -> str:
    """Return the reStructuredText of one module's page.

    Parameters
    ----------
    module : module
        The module of the page.
    documented : dict
        ``id(object) -> public name`` of everything documented on earlier pages; updated with
        what this page documents.
    everything : list of module
        Every module of the package that is imported (searched for constants' comments).

    Returns
    -------
    str
        The page.
    """
    title = f"``{module.__name__}``"
    lines = [title, "=" * len(title), "", f".. automodule:: {module.__name__}"]
    if module.__name__ in documented.values():
        # a function of the same name was documented first (``cvx_lifted.verify``): one
        # Python-domain name cannot describe both, and links go to the function
        lines.append("   :no-index:")
    lines.append("")
    sections: dict[str, list[str]] = {kind: [] for kind in _HEADINGS}
    elsewhere: list[str] = []
    for name in _public_names(module):
        obj = getattr(module, name)
        kind = _kind(obj)
        full = f"{module.__name__}.{name}"
        key = id(obj)
        hashable_constant = kind == "data" and isinstance(obj, int | float | str | bool)
        if key in documented and not hashable_constant:
            elsewhere.append(f"* :{_ROLES[kind]}:`{documented[key]}`")
            continue
        if not hashable_constant:
            documented[key] = full
        if kind == "data":
            holders = [module] + [m for m in everything if m is not module]
            comment = _data_comment(name, obj, holders)
            alias = _is_type_alias(obj)
            if comment is None and not alias:
                logger.warning("API reference: %s has no '#:' comment to document it", full)
            body = "\n".join("   " + line if line else "" for line in (comment or "").splitlines())
            options = [f"   :module: {module.__name__}"]
            if alias:
                options.append(f"   :value: {_alias_text(obj)}")
            sections[kind] += [f".. py:data:: {name}", *options, "", body, ""]
        elif kind == "class":
            options = ["   :members:", "   :show-inheritance:"]
            sections[kind] += [f".. autoclass:: {full}", *options, ""]
        elif kind == "exception":
            sections[kind] += [f".. autoexception:: {full}", "   :show-inheritance:", ""]
        else:
            sections[kind] += [f".. autofunction:: {full}", ""]
    for kind, heading in _HEADINGS.items():
        if sections[kind]:
            lines += [heading, "-" * len(heading), "", *sections[kind]]
    if elsewhere:
        heading = "Also here, documented under their public names"
        lines += [heading, "-" * len(heading), "", *elsewhere, ""]
    return "\n".join(lines).rstrip() + "\n"


def _write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it is there already (keeps incremental builds fast).

    Parameters
    ----------
    path : pathlib.Path
        Target file.
    text : str
        Its content.
    """
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


def generate(app: Sphinx) -> None:
    """Write ``api/index.rst`` (one toctree per group) and one page per module.

    Connected to Sphinx's ``builder-inited`` event.

    Parameters
    ----------
    app : sphinx.application.Sphinx
        The running application.
    """
    out = Path(app.srcdir) / OUT_DIR
    out.mkdir(exist_ok=True)
    groups = [(caption, resolve_modules(entries)) for caption, entries in app.config.api_modules]
    package = groups[0][1][0]
    everything = [package] + sorted(
        (m for m in list(sys.modules.values()) if _in_package(m, package)),
        key=lambda m: m.__name__,
    )
    documented: dict[int, str] = {}
    title = "API reference"
    index = [title, "=" * len(title), "", app.config.api_intro.strip(), ""]
    pages = set()
    for caption, modules in groups:
        index += [".. toctree::", "   :maxdepth: 1", f"   :caption: {caption}", ""]
        for module in modules:
            _write(out / f"{module.__name__}.rst", module_page(module, documented, everything))
            pages.add(module.__name__)
            index.append(f"   {module.__name__}")
        index.append("")
    for stale in out.glob("*.rst"):
        if stale.stem not in pages and stale.name != "index.rst":
            stale.unlink()
    _write(out / "index.rst", "\n".join(index))


def _in_package(module: Any, package: ModuleType) -> bool:
    """Tell whether ``module`` is ``package`` or one of its submodules.

    Parameters
    ----------
    module : object
        An entry of ``sys.modules`` (may be ``None``).
    package : module
        The package.

    Returns
    -------
    bool
        Whether it belongs to the package.
    """
    name = getattr(module, "__name__", "")
    return isinstance(module, ModuleType) and (
        name == package.__name__ or name.startswith(package.__name__ + ".")
    )


def skip_foreign_members(
    app: Sphinx, what: str, name: str, obj: Any, skip: bool, options: Any
) -> bool | None:
    """Leave out class members that have nothing to say (``autodoc-skip-member`` hook).

    scikit-learn adds ``set_fit_request`` and friends to every estimator; their docstrings
    point into scikit-learn's own documentation and belong there. The fields of a
    :class:`typing.NamedTuple` are documented by its class docstring, not by their generated
    ``Alias for field number ...``.

    Parameters
    ----------
    app : sphinx.application.Sphinx
        The running application.
    what : str
        Kind of the object that owns the member.
    name : str
        Member name.
    obj : object
        The member.
    skip : bool
        autodoc's own decision.
    options : object
        The directive's options.

    Returns
    -------
    bool or None
        ``True`` to skip the member, else ``None`` (autodoc decides).
    """
    if what != "class":
        return None
    if inspect.isroutine(obj):
        module = getattr(obj, "__module__", None) or ""
        if module and module.split(".")[0] != "cvx_lifted":
            return True
    if type(obj).__name__ == "_tuplegetter":
        # a NamedTuple's field ("Alias for field number 0"): the class's Attributes section
        # documents it
        return True
    return None


def setup(app: Sphinx) -> dict[str, Any]:
    """Register the config values and the page generator.

    Parameters
    ----------
    app : sphinx.application.Sphinx
        The running application.

    Returns
    -------
    dict
        Extension metadata.
    """
    app.add_config_value("api_modules", [], "env")
    app.add_config_value("api_intro", "", "env")
    app.connect("builder-inited", generate)
    app.connect("autodoc-skip-member", skip_foreign_members)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
