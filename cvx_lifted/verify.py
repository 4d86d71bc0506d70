# SPDX-License-Identifier: Apache-2.0
r"""Verify an activation: solve its convex program and compare with its closed form.

For every row :math:`u` of the input, :func:`verify` solves
:math:`\min_z D(u, z)` over the domain with a problem compiled once (:class:`CompiledArgmin`) and
compares the solver's :math:`z` with the closed form :math:`\phi(u)`. It also reports two cheap
optimality checks that need no dual variables:

* the **optimality gap** :math:`\max_u [D(u, \phi(u)) - D(u, z_{\rm solver})]/(1+|D|)`: a
  clearly positive value means the solver found a *better* point than the closed form, i.e. the
  closed form is wrong (the usual bug in a custom activation);
* the **domain violation** of the closed form and of the solver's answer.

Examples
--------
>>> from cvx_lifted import verify
>>> report = verify("relu")
>>> report.passed
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from cvx_lifted._validation import (
    check_non_negative_float,
    check_non_negative_int,
    check_positive_int,
)
from cvx_lifted.activations import ACTIVATIONS, Activation
from cvx_lifted.activations.base import as_float_array, require_program
from cvx_lifted.argmin import CompiledArgmin
from cvx_lifted.compile import Accuracy
from cvx_lifted.exceptions import NotRepresentableError
from cvx_lifted.plugins import resolve_activation
from cvx_lifted.testing import rel_error, solver_tolerance

__all__ = [
    "PROBE_GRID",
    "VerificationReport",
    "default_inputs",
    "format_reports",
    "verify",
    "verify_all",
]


@dataclass(frozen=True)
class VerificationReport:
    """What :func:`verify` found for one activation.

    Attributes
    ----------
    activation : str
        Activation registry name, with its parameters if any (``leaky_relu(alpha=0.3)``).
    n_rows, n_features : int
        Shape of the inputs checked.
    max_abs_error, max_rel_error : float
        Largest ``|z - phi(u)|`` and ``|z - phi(u)| / (1 + |phi(u)|)`` over the entries whose
        argmin is unique.
    optimality_gap : float
        Largest ``(D(u, phi(u)) - D(u, z)) / (1 + |D(u, z)|)`` over rows; positive beyond the
        tolerance means the closed form is not the argmin.
    closed_form_violation, solver_violation : float
        Largest domain violation of the closed form and of the solver's answer.
    solver, status : str
        Solver that answered last and its status.
    compile_seconds, solve_seconds : float
        One-off compile time and total solve time.
    n_solves : int
        Number of solves (one per batch of rows).
    tolerance : float
        Tolerance the errors were held to.
    passed : bool
        All checks within tolerance.
    reason : str
        Why it failed (empty when it passed).
    """

    activation: str
    n_rows: int
    n_features: int
    max_abs_error: float
    max_rel_error: float
    optimality_gap: float
    closed_form_violation: float
    solver_violation: float
    solver: str
    status: str
    compile_seconds: float
    solve_seconds: float
    n_solves: int
    tolerance: float
    passed: bool
    reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the report as a plain dict (JSON-friendly)."""
        return asdict(self)

    def __str__(self) -> str:
        verdict = "PASS" if self.passed else f"FAIL ({self.reason})"
        return (
            f"{self.activation}: {verdict}; max rel error {self.max_rel_error:.1e} "
            f"(tol {self.tolerance:.0e}), gap {self.optimality_gap:.1e}, solver {self.solver} "
            f"[{self.status}], compile {self.compile_seconds * 1e3:.0f} ms, "
            f"{self.solve_seconds / max(self.n_solves, 1) * 1e3:.2f} ms/solve"
        )


def _label(act: Activation) -> str:
    """Registry name, with the parameters when there are any: ``leaky_relu(alpha=0.3)``."""
    if not act.params:
        return act.name
    return f"{act.name}(" + ", ".join(f"{k}={v!r}" for k, v in act.params.items()) + ")"


def _feature_count(act: Activation, preferred: int = 4) -> int:
    for n in (preferred, 6, 8, 12, 16):
        try:
            act.output_size(n)
        except ValueError:
            continue
        return n
    raise ValueError(f"could not find an input width that {act!r} accepts; pass U explicitly.")


PROBE_GRID: np.ndarray = np.concatenate([-np.logspace(3, -6, 55), [0.0], np.logspace(-6, 3, 55)])
"""Log-spaced probe values of :func:`default_inputs`: 55 per sign from 1e-6 to 1e3 (six per
decade) and 0, so that a closed form wrong on a whole interval of ``u`` (say 8 < u < 45) is
caught whatever the seed."""


def default_inputs(
    activation: Activation | str, n_features: int | None = None, *, n_random: int = 8, seed: int = 0
) -> np.ndarray:
    """Build standard verification inputs: random rows, a log-spaced grid and edge values.

    Random rows at two scales, then rows of :data:`PROBE_GRID` (both signs, 1e-6 to 1e3, six
    values per decade, each row holding neighbouring grid values; from the activation's smallest
    non-zero edge value on, when that is larger, as for ``sign``), then rows of edge values: 0,
    ±1e-8, ±1, ±50 and each activation's domain boundaries (and their ±1e-8 neighbours); every
    grid and edge value appears in at least one row.

    Parameters
    ----------
    activation : Activation or str
        The activation (its ``edge_values`` and accepted widths matter).
    n_features : int, optional
        Row width; by default 4 (or the next width a pooling activation accepts).
    n_random : int, default=8
        Number of random rows (standard normal times 3; two more at scale 1e-3).
    seed : int, default=0
        Seed of the random rows.

    Returns
    -------
    numpy.ndarray, shape (m, n_features)
    """
    base, grid = _input_groups(resolve_activation(activation), n_features, n_random, seed)
    n_edge = base.shape[0] - n_random - 2
    return np.vstack([base[: base.shape[0] - n_edge], grid, base[base.shape[0] - n_edge :]])


def _input_groups(
    act: Activation, n_features: int | None, n_random: int, seed: int
) -> list[np.ndarray]:
    """Return the default inputs as two groups: random and edge rows, then the grid rows.

    :func:`verify` solves each group in batches of its own, so that a batch never mixes the
    grid's 1e3 with an edge row's 1e-2 (for ``sign`` at the default accuracy, the absolute
    tolerance of the solver would blur the smaller one).
    """
    n = _feature_count(act) if n_features is None else int(n_features)
    rng = np.random.default_rng(seed)
    edges = np.asarray(act.edge_values, dtype=np.float64)
    edge_rows = [np.resize(np.roll(edges, -j), n) for j in range(0, len(edges), max(1, n // 2))]
    rows = [3.0 * rng.standard_normal((n_random, n)), 1e-3 * rng.standard_normal((2, n))]
    # the grid starts at the smallest non-zero edge value an activation declares (sign's argmin
    # is ill-conditioned below 1e-2, so it declares no smaller one), at 1e-6 at the least
    nonzero = np.abs(edges[edges != 0])
    lo = max(1e-6, float(nonzero.min())) if nonzero.size else 1e-6
    keep = (np.abs(PROBE_GRID) >= lo * (1 - 1e-12)) | ((PROBE_GRID == 0) & np.any(edges == 0))
    values = PROBE_GRID[keep]
    grid = np.resize(values, math.ceil(values.size / n) * n).reshape(-1, n)
    return [np.vstack(rows + [np.vstack(edge_rows)]), grid]


def verify(
    activation: Activation | str,
    U: ArrayLike | None = None,
    *,
    batch_size: int = 1,
    accuracy: Accuracy = "tight",
    solvers: Sequence[str] | None = None,
    tol: float | None = None,
    seed: int = 0,
) -> VerificationReport:
    """Solve the argmin for each row of ``U`` and compare it with the closed form.

    Parameters
    ----------
    activation : Activation or str
        The activation to verify (a registry name or an instance, custom ones included; a name
        not registered yet is looked up in the ``cvx_lifted.activations`` entry points).
    U : array_like, shape (m, n), optional
        Inputs; by default :func:`default_inputs`.
    batch_size : int, default=1
        Rows per compiled problem (one compile, then one re-solve per batch); at most the rows
        of the largest group of inputs, since a short batch is padded with copies of its last
        row, which would make a problem of many rows out of a few (the default inputs: at most
        28 rows; with more, copies of a grid row of 1e3 set the scale of the solvers'
        tolerances, and OSQP misreports the problem as unbounded).
    accuracy : {"tight", "default"}, default="tight"
        Solver tolerances.
    solvers : sequence of str, optional
        Solver order (see :data:`cvx_lifted.compile.SOLVER_ORDER`).
    tol : float, optional
        Tolerance on the relative error and the optimality gap; by default the table in
        :mod:`cvx_lifted.testing` for the solver that answered.
    seed : int, default=0
        Seed of the default inputs.

    Returns
    -------
    VerificationReport

    Raises
    ------
    NotRepresentableError
        For activations with a closed form only (softplus, sin).
    NonConvexError, NotDPPError
        If the divergence is not convex in ``z`` or not DPP in ``u``.
    SolverFailedError
        If every solver fails.
    """
    batch_size = check_positive_int(batch_size, "batch_size")
    seed = check_non_negative_int(seed, "seed")
    if tol is not None:
        tol = check_non_negative_float(tol, "tol")
    if isinstance(solvers, str):
        raise ValueError(
            f"solvers must be a sequence of solver names such as [{solvers!r}], got the string "
            f"{solvers!r}."
        )
    act = resolve_activation(activation)
    require_program(act)  # NotRepresentableError with the reason
    if U is None:
        groups = _input_groups(act, None, 8, seed)
    else:
        U = as_float_array(U, "U")
        if U.ndim == 1:
            U = U[None, :]
        if U.ndim != 2 or U.shape[0] == 0:
            raise ValueError(f"U must be a non-empty 2-D array (rows are samples), got {U.shape}.")
        groups = [U]
    groups = [G.astype(np.float64, copy=False) for G in groups]
    U = np.vstack(groups)
    rows = min(int(batch_size), max(G.shape[0] for G in groups))
    argmin = CompiledArgmin(act, U.shape[1], rows, accuracy=accuracy, solvers=solvers)
    t0 = time.perf_counter()
    Z = np.vstack([argmin(G) for G in groups])
    solve_seconds = time.perf_counter() - t0
    ref = np.asarray(act.act(U), dtype=np.float64)
    if ref.shape != Z.shape:
        raise ValueError(
            f"the closed form of {act.name!r} returned shape {ref.shape}, but the convex program "
            f"has an output of shape {Z.shape}; check the closed form."
        )
    mask = np.asarray(act.unique_mask(U), dtype=bool)
    abs_err = np.where(mask, np.abs(Z - ref), 0.0)
    rel_err = np.where(mask, rel_error(Z, ref), 0.0)
    gaps = [0.0]
    for i in range(U.shape[0]):
        d_ref = act.value(U[i : i + 1], ref[i : i + 1])
        d_sol = act.value(U[i : i + 1], Z[i : i + 1])
        if np.isfinite(d_sol):  # NaN when the solver's z sits 1e-12 outside a log's domain
            gaps.append((d_ref - d_sol) / (1.0 + abs(d_sol)))
    gap = float(np.max(gaps))
    cf_viol = float(act.domain_violation(U, ref))
    sol_viol = float(act.domain_violation(U, Z))
    stats = argmin.stats
    tolerance = solver_tolerance(stats.solver, accuracy) if tol is None else float(tol)
    reasons = []
    if not np.all(np.isfinite(ref)):
        reasons.append("closed form returned NaN/inf")
    if float(np.max(rel_err)) > tolerance:
        reasons.append(f"relative error {float(np.max(rel_err)):.1e} > {tolerance:.0e}")
    if gap > tolerance:
        reasons.append(f"solver beats the closed form by {gap:.1e}: closed form not optimal")
    if cf_viol > 1e-9:
        reasons.append(f"closed form leaves the domain by {cf_viol:.1e}")
    return VerificationReport(
        activation=_label(act),
        n_rows=U.shape[0],
        n_features=U.shape[1],
        max_abs_error=float(np.max(abs_err)),
        max_rel_error=float(np.max(rel_err)),
        optimality_gap=gap,
        closed_form_violation=cf_viol,
        solver_violation=sol_viol,
        solver=str(stats.solver),
        status=str(stats.status),
        compile_seconds=stats.compile_seconds,
        solve_seconds=solve_seconds,
        n_solves=stats.n_solves,
        tolerance=tolerance,
        passed=not reasons,
        reason="; ".join(reasons),
    )


def verify_all(
    names: Iterable[str] | None = None, **kwargs: Any
) -> list[VerificationReport | tuple[str, str]]:
    """Verify several catalogue entries (all of them by default).

    Parameters
    ----------
    names : iterable of str, optional
        Registry names; default every entry of :data:`cvx_lifted.ACTIVATIONS`.
    **kwargs
        Passed to :func:`verify`.

    Returns
    -------
    list
        A :class:`VerificationReport` per activation with a program, and ``(name, reason)`` for
        those with a closed form only.
    """
    out: list[VerificationReport | tuple[str, str]] = []
    for name in list(names) if names is not None else list(ACTIVATIONS):
        act = resolve_activation(name)
        try:
            out.append(verify(act, **kwargs))
        except NotRepresentableError as exc:
            out.append((act.name, str(exc)))
    return out


def format_reports(reports: Sequence[VerificationReport | tuple[str, str]]) -> str:
    """Render reports as a fixed-width text table (what ``cvx-lifted verify`` prints).

    Parameters
    ----------
    reports : sequence
        Output of :func:`verify_all`.

    Returns
    -------
    str
    """
    header = (
        f"{'activation':<34} {'result':<6} {'max rel err':>11} {'tol':>7} {'gap':>9} "
        f"{'solver':<9} {'compile ms':>10} {'ms/solve':>9}"
    )
    lines = [header, "-" * len(header)]
    for r in reports:
        if isinstance(r, tuple):
            lines.append(f"{r[0]:<34} {'skip':<6} closed form only (no DCP program)")
            continue
        lines.append(
            f"{r.activation[:34]:<34} {'PASS' if r.passed else 'FAIL':<6} "
            f"{r.max_rel_error:>11.1e} {r.tolerance:>7.0e} {r.optimality_gap:>9.1e} "
            f"{r.solver:<9} {r.compile_seconds * 1e3:>10.1f} "
            f"{r.solve_seconds / max(r.n_solves, 1) * 1e3:>9.2f}"
        )
    failed = [r for r in reports if not isinstance(r, tuple) and not r.passed]
    for r in failed:
        lines.append(f"FAILED {r.activation}: {r.reason}")
    return "\n".join(lines)
