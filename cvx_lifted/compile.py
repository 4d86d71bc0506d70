# SPDX-License-Identifier: Apache-2.0
r"""Compile once, re-solve many times: parametrised (DPP) CVXPY problems.

A :class:`CompiledProblem` takes a CVXPY objective and constraints written with
``cp.Parameter`` objects for the data that changes, checks that the problem is convex (DCP) and
*disciplined parametrised* (DPP), compiles it once, and afterwards only writes new values into the
parameters before each solve. After the first solve with a solver, OSQP, Clarabel and ECOS are
called directly through their own Python APIs: the parameter values are mapped to the solver's
matrices and vectors by the sparse tensors CVXPY built when it compiled the problem, so a
re-solve costs what the solver costs plus a few sparse products, and OSQP re-solves without
refactoring when only vectors changed. :meth:`CompiledProblem.solve_many` maps the parameter
values of many solves at once. SCS, and anything the direct adapters cannot take, is solved
through ``cvxpy.Problem.solve`` (see :class:`CompiledProblem`).

Solvers are tried in a stated order, by problem class:

==========  ==================================  ===========================================
class       order                               why
==========  ==================================  ===========================================
``qp``      OSQP, CLARABEL, SCS                 OSQP warm-starts and caches factorizations
``lp``      CLARABEL, ECOS, SCS                 interior point: exact vertices, no tailing off
``exp``     ECOS, CLARABEL, SCS                 measured: ECOS reaches 1e-8..1e-11 on sigmoid and
                                                tanh where Clarabel stops at 2e-6..1e-5
``conic``   CLARABEL, ECOS, SCS                 second-order or other cones
==========  ==================================  ===========================================

A solver that raises, returns a status other than ``optimal``, or returns a point that violates
the constraints beyond tolerance is skipped and the next is tried; a fallback other than SCS becomes
the preferred solver for later solves (switching back and forth would recompile). When every solver
fails, :class:`~cvx_lifted.exceptions.SolverFailedError` names each solver and its status: a
solution is never silently NaN.

Two statuses need care. OSQP's ``optimal_inaccurate`` is accepted when its own primal and dual
residuals are below 1e-7: at inputs exactly on a bound, where strict complementarity fails, OSQP's
answer is exact to ~1e-9 but cannot be certified at 1e-9, while Clarabel's interior point
certifies ``optimal`` 1e-6 away from the bound. And when no solver certifies optimality, the first
feasible ``optimal_inaccurate`` answer is returned and counted in ``stats.n_inaccurate``:
exponential cones whose solution lies on their boundary (the cross-entropy output step with
one-hot labels) end this way at ~1e-5 accuracy; ``accept_inaccurate=False`` raises instead.

``accuracy="default"`` (training) keeps the solvers' own tolerances except OSQP's, tightened from
CVXPY's 1e-5 to 1e-7 so that block steps stay monotone to ~1e-7. ``accuracy="tight"``
(verification mode) asks every solver for ~1e-10 gaps and feasibility and turns OSQP's polishing
on for every solve, including warm re-solves; a solver that stalls at those tolerances is retried at
its default ones before the next solver is tried.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cvxpy as cp
import numpy as np
from numpy.typing import ArrayLike, NDArray

from cvx_lifted._solver_backends import (
    DIRECT_SOLVERS,
    FastPathUnavailable,
    ProgramData,
    ProgramMap,
    make_backend,
)
from cvx_lifted.dcp import (
    CANON_BACKEND,
    HOIST_MIN_SIZE,
    drop_constant_terms,
    explain_not_dcp,
    hoist_parametric_products,
    problem_class,
)
from cvx_lifted.exceptions import NonConvexError, NotDPPError, SolverFailedError

__all__ = [
    "CANON_BACKEND",
    "HOIST_MIN_SIZE",
    "Accuracy",
    "CompiledProblem",
    "SOLVER_ORDER",
    "SOLVER_SETTINGS",
    "drop_constant_terms",
    "explain_not_dcp",
    "hoist_parametric_products",
    "problem_class",
    "row_batches",
]

#: Accuracy mode of a compiled solve: ``"default"`` (training) or ``"tight"`` (checks); the
#: tolerances of each are in :data:`SOLVER_SETTINGS`.
Accuracy = Literal["default", "tight"]

SOLVER_ORDER: dict[str, tuple[str, ...]] = {
    "qp": ("OSQP", "CLARABEL", "SCS"),
    "lp": ("CLARABEL", "ECOS", "SCS"),
    "exp": ("ECOS", "CLARABEL", "SCS"),
    "conic": ("CLARABEL", "ECOS", "SCS"),
}
"""Solver fallback order by problem class."""

SOLVER_SETTINGS: dict[str, dict[str, dict[str, Any]]] = {
    "default": {
        "OSQP": {"eps_abs": 1e-7, "eps_rel": 1e-7, "max_iter": 20_000},
        "CLARABEL": {},
        "ECOS": {},
        "SCS": {"eps_abs": 1e-6, "eps_rel": 1e-6, "max_iters": 50_000},
    },
    "tight": {
        "OSQP": {
            "eps_abs": 1e-9,
            "eps_rel": 1e-9,
            "max_iter": 50_000,
            "polishing": True,
            "polish_refine_iter": 10,
        },
        "CLARABEL": {
            "tol_gap_abs": 1e-11,
            "tol_gap_rel": 1e-11,
            "tol_feas": 1e-11,
            "tol_ktratio": 1e-9,
            "max_iter": 400,
        },
        "ECOS": {"abstol": 1e-11, "reltol": 1e-11, "feastol": 1e-11, "max_iters": 400},
        "SCS": {"eps_abs": 1e-10, "eps_rel": 1e-10, "max_iters": 500_000},
    },
}
"""Solver options per accuracy mode, passed to ``Problem.solve``."""

_FEASIBILITY_TOL: dict[str, float] = {"default": 1e-5, "tight": 1e-7}
_INACCURATE_RESIDUAL = 1e-7


def _quiet_osqp(solver: str) -> contextlib.AbstractContextManager[Any]:
    """Swallow OSQP's unconditional "Polishing not needed" line (osqp/osqp#785).

    OSQP 1.x prints it through Python's ``sys.stdout`` whenever it polishes (CVXPY turns
    polishing on by default) and finds an empty active set, even with ``verbose=False``;
    verification and the compiled BCD blocks would print it once per solve.
    """
    if solver == "OSQP":
        return contextlib.redirect_stdout(io.StringIO())
    return contextlib.nullcontext()


@dataclass
class SolveStats:
    """Timings and outcomes of a compiled problem.

    Attributes
    ----------
    compile_seconds : float
        Time to canonicalise the problem once (the cost a rebuild pays every time).
    n_solves : int
        Number of successful solves.
    solve_seconds : float
        Total wall time of successful solves (parameter writes included).
    solver : str or None
        Solver of the last successful solve.
    status : str or None
        Status of the last successful solve.
    fallbacks : list of tuple
        ``(solver, reason)`` for every solver skipped so far.
    n_inaccurate : int
        Solves answered by an ``optimal_inaccurate`` status because no solver certified
        optimality (exponential cones with solutions on their boundary do this).
    n_direct : int
        Successful solves answered by a direct solver call, without CVXPY's per-solve work.
    cvxpy_path : dict of str to str
        Solvers that are called through ``cvxpy.Problem.solve`` on every solve, and why (no
        direct adapter, e.g. SCS; a program the adapters cannot take; ``fast_path=False``; a
        direct call that failed). Each reason is recorded once.
    """

    compile_seconds: float = 0.0
    n_solves: int = 0
    n_inaccurate: int = 0
    solve_seconds: float = 0.0
    solver: str | None = None
    status: str | None = None
    fallbacks: list[tuple[str, str]] = field(default_factory=list)
    n_direct: int = 0
    cvxpy_path: dict[str, str] = field(default_factory=dict)

    @property
    def seconds_per_solve(self) -> float:
        """Mean wall time of one solve."""
        return self.solve_seconds / self.n_solves if self.n_solves else float("nan")


_RESERVED_NAMES = ("solvers", "accuracy")
# a direct adapter is adopted only if, on the data of CVXPY's first answer with that solver,
# it returns the same point and objective to this relative tolerance: a wrong data or variable
# mapping shows as an O(1) difference, while the same solver on the same data agrees to ~1e-12
# from the same start and to its accuracy (~1e-5 for Clarabel on exponential cones) otherwise
_ADOPT_TOL = 1e-4


@dataclass
class _Attempt:
    """One solver's answer to one solve, whichever path produced it."""

    status: str = cp.SOLVER_ERROR
    error: str | None = None
    values: dict[str, NDArray[np.float64]] | None = None
    value: float | None = float("nan")
    objective: Callable[[], float] | None = None  # computes ``value`` when it is None
    violation: float = float("inf")
    usable: bool = False
    inaccurate_ok: bool = False
    direct: bool = False


class _Batch:
    """Stacked parameter values of several solves; solver data made once per program."""

    def __init__(
        self,
        per_row: dict[str, NDArray[np.float64]],
        shared: dict[str, NDArray[np.float64]],
        n_rows: int,
    ) -> None:
        self.per_row = per_row
        self.shared = shared
        self.n_rows = n_rows
        self._data: dict[ProgramMap, ProgramData] = {}

    def data(self, pmap: ProgramMap, k: int) -> ProgramData:
        """Return row ``k``'s data for ``pmap`` (all rows mapped by one product, on first use)."""
        if pmap not in self._data:
            self._data[pmap] = pmap.data_many(self.per_row, self.shared, self.n_rows)
        return self._data[pmap].column(k)


class CompiledProblem:
    r"""A convex problem compiled once and re-solved with new parameter values.

    The first solve with each solver goes through ``cvxpy.Problem.solve``, which canonicalises
    the problem for that solver. CVXPY keeps the result as a parametrised program whose data are
    affine in the parameter values; for OSQP, Clarabel and ECOS the problem then builds a direct
    adapter from it (:mod:`cvx_lifted._solver_backends`), checks that on the same data the
    adapter returns CVXPY's answer, and from then on maps parameter values to the solver's data
    with sparse products and calls the solver through its own Python API: no CVXPY work per
    solve. Solvers without an adapter (SCS), programs the adapters cannot take and adapters that
    disagree keep the CVXPY path, with the reason in ``stats.cvxpy_path``.

    Parameters
    ----------
    objective : cvxpy.Expression
        Scalar expression to minimise; must be convex and DPP.
    constraints : iterable of cvxpy.Constraint
        Constraints, DCP and DPP.
    parameters : mapping of str to cvxpy.Parameter
        The inputs, by the names :meth:`solve` accepts (not ``"solvers"`` or ``"accuracy"``,
        which name :meth:`solve`'s options).
    variables : mapping of str to cvxpy.Variable
        The outputs, by the names :meth:`solve` returns.
    accuracy : {"default", "tight"}, default="default"
        Solver tolerances, see :data:`SOLVER_SETTINGS`.
    solvers : sequence of str, optional
        Solver order; by default :data:`SOLVER_ORDER` for the problem's class, restricted to the
        installed solvers.
    what : str, default="problem"
        Name used in error messages.
    compile_now : bool, default=True
        Canonicalise immediately (and time it). Needs every parameter to have a value; values are
        filled with zeros when missing.
    accept_inaccurate : bool, default=True
        When no solver certifies ``optimal``, return the first feasible ``optimal_inaccurate``
        answer (counted in ``stats.n_inaccurate``) instead of raising.
    fast_path : bool, default=True
        Call OSQP, Clarabel and ECOS directly after their first solve. ``False`` solves through
        ``cvxpy.Problem.solve`` every time.

    Raises
    ------
    NonConvexError
        If the problem is not DCP; the message names the offending sub-expression.
    NotDPPError
        If it is DCP but not DPP, so it cannot be compiled once.

    Notes
    -----
    Both paths apply the same checks: the solver's status, OSQP's ``optimal_inaccurate``
    acceptance rule, and the feasibility of the returned point. The CVXPY path measures the
    problem's constraints (``Constraint.violation``); the direct path measures every zero,
    non-negative and second-order-cone row of the compiled program (the problem's constraints
    and CVXPY's auxiliary ones; exponential-cone membership is left to the solver's status).
    After a direct solve the ``cvxpy.Variable`` objects keep the values of the last solve that
    went through CVXPY: read the solution from the dictionary :meth:`solve` returns.

    Examples
    --------
    >>> import cvxpy as cp, numpy as np
    >>> u = cp.Parameter(3); z = cp.Variable(3)
    >>> prob = CompiledProblem(cp.sum_squares(z - u), [z >= 0], {"u": u}, {"z": z})
    >>> np.round(prob.solve(u=np.array([-1.0, 0.5, 2.0]))["z"], 6) + 0.0  # + 0.0: no -0.
    array([0. , 0.5, 2. ])
    >>> np.round(prob.solve(u=np.array([1.0, -0.5, 2.0]))["z"], 6) + 0.0  # a direct re-solve
    array([1., 0., 2.])
    >>> prob.stats.n_direct
    1
    """

    def __init__(
        self,
        objective: cp.Expression,
        constraints: Iterable[cp.Constraint],
        parameters: Mapping[str, cp.Parameter],
        variables: Mapping[str, cp.Variable],
        *,
        accuracy: Accuracy = "default",
        solvers: Sequence[str] | None = None,
        what: str = "problem",
        compile_now: bool = True,
        accept_inaccurate: bool = True,
        fast_path: bool = True,
    ) -> None:
        if accuracy not in SOLVER_SETTINGS:
            raise ValueError(f"accuracy must be 'default' or 'tight', got {accuracy!r}.")
        reserved = [n for n in _RESERVED_NAMES if n in parameters]
        if reserved:
            raise ValueError(
                f"parameter name(s) {reserved} of {what} are reserved for solve()'s options; "
                "rename the parameter(s)."
            )
        self.accuracy: Accuracy = accuracy
        self.accept_inaccurate = bool(accept_inaccurate)
        self.fast_path = bool(fast_path)
        self.parameters = dict(parameters)
        self.variables = dict(variables)
        self.what = what
        # constraints on parameters alone (e.g. the domain of a fixed next state) are data, not
        # constraints: they would make padded batches infeasible and are checked elsewhere
        constraints = [c for c in constraints if c.variables()]
        written = cp.Problem(cp.Minimize(objective), constraints)
        if not written.is_dcp():
            raise NonConvexError(explain_not_dcp(written, what=what))
        if not written.is_dpp():
            raise NotDPPError(explain_not_dcp(written, dpp=True, what=what))
        objective, hoisted = hoist_parametric_products(objective)
        self.problem = cp.Problem(cp.Minimize(objective), [*hoisted, *constraints])
        self.problem_class = problem_class(self.problem)
        installed = set(cp.installed_solvers())
        order = tuple(s.upper() for s in (solvers or SOLVER_ORDER[self.problem_class]))
        unknown = [s for s in order if s not in installed]
        if solvers is not None and unknown:
            raise ValueError(
                f"solver(s) {unknown} not installed; installed: {sorted(installed)}. "
                "ECOS needs `pip install ecos`."
            )
        self.solvers: list[str] = [s for s in order if s in installed]
        if not self.solvers:
            raise SolverFailedError(f"no installed solver for a {self.problem_class} problem.")
        self.stats = SolveStats()
        # parameter values of the current solve; written into the cp.Parameter objects only
        # when CVXPY's path needs them (names in _stale)
        self._current: dict[str, NDArray[np.float64]] = {}
        self._stale: set[str] = set()
        self._nonneg = {name for name, p in self.parameters.items() if p.is_nonneg()}
        self._attributed = {
            name
            for name, p in self.parameters.items()
            if any(v for k, v in p.attributes.items() if k != "nonneg")
        }
        self._direct: dict[str, tuple[ProgramMap, Any]] = {}
        self._value: float | None = None
        self._objective: Callable[[], float] | None = None
        if compile_now:
            self._compile(self.solvers[0])

    # ------------------------------------------------------------------ internals
    def _compile(self, solver: str) -> None:
        for p in self.parameters.values():
            if p.value is None:
                p.value = np.zeros(p.shape)
        t0 = time.perf_counter()
        self.problem.get_problem_data(solver, canon_backend=CANON_BACKEND)
        self.stats.compile_seconds += time.perf_counter() - t0

    def _check(self, name: str, value: ArrayLike) -> tuple[NDArray[np.float64], float]:
        """Validate one parameter value; return it as a float array and its largest magnitude."""
        try:
            param = self.parameters[name]
        except KeyError:
            raise ValueError(
                f"unknown parameter {name!r} for {self.what}; expected {sorted(self.parameters)}."
            ) from None
        arr = np.asarray(value, dtype=np.float64)
        if arr.shape != param.shape:
            if arr.size == int(np.prod(param.shape)) and arr.squeeze().shape == tuple(
                s for s in param.shape if s != 1
            ):
                arr = arr.reshape(param.shape)
            else:
                raise ValueError(
                    f"parameter {name!r} of {self.what} has shape {param.shape}, "
                    f"got an array of shape {arr.shape}."
                )
        if not arr.size:
            return arr, 0.0
        hi, lo = float(arr.max()), float(arr.min())
        if not (math.isfinite(hi) and math.isfinite(lo)):  # a NaN makes both NaN
            raise ValueError(f"parameter {name!r} of {self.what} contains NaN or infinity.")
        if name in self._attributed:
            # other attributes (nonpos, symmetric, PSD, integer, ...): CVXPY's own validation
            param.value = arr
        elif lo < 0 and name in self._nonneg:
            raise ValueError(
                f"parameter {name!r} of {self.what} must be non-negative (min {lo:.3g})."
            )
        return arr, max(hi, -lo)

    def _current_value(self, name: str) -> NDArray[np.float64] | None:
        if name in self._current:
            return self._current[name]
        value = self.parameters[name].value
        if value is None:
            return None
        arr = np.asarray(value, dtype=np.float64).reshape(self.parameters[name].shape)
        self._current[name] = arr
        return arr

    def _missing(self, given: Iterable[str]) -> None:
        given = set(given)
        missing = [n for n in self.parameters if n not in given and self._current_value(n) is None]
        if missing:
            raise ValueError(f"no value given for parameter(s) {missing} of {self.what}.")

    def _take(self, merged: Mapping[str, ArrayLike]) -> float:
        """Validate and record the values of one solve; return their largest magnitude."""
        self._missing(merged)
        checked = {name: self._check(name, val) for name, val in merged.items()}
        scale = 0.0
        for name, (arr, size) in checked.items():
            self._current[name] = arr
            self._stale.add(name)
            scale = max(scale, size)
        return scale

    def _write_parameters(self) -> None:
        for name in self._stale:
            self.parameters[name].value = self._current[name]
        self._stale.clear()

    def _options(
        self, solvers: Sequence[str] | None, accuracy: Accuracy | None
    ) -> tuple[list[str], Accuracy]:
        mode: Accuracy = self.accuracy if accuracy is None else accuracy
        if mode not in SOLVER_SETTINGS:
            raise ValueError(f"accuracy must be 'default' or 'tight', got {accuracy!r}.")
        if solvers is None:
            return list(self.solvers), mode
        if isinstance(solvers, str):
            solvers = [solvers]
        order = [str(s).upper() for s in solvers]
        installed = set(cp.installed_solvers())
        unknown = [s for s in order if s not in installed]
        if not order or unknown:
            raise ValueError(
                f"solvers must name installed solvers, got {list(solvers)!r}; installed: "
                f"{sorted(installed)}."
            )
        return order, mode

    def _values(self) -> dict[str, NDArray[np.float64]]:
        return {name: np.array(v.value, dtype=np.float64) for name, v in self.variables.items()}

    def _usable(self, feas_tol: float) -> bool:
        """Whether the variables hold finite values that satisfy the constraints."""
        for v in self.variables.values():
            if v.value is None or not np.all(np.isfinite(v.value)):
                return False
        return self._violation() <= feas_tol

    def _inaccurate_ok(self, solver: str, status: str) -> bool:
        """Accept OSQP's ``optimal_inaccurate`` when its own residuals are small."""
        if solver != "OSQP" or status != cp.OPTIMAL_INACCURATE:
            return False
        info = getattr(getattr(self.problem.solver_stats, "extra_stats", None), "info", None)
        prim = getattr(info, "prim_res", np.inf)
        dual = getattr(info, "dual_res", np.inf)
        return bool(prim <= _INACCURATE_RESIDUAL and dual <= _INACCURATE_RESIDUAL)

    def _violation(self) -> float:
        worst = 0.0
        for con in self.problem.constraints:
            v = con.violation()
            if v is None:
                return float("inf")
            v = np.asarray(v, dtype=np.float64)
            if v.size:
                worst = max(worst, float(np.max(v)))
        return worst

    def _note_cvxpy(self, solver: str, reason: str) -> None:
        self.stats.cvxpy_path.setdefault(solver, reason)

    def _attempt(
        self, solver: str, mode: Accuracy, feas_tol: float, batch: _Batch | None, k: int
    ) -> _Attempt:
        direct = self._direct.get(solver)
        if direct is not None:
            try:
                return self._attempt_direct(direct, solver, mode, feas_tol, batch, k)
            except Exception as exc:  # noqa: BLE001 - any failure hands the solve to CVXPY
                del self._direct[solver]
                self._note_cvxpy(solver, f"direct call failed ({type(exc).__name__}: {exc})")
        return self._attempt_cvxpy(solver, mode, feas_tol)

    def _attempt_direct(
        self,
        direct: tuple[ProgramMap, Any],
        solver: str,
        mode: Accuracy,
        feas_tol: float,
        batch: _Batch | None,
        k: int,
    ) -> _Attempt:
        pmap, backend = direct
        data = pmap.data_one(self._current) if batch is None else batch.data(pmap, k)
        out = backend.solve(data, SOLVER_SETTINGS[mode].get(solver, {}))
        res = _Attempt(status=out.status, direct=True)
        res.inaccurate_ok = bool(
            solver == "OSQP"
            and out.status == cp.OPTIMAL_INACCURATE
            and out.prim_res <= _INACCURATE_RESIDUAL
            and out.dual_res <= _INACCURATE_RESIDUAL
        )
        x = out.x
        if x is None:
            return res
        if not math.isfinite(float(x.sum())):  # NaN or infinity (or a sum beyond 1e308)
            res.violation = float("nan")
            return res
        res.violation = pmap.violation(x, data)
        res.usable = res.violation <= feas_tol
        res.values = pmap.unpack(x)
        # the objective is computed when asked for (``value``), not on every solve
        res.value = None
        res.objective = lambda: pmap.objective(x, data)
        return res

    def _attempt_cvxpy(self, solver: str, mode: Accuracy, feas_tol: float) -> _Attempt:
        self._write_parameters()
        opts = dict(SOLVER_SETTINGS[mode].get(solver, {}))
        try:
            with warnings.catch_warnings(), _quiet_osqp(solver):
                # statuses are checked below; CVXPY's "may be inaccurate" warning is noise
                warnings.simplefilter("ignore", UserWarning)
                self.problem.solve(
                    solver=solver, warm_start=True, canon_backend=CANON_BACKEND, **opts
                )
        except (cp.SolverError, ValueError, ArithmeticError) as exc:
            return _Attempt(error=str(exc))
        res = _Attempt(status=str(self.problem.status))
        res.inaccurate_ok = self._inaccurate_ok(solver, res.status)
        res.usable = self._usable(feas_tol)
        if not res.usable:
            if all(v.value is not None for v in self.variables.values()):
                res.violation = self._violation()
            return res
        res.values = self._values()
        res.value = float(self.problem.value)
        if res.usable and (res.status == cp.OPTIMAL or res.inaccurate_ok):
            self._adopt(solver, mode, res)
        return res

    def _adopt(self, solver: str, mode: Accuracy, reference: _Attempt) -> None:
        """Build the direct adapter of ``solver`` and check it against CVXPY's answer."""
        if solver in self._direct or solver in self.stats.cvxpy_path:
            return
        if not self.fast_path:
            self._note_cvxpy(solver, "fast_path=False")
            return
        if solver not in DIRECT_SOLVERS:
            self._note_cvxpy(solver, f"no direct adapter for {solver}")
            return
        try:
            cache = self.problem._cache
            if cache.key is None or cache.key[0] != solver or cache.param_prog is None:
                raise FastPathUnavailable("CVXPY kept no parametrised program for it")
            pmap = ProgramMap(cache.param_prog, self.parameters, self.variables)
            backend = make_backend(solver, pmap)
            data = pmap.data_one(self._current)
            out = backend.solve(data, SOLVER_SETTINGS[mode].get(solver, {}))
            if out.x is None:
                raise FastPathUnavailable(
                    f"its direct call returned {out.status!r} where CVXPY's returned an answer"
                )
            got = pmap.unpack(out.x)
            ref = reference.values or {}
            size = max((float(np.max(np.abs(v))) for v in ref.values() if v.size), default=0.0)
            gap = max(
                (float(np.max(np.abs(got[n] - v))) for n, v in ref.items() if v.size),
                default=0.0,
            )
            ref_value = float("nan") if reference.value is None else reference.value
            value_gap = abs(pmap.objective(out.x, data) - ref_value)
            if not (
                gap <= _ADOPT_TOL * (1.0 + size)
                and value_gap <= _ADOPT_TOL * (1.0 + abs(ref_value))
            ):
                raise FastPathUnavailable(
                    f"its direct answer differs from CVXPY's by {gap:.1e} in the variables "
                    f"and {value_gap:.1e} in the objective"
                )
        except FastPathUnavailable as exc:
            self._note_cvxpy(solver, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - an adapter that cannot be built is not used
            self._note_cvxpy(solver, f"direct set-up failed ({type(exc).__name__}: {exc})")
            return
        self._direct[solver] = (pmap, backend)

    def _run(
        self,
        order: Sequence[str],
        mode: Accuracy,
        scale: float,
        sticky: bool,
        batch: _Batch | None = None,
        k: int = 0,
    ) -> dict[str, NDArray[np.float64]]:
        """Try the solvers of ``order`` on the current values; see :meth:`solve`."""
        feas_tol = _FEASIBILITY_TOL[mode] * (1.0 + scale)
        attempts: list[tuple[str, str]] = []
        t0 = time.perf_counter()
        tries = [(s, mode) for s in order]
        if mode == "tight":
            # a tight solve that stalls (e.g. exponential cones at the boundary) is retried at
            # the solver's default tolerances before the next solver is tried
            tries = [t for s in order for t in ((s, "tight"), (s, "default"))]
        candidate: tuple[str, _Attempt] | None = None
        for solver, try_mode in tries:
            res = self._attempt(solver, try_mode, feas_tol, batch, k)
            if res.error is not None:
                attempts.append((solver, f"error: {res.error}".strip()))
                continue
            status = res.status
            if status != cp.OPTIMAL and not res.inaccurate_ok:
                attempts.append((solver if try_mode == mode else f"{solver} ({try_mode})", status))
                if (
                    candidate is None
                    and self.accept_inaccurate
                    and status == cp.OPTIMAL_INACCURATE
                    and res.usable
                ):
                    candidate = (solver, res)
                continue
            if not res.usable:
                attempts.append((solver, f"optimal but infeasible or NaN ({res.violation:.1e})"))
                continue
            if attempts:
                self.stats.fallbacks.extend(attempts)
                if sticky and solver != "SCS" and solver != self.solvers[0]:
                    # stick to the solver that worked (SCS, the least accurate, stays the last
                    # resort); through CVXPY, switching back would recompile every time
                    self.solvers.remove(solver)
                    self.solvers.insert(0, solver)
            return self._accept(solver, status, res, t0)
        if candidate is not None:
            self.stats.fallbacks.extend(attempts)
            self.stats.n_inaccurate += 1
            return self._accept(candidate[0], cp.OPTIMAL_INACCURATE, candidate[1], t0)
        detail = "; ".join(f"{s}: {r}" for s, r in attempts)
        raise SolverFailedError(f"every solver failed on {self.what} ({detail}).", attempts)

    def _accept(
        self, solver: str, status: str, res: _Attempt, t0: float
    ) -> dict[str, NDArray[np.float64]]:
        assert res.values is not None
        self.stats.n_solves += 1
        self.stats.n_direct += int(res.direct)
        self.stats.solve_seconds += time.perf_counter() - t0
        self.stats.solver, self.stats.status = solver, status
        self._value, self._objective = res.value, res.objective
        return res.values

    # ------------------------------------------------------------------ public
    def solve(
        self,
        values: Mapping[str, ArrayLike] | None = None,
        /,
        *,
        solvers: Sequence[str] | None = None,
        accuracy: Accuracy | None = None,
        **kwargs: ArrayLike,
    ) -> dict[str, NDArray[np.float64]]:
        """Write parameter values and solve, falling back through the solver order.

        Parameters
        ----------
        values : mapping, optional
            Parameter values by name.
        solvers : sequence of str, optional
            Solver order for this call only (e.g. ``["CLARABEL"]`` to re-check an answer with
            an interior-point method); the problem's own order is left as it is.
        accuracy : {"default", "tight"}, optional
            Tolerances for this call only.
        **kwargs
            More parameter values by name.

        Returns
        -------
        dict of str to numpy.ndarray
            The optimal value of every variable, by name (copies).

        Raises
        ------
        ValueError
            For unknown parameter names, wrong shapes, NaN or infinity, negative values of a
            non-negative parameter, or an unknown solver or accuracy.
        SolverFailedError
            When every solver fails; ``attempts`` lists each solver and its status.
        """
        order, mode = self._options(solvers, accuracy)
        scale = self._take({**(values or {}), **kwargs})
        return self._run(order, mode, scale, sticky=solvers is None)

    def solve_many(
        self,
        rows: Iterable[Mapping[str, ArrayLike]],
        /,
        *,
        solvers: Sequence[str] | None = None,
        accuracy: Accuracy | None = None,
        **shared: ArrayLike,
    ) -> list[dict[str, NDArray[np.float64]]]:
        """Solve once per entry of ``rows``, mapping all of them to solver data at once.

        Equivalent to ``[self.solve({**shared, **row}) for row in rows]``, but the parameter
        vectors of all rows are stacked as the columns of one matrix and mapped to every
        solver's data by one sparse product; the solves then run one after the other, each
        warm-started from the previous one.

        Parameters
        ----------
        rows : iterable of mapping
            Parameter values of each solve, by name; every row names the same parameters.
        solvers, accuracy : optional
            As in :meth:`solve`, for every row.
        **shared
            Parameter values common to every row (e.g. the weights ``W`` of a state step).

        Returns
        -------
        list of dict of str to numpy.ndarray
            The solution of each row, as :meth:`solve` returns it.

        Raises
        ------
        ValueError
            As :meth:`solve`, naming the row; or rows that do not name the same parameters, or
            name one also given in ``shared``.
        SolverFailedError
            When every solver fails on a row (the rows before it are solved, their solutions
            lost).
        """
        order, mode = self._options(solvers, accuracy)
        rows = list(rows)
        if not rows:
            return []
        names = list(rows[0])
        both = sorted(set(names) & set(shared))
        if both:
            raise ValueError(
                f"parameter(s) {both} of {self.what} are given both per row and in shared."
            )
        checked_shared = {name: self._check(name, val) for name, val in shared.items()}
        self._missing([*names, *shared])
        shared_scale = max((size for _, size in checked_shared.values()), default=0.0)
        for i, row in enumerate(rows):
            if set(row) != set(names):
                raise ValueError(
                    f"row {i} of solve_many names parameters {sorted(row)}, row 0 names "
                    f"{sorted(names)}; every row must name the same parameters."
                )
        stacked: dict[str, NDArray[np.float64]] = {}
        scales = np.full(len(rows), shared_scale)
        for name in names:
            column = []
            for i, row in enumerate(rows):
                try:
                    arr, size = self._check(name, row[name])
                except ValueError as exc:
                    raise ValueError(f"row {i}: {exc}") from None
                column.append(arr)
                scales[i] = max(scales[i], size)
            stacked[name] = np.stack(column)
        for name, (arr, _) in checked_shared.items():
            self._current[name] = arr
            self._stale.add(name)
        fixed = {n: self._current[n] for n in self.parameters if n not in stacked}
        batch = _Batch(stacked, fixed, len(rows))
        out = []
        for k in range(len(rows)):
            for name in names:
                self._current[name] = stacked[name][k]
                self._stale.add(name)
            out.append(
                self._run(order, mode, float(scales[k]), sticky=solvers is None, batch=batch, k=k)
            )
        return out

    @property
    def value(self) -> float:
        """Optimal objective value of the last solve."""
        if self._value is None and self._objective is not None:
            self._value, self._objective = self._objective(), None
        if self._value is not None:
            return float(self._value)
        return float(self.problem.value)


# --------------------------------------------------------------------------------------------------
# Rows in batches: one problem compiled for ``batch`` rows serves any number of rows
# --------------------------------------------------------------------------------------------------
def row_batches(
    m: int, batch: int
) -> Iterator[tuple[slice, Callable[[NDArray[Any]], NDArray[Any]]]]:
    """Cover ``m`` rows by batches of ``batch`` rows, for a problem compiled for ``batch`` rows.

    Each batch comes with ``pad``, which fills a short last batch up to ``batch`` rows with
    copies of its last row (full batches are returned as they are); the caller keeps the first
    ``rows.stop - rows.start`` rows of the answer.

    Copies of a real row, not zeros: the padded rows are then problems the caller already asks
    to solve, so the padded batch is feasible and bounded exactly when its real rows are, and
    the solver's scaling and stopping tests see no foreign data. A row of zeros need not be a
    valid parameter: a zero label row makes the one-hot cross-entropy ``-log(y'z)`` infinite for
    every ``z`` (an infeasible output step), and a zero next state lies off the simplex that a
    sparsemax layer's states live on.

    Parameters
    ----------
    m : int
        Number of rows (``>= 0``).
    batch : int
        Rows per batch (``>= 1``).

    Yields
    ------
    rows : slice
        The rows of the batch.
    pad : callable
        ``pad(A[rows])``: the batch's rows of an array, padded to ``batch`` rows.

    Examples
    --------
    >>> import numpy as np
    >>> U = np.arange(5.0)[:, None]
    >>> [(rows.start, pad(U[rows]).ravel().tolist()) for rows, pad in row_batches(5, 2)]
    [(0, [0.0, 1.0]), (2, [2.0, 3.0]), (4, [4.0, 4.0])]
    """
    for start in range(0, m, batch):
        rows = slice(start, min(start + batch, m))
        n = rows.stop - rows.start

        def pad(a: NDArray[Any], n: int = n) -> NDArray[Any]:
            if n == batch:
                return a
            return np.concatenate([a, np.repeat(a[-1:], batch - n, axis=0)])

        yield rows, pad
