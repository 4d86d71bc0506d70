# SPDX-License-Identifier: Apache-2.0
"""Activations from other packages: the ``cvx_lifted.activations`` entry-point group.

A custom activation is registered by running the code that declares it
(:func:`cvx_lifted.custom_activation` or :func:`cvx_lifted.register_activation`). Within one
process that is an ``import``; across processes -- a model file trained in one and loaded in
another, or ``cvx-lifted predict`` on it -- cvx_lifted has to know what to import. Two ways:

* **Entry points** (the standard packaging mechanism, :mod:`importlib.metadata`): a package
  declares its activations in its ``pyproject.toml``::

      [project.entry-points."cvx_lifted.activations"]
      soft_threshold = "my_package.activations:soft_threshold"

  The entry-point name is the activation's registry name; the object it points to is an
  :class:`~cvx_lifted.activations.base.Activation` instance (what ``custom_activation``
  returns), an ``Activation`` subclass, or a module whose import registers the activation.
  Once the package is installed, :class:`~cvx_lifted.network.LiftedNetwork`, model files and
  the command line find the activation by name, in any process, without an explicit import.
  Entry points are loaded on demand: only when a name is not registered yet.
* **An explicit import**: ``cvx-lifted --import my_module predict ...`` (every subcommand takes
  ``--import MODULE``, repeatable), or ``import my_module`` before :func:`cvx_lifted.load`.
  Model files record the module that defined each custom activation, so the error for an
  unregistered one says what to import.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from importlib import metadata
from types import ModuleType
from typing import Any

import numpy as np

from cvx_lifted import defaults
from cvx_lifted.activations import ACTIVATIONS, get_activation, register_activation
from cvx_lifted.activations.base import Activation

__all__ = [
    "ENTRY_POINT_GROUP",
    "activation_entry_points",
    "activation_module",
    "import_modules",
    "load_activation_plugin",
    "load_activation_plugins",
    "resolve_activation",
    "resolve_activations",
]

ENTRY_POINT_GROUP = "cvx_lifted.activations"
"""Entry-point group in which packages register activations (name = registry name)."""


def activation_entry_points() -> list[metadata.EntryPoint]:
    """Return the entry points of the ``cvx_lifted.activations`` group, sorted by name.

    Returns
    -------
    list of importlib.metadata.EntryPoint
    """
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _register_loaded(name: str, obj: Any) -> None:
    """Make sure what an entry point loaded is registered under ``name``."""
    if isinstance(obj, Activation):
        cls: type[Activation] | None = type(obj)
    elif isinstance(obj, type) and issubclass(obj, Activation):
        cls = obj
    elif isinstance(obj, ModuleType):
        cls = None  # importing the module was the registration
    else:
        raise ValueError(
            f"the entry point {name!r} of group {ENTRY_POINT_GROUP!r} must point to an Activation "
            f"instance, an Activation subclass or a module, got {type(obj).__name__}."
        )
    if cls is not None and ACTIVATIONS.get(name) is not cls:
        register_activation(cls, name, overwrite=name in ACTIVATIONS)
    if name not in ACTIVATIONS:
        raise ValueError(
            f"the entry point {name!r} of group {ENTRY_POINT_GROUP!r} was loaded, but no "
            f"activation named {name!r} was registered by it; its package must register it "
            "(cvx_lifted.custom_activation(name=...) or cvx_lifted.register_activation)."
        )


def load_activation_plugin(name: str) -> bool:
    """Load the entry point that provides the activation ``name``, if an installed package has one.

    Parameters
    ----------
    name : str
        Registry name of the activation.

    Returns
    -------
    bool
        Whether ``name`` is registered afterwards.

    Raises
    ------
    ValueError
        If the entry point exists but cannot be loaded or does not register ``name`` (the
        message names the entry point and its package).
    """
    if name in ACTIVATIONS:
        return True
    for ep in activation_entry_points():
        if ep.name != name:
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # an import error inside the plugin package
            raise ValueError(
                f"the activation {name!r} is provided by the entry point {ep.value!r} "
                f"(group {ENTRY_POINT_GROUP!r}), which failed to load: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        _register_loaded(name, obj)
        return True
    return False


def load_activation_plugins() -> list[str]:
    """Load every installed ``cvx_lifted.activations`` entry point.

    Returns
    -------
    list of str
        Names of the activations loaded (in entry-point order).

    Raises
    ------
    ValueError
        If an entry point cannot be loaded or does not register its name.
    """
    loaded = []
    for ep in activation_entry_points():
        if load_activation_plugin(ep.name):
            loaded.append(ep.name)
    return loaded


def import_modules(modules: Iterable[str]) -> list[ModuleType]:
    """Import modules by name, e.g. the ones that register custom activations.

    The current folder is searched too (after ``sys.path``), as ``python -m`` would, so that
    ``cvx-lifted --import my_activations`` finds ``./my_activations.py``.

    Parameters
    ----------
    modules : iterable of str
        Dotted module names.

    Returns
    -------
    list of module

    Raises
    ------
    ValueError
        If a module cannot be imported; the message names it and the error it raised.
    """
    out = []
    for name in modules:
        if not isinstance(name, str) or not name.strip() or name.strip().endswith(".py"):
            raise ValueError(
                f"--import takes a module name such as my_package.activations, got {name!r} "
                "(for a file my_activations.py in the current folder, pass my_activations)."
            )
        cwd = os.getcwd()
        if cwd not in sys.path:
            sys.path.append(cwd)
        try:
            out.append(importlib.import_module(name.strip()))
        except ModuleNotFoundError as exc:
            raise ValueError(
                f"cannot import the module {name!r} ({type(exc).__name__}: {exc}); make it "
                "importable (install its package, or add its folder to PYTHONPATH)."
            ) from exc
        except Exception as exc:  # found, but its code failed: the fix is in that module
            raise ValueError(
                f"the module {name!r} was found but raised {type(exc).__name__} while it was "
                f"imported: {exc} (fix the module; run it with python to see the traceback)."
            ) from exc
    return out


def activation_module(activation: Any) -> str | None:
    """Return the module that defines a user activation, or ``None`` for a built-in.

    For an activation made by :func:`cvx_lifted.custom_activation` this is the module whose code
    called it (recorded then; a closed form such as a NumPy or SciPy ufunc says nothing about
    where the call lives); for a registered class, the class's module.

    Parameters
    ----------
    activation : Activation
        An activation instance.

    Returns
    -------
    str or None
    """
    cls = type(activation)
    module = getattr(cls, "__module__", None) or ""
    defined_in = getattr(cls, "_defined_in", None)
    fn = cls.__dict__.get("_closed_form_fn")
    if isinstance(defined_in, str):
        module = defined_in
    elif fn is not None:
        module = getattr(getattr(fn, "__func__", fn), "__module__", None) or module
    if not module or module == "cvx_lifted" or module.startswith("cvx_lifted."):
        return None
    return module


def resolve_activation(spec: Any) -> Activation:
    """Return an activation from a name, an instance or a class; load entry points on demand.

    Like :func:`cvx_lifted.get_activation`, but a name that is not registered yet is looked up
    in the ``cvx_lifted.activations`` entry points of installed packages
    (:mod:`cvx_lifted.plugins`) before giving up.

    Parameters
    ----------
    spec : str, Activation or Activation subclass

    Returns
    -------
    Activation

    Raises
    ------
    ValueError
        If the name is unknown everywhere, or ``spec`` is of another type.
    """
    try:
        return get_activation(spec)
    except ValueError:
        if not isinstance(spec, str):
            raise
        key = spec.strip()
        if key in ACTIVATIONS or not load_activation_plugin(key):
            raise
        return get_activation(key)


def resolve_activations(activation: Any, n_hidden: int) -> list[Activation]:
    """Return one activation per hidden layer from a single spec or a sequence of specs.

    Parameters
    ----------
    activation : str, Activation, Activation subclass, or a sequence of them
        One spec for every hidden layer, or one per hidden layer.
    n_hidden : int
        The number of hidden layers.

    Returns
    -------
    list of Activation

    Raises
    ------
    ValueError
        Naming the bad entry, or the count when it differs from ``n_hidden``.
    """
    single = isinstance(activation, (str, Activation)) or (
        isinstance(activation, type) and issubclass(activation, Activation)
    )
    if single:
        return [resolve_activation(activation) for _ in range(n_hidden)]
    if not isinstance(activation, (Sequence, np.ndarray)):
        raise ValueError(
            f"activation must be a name (e.g. {defaults.ACTIVATION!r}), an Activation, or a "
            f"sequence of them (one per hidden layer), got {activation!r} "
            f"({type(activation).__name__})."
        )
    acts = []
    for i, item in enumerate(activation):
        try:
            acts.append(resolve_activation(item))
        except ValueError as exc:
            raise ValueError(f"activation[{i}]: {exc}") from None
    if len(acts) != n_hidden:
        raise ValueError(
            f"got {len(acts)} activations for {n_hidden} hidden layers; pass one name for "
            f"all layers or one per hidden layer."
        )
    return acts
