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

from cvx_lifted.network import LiftedNetwork

__all__ = [
    "AUDIT_ACTIVATIONS",
    "TOLERANCES",
    "assert_allclose_rel",
    "random_fit_audit",
    "rel_error",
    "solver_tolerance",
]

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

    A NaN or an infinity fails unless the other array has the same value at that entry (NaN
    against NaN, or the same infinity).

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
    same = (a == d) | (np.isnan(a) & np.isnan(d))
    bad = ~(np.isfinite(a) & np.isfinite(d)) & ~same  # a NaN or an infinity not matched
    if np.any(bad):
        idx = tuple(int(i) for i in np.unravel_index(int(np.argmax(bad)), a.shape))
        raise AssertionError(f"{what}: {float(a[idx])} vs {float(d[idx])} at {idx} (not finite)")
    with np.errstate(invalid="ignore"):  # equal infinities and NaN pairs agree: error 0
        err = np.where(np.isfinite(a) & np.isfinite(d), rel_error(a, d), 0.0)
    worst = int(np.argmax(err))
    if err.flat[worst] > tol:
        idx = tuple(int(i) for i in np.unravel_index(worst, a.shape))
        raise AssertionError(
            f"{what}: max relative error {err.flat[worst]:.3e} > {tol:.1e} at {idx}: "
            f"{float(a[idx])!r} vs {float(d[idx])!r}"
        )


#: Catalogue activations drawn by :func:`random_fit_audit` (every trainable elementwise one).
AUDIT_ACTIVATIONS = (
    "identity",
    "relu",
    "relu_l1",
    "relu_fenchel",
    "leaky_relu",
    "leaky_relu_fenchel",
    "clip",
    "hard_sigmoid",
    "hard_tanh",
    "sigmoid",
    "tanh",
    "sign",
    "sparsemax",
)


def random_fit_audit(seed: int, *, sweeps: int = 3, rtol: float = 1e-9) -> dict[str, object]:
    """Train a small random lifted network and check that no block raised the objective.

    The network (1-3 hidden layers of 2-6 units, activations drawn from
    :data:`AUDIT_ACTIVATIONS`, a random head and backend, 10-25 rows) is trained with
    ``track_blocks=True``; every block's objective is compared with the previous one. A rise
    beyond ``rtol`` (relative) is a violation; compiled answers that rose and were rejected by
    training are counted separately (they left the objective unchanged).

    Parameters
    ----------
    seed : int
        Seed of the network, the data and the initialisation.
    sweeps : int, default=3
    rtol : float, default=1e-9

    Returns
    -------
    dict
        ``setting`` (activations, head, backend, sizes), ``violations`` (list of
        ``(sweep, block, rise)``), ``rejected``, ``retried``, ``increases`` and ``error`` (the
        message of an exception, or ``None``).
    """
    rng = np.random.default_rng(seed)
    n_hidden = int(rng.integers(1, 4))
    acts = [str(a) for a in rng.choice(AUDIT_ACTIVATIONS, size=n_hidden)]
    head = str(rng.choice(["squared", "simplex_xent", "softmax_xent"]))
    backend = str(rng.choice(["auto", "cvxpy"]))
    m, n_in, n_out = int(rng.integers(10, 26)), 3, int(rng.integers(2, 4))
    sizes = [n_in, *[int(w) for w in rng.integers(2, 7, size=n_hidden)], n_out]
    X = rng.normal(size=(m, n_in))
    Y = np.eye(n_out)[rng.integers(0, n_out, m)]
    setting = {"activations": acts, "head": head, "backend": backend, "sizes": sizes}
    out: dict[str, object] = {"setting": setting, "violations": [], "error": None}
    try:
        net = LiftedNetwork(sizes, activation=acts, output=head, lam=1.0, rho=1e-2)
        result = net.fit(
            X, Y, max_iter=sweeps, tol=0, random_state=seed, backend=backend,
            track_blocks=True, batch_size=8,
        )  # fmt: skip
    except Exception as exc:  # noqa: BLE001 - reported, not hidden
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    history = result.history
    previous = history.objective[0]
    violations = []
    for sweep, block, value in history.blocks:
        if value - previous > rtol * max(abs(previous), 1e-12):
            violations.append((sweep, block, (value - previous) / max(abs(previous), 1e-12)))
        previous = value
    out.update(
        violations=violations,
        rejected=len(history.rejected),
        retried=len(history.retried),
        increases=list(history.increases),
    )
    return out
