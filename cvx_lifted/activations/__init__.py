# SPDX-License-Identifier: Apache-2.0
r"""The activation catalogue: every activation is the argmin of a convex divergence.

``ACTIVATIONS`` maps each registry name to its class; :func:`get_activation` builds one from a
name and parameters; :func:`register_activation` adds a user-defined class so that it can be used
(and saved, by name) wherever a built-in can. See :mod:`cvx_lifted.activations.base` for the
protocol and :func:`cvx_lifted.custom_activation` for the quickest way to declare a new one.

Examples
--------
>>> from cvx_lifted import get_activation
>>> get_activation("clip", lo=-1.0, hi=1.0).act([[-2.0, 0.5]])
array([[-1. ,  0.5]])
"""

from __future__ import annotations

import difflib
from typing import Any

from cvx_lifted.activations.base import (
    Activation,
    BoxActivation,
    FenchelYoungActivation,
    ProjectionActivation,
)
from cvx_lifted.activations.closed_form import Sin, Softplus
from cvx_lifted.activations.fenchel import LeakyReLUFenchel, ReLUFenchel, Sigmoid, Sign, Tanh
from cvx_lifted.activations.pooling import MaxPool
from cvx_lifted.activations.projection import (
    Clip,
    HardSigmoid,
    HardTanh,
    Identity,
    LeakyReLU,
    ReLU,
    ReLUL1,
    Sparsemax,
)

__all__ = [
    "ACTIVATIONS",
    "Activation",
    "BoxActivation",
    "Clip",
    "FenchelYoungActivation",
    "HardSigmoid",
    "HardTanh",
    "Identity",
    "LeakyReLU",
    "LeakyReLUFenchel",
    "MaxPool",
    "ProjectionActivation",
    "ReLU",
    "ReLUFenchel",
    "ReLUL1",
    "Sigmoid",
    "Sign",
    "Sin",
    "Softplus",
    "Sparsemax",
    "Tanh",
    "get_activation",
    "register_activation",
]

ACTIVATIONS: dict[str, type[Activation]] = {
    "identity": Identity,
    "relu": ReLU,
    "relu_l1": ReLUL1,
    "relu_fenchel": ReLUFenchel,
    "leaky_relu": LeakyReLU,
    "leaky_relu_fenchel": LeakyReLUFenchel,
    "clip": Clip,
    "hard_sigmoid": HardSigmoid,
    "hard_tanh": HardTanh,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "sign": Sign,
    "sparsemax": Sparsemax,
    "max_pool": MaxPool,
    "softplus": Softplus,
    "sin": Sin,
}
"""Registry of activation classes by name (built-ins first, then user registrations)."""

BUILTIN_ACTIVATIONS: frozenset[str] = frozenset(ACTIVATIONS)


def get_activation(activation: str | Activation, **params: Any) -> Activation:
    """Return an activation instance from a registry name (or pass an instance through).

    Parameters
    ----------
    activation : str or Activation
        A name in :data:`ACTIVATIONS` or an already built activation.
    **params
        Constructor parameters, e.g. ``alpha=0.1`` for ``leaky_relu``.

    Returns
    -------
    Activation

    Raises
    ------
    ValueError
        If the name is unknown (the message lists close matches and all names) or the parameters
        do not fit the activation.
    """
    if isinstance(activation, Activation):
        if params:
            raise ValueError("pass parameters either inside the activation instance or as names.")
        return activation
    if isinstance(activation, type) and issubclass(activation, Activation):
        return activation(**params)
    if not isinstance(activation, str):
        raise ValueError(
            f"activation must be a name or an Activation instance, got {type(activation).__name__}."
        )
    key = activation.strip().lower().replace("-", "_")
    if key not in ACTIVATIONS:
        close = difflib.get_close_matches(key, list(ACTIVATIONS), n=3)
        hint = f" Did you mean {' or '.join(map(repr, close))}?" if close else ""
        raise ValueError(
            f"unknown activation {activation!r}.{hint} Known activations: "
            f"{', '.join(sorted(ACTIVATIONS))}; register your own with "
            "cvx_lifted.register_activation or cvx_lifted.custom_activation."
        )
    cls = ACTIVATIONS[key]
    try:
        return cls(**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for activation {key!r}: {exc}") from None


def register_activation(
    cls: type[Activation], name: str | None = None, *, overwrite: bool = False
) -> type[Activation]:
    """Add an activation class to :data:`ACTIVATIONS` (usable as a decorator).

    Parameters
    ----------
    cls : type
        A subclass of :class:`Activation`.
    name : str, optional
        Registry name; defaults to ``cls.name``.
    overwrite : bool, default=False
        Replace an existing user registration of the same name. Built-ins are never replaced.

    Returns
    -------
    type
        ``cls``, unchanged.

    Raises
    ------
    ValueError
        If ``cls`` is not an Activation subclass, has no name, or the name is taken.
    """
    if not (isinstance(cls, type) and issubclass(cls, Activation)):
        raise ValueError(f"register_activation needs an Activation subclass, got {cls!r}.")
    key = (name or cls.name or "").strip()
    if not key:
        raise ValueError(f"{cls.__name__} has no name: set the class attribute 'name'.")
    if key in BUILTIN_ACTIVATIONS:
        raise ValueError(f"{key!r} is a built-in activation; choose another name.")
    if key in ACTIVATIONS and ACTIVATIONS[key] is not cls and not overwrite:
        raise ValueError(
            f"an activation named {key!r} is already registered; pass overwrite=True to replace it."
        )
    if cls.name != key:
        cls.name = key
    ACTIVATIONS[key] = cls
    return cls
