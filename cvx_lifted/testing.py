# SPDX-License-Identifier: Apache-2.0
r"""Tolerances and comparison helpers shared by :func:`cvx_lifted.verify`, the tests and users.

Errors are measured relative-with-offset, :math:`|a - b| / (1 + |b|)`, as in CVXPY's own atom
tests: absolute near zero, relative for large values.

==================  ===========  ==========================================================
who answers         tolerance    why
==================  ===========  ==========================================================
closed form/kernel  1e-12        same formula in floating point (sort-based, analytic)
CLARABEL, ECOS      1e-6         interior point, ~1e-10 gaps in tight mode
SCS                 1e-4         first-order conic
OSQP                1e-6         tight eps (1e-10) and polishing in verification mode;
                                 ~4e-5 at CVXPY's defaults, so 1e-4 in default mode
==================  ===========  ==========================================================
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["TOLERANCES", "assert_allclose_rel", "rel_error", "solver_tolerance"]

TOLERANCES: dict[str, dict[str, float]] = {
    "tight": {"closed_form": 1e-12, "CLARABEL": 1e-6, "ECOS": 1e-6, "OSQP": 1e-6, "SCS": 1e-4},
    "default": {"closed_form": 1e-12, "CLARABEL": 1e-5, "ECOS": 1e-5, "OSQP": 1e-4, "SCS": 1e-3},
}
"""Verification tolerance by accuracy mode and by who produced the answer."""


def solver_tolerance(solver: str | None, accuracy: str = "tight") -> float:
    """Return the verification tolerance for a solver name (``None`` means the closed form).

    Parameters
    ----------
    solver : str or None
        Solver name as CVXPY spells it, or ``None`` / ``"closed_form"``.
    accuracy : {"tight", "default"}
        The accuracy mode the answer was computed in.

    Returns
    -------
    float
    """
    table = TOLERANCES[accuracy]
    key = "closed_form" if solver is None else str(solver).upper()
    if key == "CLOSED_FORM":
        key = "closed_form"
    return table.get(key, max(table.values()))


def rel_error(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Elementwise relative-with-offset error :math:`|a-b|/(1+|b|)`.

    Parameters
    ----------
    a, b : array_like
        Values to compare, ``b`` the reference.

    Returns
    -------
    numpy.ndarray
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return np.abs(a - b) / (1.0 + np.abs(b))


def assert_allclose_rel(actual: ArrayLike, desired: ArrayLike, tol: float, what: str = "") -> None:
    """Assert that ``max |a-b|/(1+|b|) <= tol``, reporting the worst entry.

    Parameters
    ----------
    actual, desired : array_like
        Values to compare, ``desired`` the reference; shapes must match.
    tol : float
        Tolerance.
    what : str, optional
        Label used in the failure message.

    Raises
    ------
    AssertionError
    """
    a = np.asarray(actual, dtype=np.float64)
    d = np.asarray(desired, dtype=np.float64)
    if a.shape != d.shape:
        raise AssertionError(f"{what}: shape {a.shape} != {d.shape}")
    if a.size == 0:
        return
    err = rel_error(a, d)
    worst = int(np.argmax(err))
    if err.flat[worst] > tol:
        idx = np.unravel_index(worst, a.shape)
        raise AssertionError(
            f"{what}: max relative error {err.flat[worst]:.3e} > {tol:.1e} at {idx}: "
            f"{a[idx]!r} vs {d[idx]!r}"
        )
