# SPDX-License-Identifier: Apache-2.0
r"""The elementwise Fenchel–Young pair :class:`ScalarFY` (private module).

Re-exported by :mod:`~cvx_lifted.kernels.fenchel_young` (its home in the documentation) and
:mod:`cvx_lifted.kernels`; the couplings of :mod:`~cvx_lifted.kernels.boxqp` import it from here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["Elementwise", "ScalarFY"]

FloatArray = NDArray[np.floating[Any]]
Elementwise = Callable[[FloatArray], FloatArray]
"""An elementwise map of float arrays."""


@dataclass(frozen=True)
class ScalarFY:
    r"""An elementwise Fenchel–Young pair :math:`(\Phi, \Phi^*)`, :math:`\phi = (\Phi^*)'`.

    All callables act elementwise on arrays (any shape, ``float32`` or ``float64``) and return new
    arrays of the same shape.

    Parameters
    ----------
    name : str
        A label (used in messages).
    conj : callable
        :math:`\Phi^*(u)`, finite on all of :math:`\mathbb R`.
    conj_grad : callable
        The activation :math:`\phi(u) = \Phi^{*\prime}(u)`, with values in :math:`[lo, hi]`.
    conj_hess : callable
        :math:`\phi'(u) \ge 0` (a generalised derivative where :math:`\phi` has a kink).
    phi : callable
        :math:`\Phi(z)` on :math:`[lo, hi]` (finite at finite bounds).
    phi_grad : callable
        :math:`\Phi'(z) = \phi^{-1}(z)` on the open interval :math:`(lo, hi)`.
    phi_hess : callable
        :math:`\Phi''(z) > 0` on :math:`(lo, hi)`.
    lo, hi : float, default -inf, inf
        The domain of :math:`\Phi`, ``lo < hi``.
    closed : bool, default False
        ``True`` when the bounds can be attained (:math:`\Phi'` finite there, e.g. ``relu_fenchel``
        at :math:`z = 0`); ``False`` when :math:`\Phi' \to \mp\infty` at finite bounds, so that
        minimisers stay strictly inside.
    curvature : float, default 1.0
        :math:`\sup_u \phi'(u)` (1/4 for the sigmoid, 1 for tanh and ReLU), the Lipschitz constant
        of :math:`\phi`.

    Raises
    ------
    ValueError
        If a callable is missing, ``lo >= hi`` or ``curvature`` is not a finite number > 0.
    """

    name: str
    conj: Elementwise
    conj_grad: Elementwise
    conj_hess: Elementwise
    phi: Elementwise
    phi_grad: Elementwise
    phi_hess: Elementwise
    lo: float = -np.inf
    hi: float = np.inf
    closed: bool = False
    curvature: float = 1.0

    def __post_init__(self) -> None:
        for field in ("conj", "conj_grad", "conj_hess", "phi", "phi_grad", "phi_hess"):
            if not callable(getattr(self, field)):
                raise ValueError(f"ScalarFY.{field} must be callable")
        lo, hi = float(self.lo), float(self.hi)
        if np.isnan(lo) or np.isnan(hi) or not lo < hi:
            raise ValueError(f"ScalarFY needs lo < hi, got lo={self.lo!r}, hi={self.hi!r}")
        curv = float(self.curvature)
        if not (np.isfinite(curv) and curv > 0.0):
            raise ValueError(
                f"ScalarFY.curvature must be a finite number > 0, got {self.curvature!r}"
            )
        object.__setattr__(self, "lo", lo)
        object.__setattr__(self, "hi", hi)
        object.__setattr__(self, "curvature", curv)
        object.__setattr__(self, "closed", bool(self.closed))

    def inner_bounds(self) -> tuple[float, float]:
        r"""Return the closed interval a few ulps inside :math:`(lo, hi)` that kernels clip to.

        Finite bounds move inwards by four ulps (at least 1e-300, so that :math:`\Phi''` stays
        finite at a bound 0); infinite bounds stay. For a ``closed`` pair the bounds themselves.
        """
        if self.closed:
            return self.lo, self.hi
        lo, hi = self.lo, self.hi
        if np.isfinite(lo):
            lo = lo + max(4.0 * abs(float(np.spacing(lo))), 1e-300)
        if np.isfinite(hi):
            hi = hi - max(4.0 * abs(float(np.spacing(hi))), 1e-300)
        if not lo < hi:
            raise ValueError(f"the domain ({self.lo}, {self.hi}) of {self.name} is too narrow")
        return lo, hi
