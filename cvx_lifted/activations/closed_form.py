# SPDX-License-Identifier: Apache-2.0
r"""Activations with a closed form but no convex program in CVXPY's rules (DCP).

They are in the catalogue so that users can evaluate them and see *why* there is no program:
asking for :meth:`~cvx_lifted.activations.base.Activation.divergence` raises
:class:`~cvx_lifted.exceptions.NotRepresentableError` with the reason.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from cvx_lifted.activations.base import ClosedFormOnly, FloatArray

__all__ = ["Sin", "Softplus"]


class Softplus(ClosedFormOnly):
    r"""Softplus :math:`\log(1 + e^u)`: no closed-form :math:`\Phi`, hence no DCP divergence.

    Its :math:`\Phi(z) = \int_0^z \log(e^t - 1)\,dt` on :math:`z \ge 0` (paper §4) is a
    dilogarithm, which no CVXPY atom represents.

    Examples
    --------
    >>> float(Softplus().act([[0.0]])[0, 0]) == float(np.log(2.0))
    True
    """

    name: ClassVar[str] = "softplus"
    formula: ClassVar[str] = "log(1 + exp(u))"
    domain_text: ClassVar[str] = "z >= 0"
    why: ClassVar[str] = (
        "its Phi(z) = integral of log(e^t - 1) is a dilogarithm with no closed form and no "
        "CVXPY atom (paper section 4). Use 'relu_fenchel' (its piecewise-linear relative) or "
        "'sigmoid' for a smooth activation with an exponential-cone program."
    )

    def _act(self, u: FloatArray) -> FloatArray:
        return np.logaddexp(0.0, u).astype(u.dtype, copy=False)


class Sin(ClosedFormOnly):
    r"""Sine: :math:`\Phi(z) = z\arcsin z + \sqrt{1-z^2}` is convex but not DCP.

    The paper's representation (§4, "non-monotone examples") recovers
    :math:`\sin u` only for :math:`|u| \le \pi/2`; outside, the argmin is :math:`\pm 1`.
    :math:`z \arcsin z` has no CVXPY atom and :math:`\sqrt{1 - z^2}` is concave, so the sum,
    though convex, cannot be certified by the DCP rules.
    """

    name: ClassVar[str] = "sin"
    formula: ClassVar[str] = "sin(u)"
    domain_text: ClassVar[str] = "-1 <= z <= 1"
    why: ClassVar[str] = (
        "its Phi(z) = z arcsin(z) + sqrt(1 - z^2) adds a concave term to a function with no "
        "CVXPY atom, so DCP cannot certify it; and the argmin equals sin(u) only for "
        "|u| <= pi/2. Use 'tanh' or 'hard_tanh' for a bounded activation with a program."
    )

    def _act(self, u: FloatArray) -> FloatArray:
        return np.sin(u)
