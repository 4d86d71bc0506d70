# SPDX-License-Identifier: Apache-2.0
r"""User-defined activations declared as convex programs.

:func:`custom_activation` turns three plain functions (the divergence as a CVXPY expression, its
domain constraints, and the closed form) into a registered :class:`Activation` that works wherever
a built-in does: verification, compiled argmin problems, lifted training through the CVXPY path,
and model files (which store the registry name).

The definition is checked when it is created, on a small probe shape, and again whenever a problem
is compiled for a real shape:

* convex (DCP) in ``z`` with ``u`` a parameter, and DPP in ``u`` (otherwise it cannot be
  compiled once): :class:`~cvx_lifted.exceptions.NonConvexError` and
  :class:`~cvx_lifted.exceptions.NotDPPError` name the sub-expression that breaks the rule;
* convex in ``u`` with ``z`` fixed (needed by the weight step of lifted training) and jointly
  convex: recorded as ``convexity`` = ``"joint"``, ``"biconvex"`` or ``"z-only"`` (usable as an
  activation and verifiable, but not trainable).

Examples
--------
>>> import cvxpy as cp, numpy as np
>>> from cvx_lifted import custom_activation, verify
>>> soft = custom_activation(
...     name="doc_soft_threshold",
...     divergence=lambda u, z: 0.5 * cp.sum_squares(z - u) + 0.1 * cp.norm1(z),
...     closed_form=lambda u: np.sign(u) * np.maximum(np.abs(u) - 0.1, 0.0),
... )
>>> soft.convexity
'joint'
>>> verify(soft).passed
True
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import cvxpy as cp
import numpy as np
from numpy.typing import ArrayLike

from cvx_lifted.activations import ACTIVATIONS, register_activation
from cvx_lifted.activations.base import Activation, FloatArray
from cvx_lifted.exceptions import NonConvexError, NotDPPError

__all__ = ["CustomActivation", "check_divergence", "custom_activation"]

DivergenceFn = Callable[[Any, Any], cp.Expression]
DomainFn = Callable[[Any, Any], Sequence[cp.Constraint]]
ClosedFormFn = Callable[[np.ndarray], ArrayLike]


def _problem(act: Activation, u: Any, z: Any) -> cp.Problem:
    return cp.Problem(cp.Minimize(act.divergence(u, z)), list(act.domain(u, z)))


def check_divergence(act: Activation, n_features: int = 3, n_rows: int = 2) -> str:
    """Check the convexity of an activation's divergence and classify it.

    Parameters
    ----------
    act : Activation
        The activation to check.
    n_features, n_rows : int
        Probe shape of ``u``.

    Returns
    -------
    str
        ``"joint"``, ``"biconvex"`` or ``"z-only"``.

    Raises
    ------
    NonConvexError
        If the divergence is not convex (DCP) in ``z`` for a parameter ``u``.
    NotDPPError
        If it is convex in ``z`` but not DPP in ``u``.
    """
    from cvx_lifted.compile import explain_not_dcp

    k = act.output_size(n_features)
    u = cp.Parameter((n_rows, n_features))
    z = cp.Variable((n_rows, k))
    what = f"divergence of {act.name!r} in z (u a Parameter)"
    try:
        prob = _problem(act, u, z)
    except cp.error.DCPError as exc:  # raised eagerly by some atoms, e.g. quad_over_lin
        raise NonConvexError(f"The {what} is not DCP: {exc}") from None
    if not prob.is_dcp():
        raise NonConvexError(explain_not_dcp(prob, what=what))
    if not prob.is_dpp():
        raise NotDPPError(explain_not_dcp(prob, dpp=True, what=what))
    try:
        joint = _problem(act, cp.Variable((n_rows, n_features)), cp.Variable((n_rows, k)))
        if joint.is_dcp():
            return "joint"
        in_u = _problem(act, cp.Variable((n_rows, n_features)), cp.Parameter((n_rows, k)))
        if in_u.is_dcp():
            return "biconvex"
    except (cp.error.DCPError, ValueError):
        pass
    return "z-only"


class CustomActivation(Activation):
    """Base of activations built by :func:`custom_activation` (one generated subclass each)."""

    _divergence_fn: ClassVar[DivergenceFn]
    _domain_fn: ClassVar[DomainFn | None] = None
    _closed_form_fn: ClassVar[ClosedFormFn]
    convexity: ClassVar[str] = "z-only"  # type: ignore[assignment]
    cone: ClassVar[str] = "?"

    def divergence(self, u: Any, z: Any) -> cp.Expression:  # noqa: D102
        expr = type(self)._divergence_fn(u, z)
        if not isinstance(expr, cp.Expression):
            raise TypeError(
                f"the divergence of {self.name!r} must return a CVXPY expression, got "
                f"{type(expr).__name__}."
            )
        if expr.size != 1:
            raise ValueError(
                f"the divergence of {self.name!r} must be a scalar (sum over rows and entries), "
                f"got shape {expr.shape}; wrap it in cp.sum(...)."
            )
        return expr

    def domain(self, u: Any, z: Any) -> list[cp.Constraint]:  # noqa: D102
        fn = type(self)._domain_fn
        return [] if fn is None else list(fn(u, z))

    def _act(self, u: FloatArray) -> FloatArray:
        out = np.asarray(type(self)._closed_form_fn(u), dtype=u.dtype)
        if out.shape[0] != u.shape[0] or out.ndim != 2:
            raise ValueError(
                f"the closed form of {self.name!r} must map an (m, n) array to (m, k) rows, "
                f"got {out.shape} for input {u.shape}."
            )
        return out


def custom_activation(
    *,
    name: str,
    divergence: DivergenceFn,
    closed_form: ClosedFormFn,
    domain: DomainFn | None = None,
    formula: str = "",
    register: bool = True,
    overwrite: bool = False,
    probe_features: int = 3,
) -> Activation:
    r"""Declare an activation as a convex program, check it, and (by default) register it.

    Parameters
    ----------
    name : str
        Registry name (must not be a built-in's).
    divergence : callable ``(u, z) -> cvxpy.Expression``
        :math:`D(u, z)` summed over all entries; ``u`` is a parameter or an affine expression,
        ``z`` a variable, both of shape ``(m, n)`` (rows are samples).
    closed_form : callable ``(ndarray) -> ndarray``
        :math:`\phi(u)` on an ``(m, n)`` NumPy array.
    domain : callable ``(u, z) -> list of cvxpy.Constraint``, optional
        Domain constraints.
    formula : str, optional
        Text shown by ``cvx-lifted list``.
    register : bool, default=True
        Add it to :data:`cvx_lifted.ACTIVATIONS` so that ``get_activation(name)`` and saved
        models can find it.
    overwrite : bool, default=False
        Replace an earlier registration under the same name.
    probe_features : int, default=3
        Width of the probe used to check convexity now.

    Returns
    -------
    Activation
        An instance of a new :class:`CustomActivation` subclass.

    Raises
    ------
    NonConvexError, NotDPPError
        With a message naming the offending sub-expression.
    ValueError
        For a bad name or a name clash.
    """
    if not isinstance(name, str) or not name.strip():
        raise ValueError("custom_activation needs a non-empty name.")
    for arg, fn in (("divergence", divergence), ("closed_form", closed_form)):
        if not callable(fn):
            raise ValueError(f"{arg} must be callable, got {type(fn).__name__}.")
    if domain is not None and not callable(domain):
        raise ValueError(f"domain must be callable or None, got {type(domain).__name__}.")
    if register and name in ACTIVATIONS and not overwrite:
        raise ValueError(
            f"an activation named {name!r} is already registered; pass overwrite=True."
        )
    attrs: dict[str, Any] = {
        "name": name,
        "_divergence_fn": staticmethod(divergence),
        "_domain_fn": staticmethod(domain) if domain is not None else None,
        "_closed_form_fn": staticmethod(closed_form),
        "formula": formula or "user closed form",
        "divergence_text": "user CVXPY expression",
        "domain_text": "user constraints" if domain is not None else "-",
        "__doc__": f"User-defined activation {name!r} (see cvx_lifted.custom_activation).",
    }
    cls = type(f"Custom_{name}", (CustomActivation,), attrs)
    probe = cls()
    cls.convexity = check_divergence(probe, n_features=probe_features)
    cls.cone = _cone(probe, probe_features)
    if register:
        register_activation(cls, name, overwrite=overwrite)
    return probe


def _cone(act: Activation, n: int) -> str:
    from cvx_lifted.compile import problem_class

    u = cp.Parameter((1, n))
    z = cp.Variable((1, act.output_size(n)))
    return problem_class(_problem(act, u, z))
