# SPDX-License-Identifier: Apache-2.0
r"""Compile once, re-solve many times: parametrised (DPP) CVXPY problems.

A :class:`CompiledProblem` takes a CVXPY objective and constraints written with
``cp.Parameter`` objects for the data that changes, checks that the problem is convex (DCP) and
*disciplined parametrised* (DPP), compiles it once, and afterwards only writes new values into the
parameters before each solve. CVXPY then skips canonicalisation, and OSQP re-solves without
refactoring when only vectors changed (see ``notes/solver-facts.md`` for the measured costs).

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
import time
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import cvxpy as cp
import numpy as np
from cvxpy.atoms.affine.add_expr import AddExpression
from numpy.typing import ArrayLike, NDArray

from cvx_lifted.activations import Activation, get_activation
from cvx_lifted.exceptions import NonConvexError, NotDPPError, SolverFailedError

__all__ = [
    "Accuracy",
    "CompiledArgmin",
    "CompiledProblem",
    "SOLVER_ORDER",
    "SOLVER_SETTINGS",
    "drop_constant_terms",
    "explain_not_dcp",
    "output_step_problem",
    "problem_class",
    "state_step_problem",
    "weight_step_problem",
]

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


def problem_class(problem: cp.Problem) -> str:
    """Classify a DCP problem as ``"lp"``, ``"qp"``, ``"exp"`` or ``"conic"`` for solver choice.

    Parameters
    ----------
    problem : cvxpy.Problem

    Returns
    -------
    str
    """
    if problem.is_lp():
        return "lp"
    if problem.is_qp():
        return "qp"
    exp_atoms = ("entr", "log", "exp", "logistic", "kl_div", "rel_entr", "log_sum_exp")
    names = {getattr(a, "__name__", type(a).__name__).lower() for a in problem.atoms()}
    if any(any(k in name for k in exp_atoms) for name in names):
        return "exp"
    return "conic"


def drop_constant_terms(expr: cp.Expression) -> cp.Expression:
    r"""Remove top-level summands that contain no variable (they do not move the argmin).

    Fenchel--Young divergences carry :math:`\Phi^*(u)`, constant in :math:`z`; dropping it from an
    argmin problem saves cones without changing the solution.

    Parameters
    ----------
    expr : cvxpy.Expression

    Returns
    -------
    cvxpy.Expression
    """
    if isinstance(expr, AddExpression):
        keep = [a for a in expr.args if a.variables()]
        if keep and len(keep) < len(expr.args):
            return keep[0] if len(keep) == 1 else AddExpression(keep)
    return expr


def _curvature(e: cp.Expression) -> str:
    return str(getattr(e, "curvature", "UNKNOWN")).lower()


def _first_offender(expr: Any, dpp: bool) -> Any | None:
    """Return the smallest sub-expression that breaks DCP (or DPP), searching leaves first."""
    for arg in getattr(expr, "args", []):
        found = _first_offender(arg, dpp)
        if found is not None:
            return found
    try:
        ok = expr.is_dcp(dpp=dpp)
    except (AttributeError, TypeError):
        return None
    if ok:
        return None
    return expr


def _describe(node: Any, dpp: bool) -> str:
    args = getattr(node, "args", [])
    kinds = ", ".join(f"`{a}` ({_curvature(a)})" for a in args)
    atom = type(node).__name__
    if dpp:
        params = sorted({p.name() for a in args for p in getattr(a, "parameters", lambda: [])()})
        which = f" ({', '.join(params)})" if params else ""
        return (
            f"`{node}` is not DPP: in a compiled problem the parameters{which} may enter only "
            f"affinely, and a product may involve parameters in one factor only; here {atom} "
            f"combines {', '.join(f'`{a}`' for a in args)}. Precompute the parameter-dependent "
            f"part as a single Parameter (e.g. sqrt(lam) * u), or keep parameters out of "
            f"non-affine atoms."
        )
    if atom in ("multiply", "MulExpression") and len(args) == 2:
        return (
            f"`{node}` multiplies two non-constant expressions ({kinds}); DCP allows a product "
            f"only when one factor is constant. In a divergence this usually means z appears "
            f"multiplied by itself or by another variable: use cp.square(z), cp.sum_squares or "
            f"cp.quad_over_lin instead."
        )
    return (
        f"`{node}` breaks the DCP rules: {atom} is applied to {kinds}, a combination whose "
        f"curvature CVXPY cannot certify. Rewrite it with atoms of known curvature "
        f"(see https://www.cvxpy.org/tutorial/dcp/)."
    )


def explain_not_dcp(problem: cp.Problem, *, dpp: bool = False, what: str = "problem") -> str:
    """Say, in one paragraph, why ``problem`` is not DCP (or not DPP).

    Parameters
    ----------
    problem : cvxpy.Problem
        The problem that failed ``is_dcp()`` or ``is_dpp()``.
    dpp : bool, default=False
        Explain a DPP failure rather than a DCP one.
    what : str, default="problem"
        How to name the problem in the message (e.g. ``"divergence of 'my_act' in z"``).

    Returns
    -------
    str
    """
    objective = problem.objective.expr
    node = _first_offender(objective, dpp)
    if node is not None:
        return f"The {what} is not {'DPP' if dpp else 'convex (DCP)'}: {_describe(node, dpp)}"
    for con in problem.constraints:
        bad = _first_offender(con, dpp)
        if bad is None:
            continue
        if bad is con:
            return (
                f"The {what} has a constraint that is not {'DPP' if dpp else 'DCP'}: `{con}`. "
                f"Equality constraints must be affine; inequalities must read convex <= concave."
            )
        return f"In constraint `{con}` of the {what}: {_describe(bad, dpp)}"
    if not dpp and not objective.is_convex():
        return (
            f"The {what} is {_curvature(objective)}, not convex, in the optimisation variable: "
            f"`{objective}`. A divergence must be convex in z (and in u for the weight step)."
        )
    return f"The {what} is not {'DPP' if dpp else 'DCP'} (CVXPY gives no further detail)."


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
    """

    compile_seconds: float = 0.0
    n_solves: int = 0
    n_inaccurate: int = 0
    solve_seconds: float = 0.0
    solver: str | None = None
    status: str | None = None
    fallbacks: list[tuple[str, str]] = field(default_factory=list)

    @property
    def seconds_per_solve(self) -> float:
        """Mean wall time of one solve."""
        return self.solve_seconds / self.n_solves if self.n_solves else float("nan")


class CompiledProblem:
    r"""A convex problem compiled once and re-solved with new parameter values.

    Parameters
    ----------
    objective : cvxpy.Expression
        Scalar expression to minimise; must be convex and DPP.
    constraints : iterable of cvxpy.Constraint
        Constraints, DCP and DPP.
    parameters : mapping of str to cvxpy.Parameter
        The inputs, by the names :meth:`solve` accepts.
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

    Raises
    ------
    NonConvexError
        If the problem is not DCP; the message names the offending sub-expression.
    NotDPPError
        If it is DCP but not DPP, so it cannot be compiled once.

    Examples
    --------
    >>> import cvxpy as cp, numpy as np
    >>> u = cp.Parameter(3); z = cp.Variable(3)
    >>> prob = CompiledProblem(cp.sum_squares(z - u), [z >= 0], {"u": u}, {"z": z})
    >>> np.round(prob.solve(u=np.array([-1.0, 0.5, 2.0]))["z"], 6)
    array([0. , 0.5, 2. ])
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
    ) -> None:
        if accuracy not in SOLVER_SETTINGS:
            raise ValueError(f"accuracy must be 'default' or 'tight', got {accuracy!r}.")
        self.accuracy: Accuracy = accuracy
        self.accept_inaccurate = bool(accept_inaccurate)
        self.parameters = dict(parameters)
        self.variables = dict(variables)
        self.what = what
        # constraints on parameters alone (e.g. the domain of a fixed next state) are data, not
        # constraints: they would make padded batches infeasible and are checked elsewhere
        constraints = [c for c in constraints if c.variables()]
        self.problem = cp.Problem(cp.Minimize(objective), constraints)
        if not self.problem.is_dcp():
            raise NonConvexError(explain_not_dcp(self.problem, what=what))
        if not self.problem.is_dpp():
            raise NotDPPError(explain_not_dcp(self.problem, dpp=True, what=what))
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
        if compile_now:
            self._compile(self.solvers[0])

    # ------------------------------------------------------------------ internals
    def _compile(self, solver: str) -> None:
        for p in self.parameters.values():
            if p.value is None:
                p.value = np.zeros(p.shape)
        t0 = time.perf_counter()
        self.problem.get_problem_data(solver)
        self.stats.compile_seconds += time.perf_counter() - t0

    def _set(self, name: str, value: ArrayLike) -> float:
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
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"parameter {name!r} of {self.what} contains NaN or infinity.")
        param.value = arr
        return float(np.max(np.abs(arr))) if arr.size else 0.0

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

    # ------------------------------------------------------------------ public
    def solve(
        self, values: Mapping[str, ArrayLike] | None = None, /, **kwargs: ArrayLike
    ) -> dict[str, NDArray[np.float64]]:
        """Write parameter values and solve, falling back through the solver order.

        Parameters
        ----------
        values : mapping, optional
            Parameter values by name.
        **kwargs
            More parameter values by name.

        Returns
        -------
        dict of str to numpy.ndarray
            The optimal value of every variable, by name (copies).

        Raises
        ------
        ValueError
            For unknown parameter names, wrong shapes, NaN or infinity.
        SolverFailedError
            When every solver fails; ``attempts`` lists each solver and its status.
        """
        merged = {**(values or {}), **kwargs}
        missing = [n for n, p in self.parameters.items() if n not in merged and p.value is None]
        if missing:
            raise ValueError(f"no value given for parameter(s) {missing} of {self.what}.")
        scale = 0.0
        for name, val in merged.items():
            scale = max(scale, self._set(name, val))
        feas_tol = _FEASIBILITY_TOL[self.accuracy] * (1.0 + scale)
        attempts: list[tuple[str, str]] = []
        t0 = time.perf_counter()
        tries = [(s, self.accuracy) for s in self.solvers]
        if self.accuracy == "tight":
            # a tight solve that stalls (e.g. exponential cones at the boundary) is retried at
            # the solver's default tolerances before the next solver is tried
            tries = [t for s in self.solvers for t in ((s, "tight"), (s, "default"))]
        candidate: tuple[str, dict[str, NDArray[np.float64]]] | None = None
        for solver, mode in tries:
            opts = dict(SOLVER_SETTINGS[mode].get(solver, {}))
            try:
                with warnings.catch_warnings(), _quiet_osqp(solver):
                    # statuses are checked below; CVXPY's "may be inaccurate" warning is noise
                    warnings.simplefilter("ignore", UserWarning)
                    self.problem.solve(solver=solver, warm_start=True, **opts)
            except (cp.SolverError, ValueError, ArithmeticError) as exc:
                attempts.append((solver, f"error: {exc}".strip()))
                continue
            status = str(self.problem.status)
            if status != cp.OPTIMAL and not self._inaccurate_ok(solver, status):
                attempts.append((solver if mode == self.accuracy else f"{solver} ({mode})", status))
                if (
                    candidate is None
                    and self.accept_inaccurate
                    and status == cp.OPTIMAL_INACCURATE
                    and self._usable(feas_tol)
                ):
                    candidate = (solver, self._values())
                continue
            if not self._usable(feas_tol):
                attempts.append(
                    (solver, f"optimal but infeasible or NaN ({self._violation():.1e})")
                )
                continue
            if attempts:
                self.stats.fallbacks.extend(attempts)
                if solver != "SCS" and solver != self.solvers[0]:
                    # stick to the solver that worked: switching back recompiles every time
                    # (SCS, the least accurate, stays the last resort)
                    self.solvers.remove(solver)
                    self.solvers.insert(0, solver)
            self.stats.n_solves += 1
            self.stats.solve_seconds += time.perf_counter() - t0
            self.stats.solver, self.stats.status = solver, status
            return self._values()
        if candidate is not None:
            self.stats.fallbacks.extend(attempts)
            self.stats.n_solves += 1
            self.stats.n_inaccurate += 1
            self.stats.solve_seconds += time.perf_counter() - t0
            self.stats.solver, self.stats.status = candidate[0], cp.OPTIMAL_INACCURATE
            return candidate[1]
        detail = "; ".join(f"{s}: {r}" for s, r in attempts)
        raise SolverFailedError(f"every solver failed on {self.what} ({detail}).", attempts)

    @property
    def value(self) -> float:
        """Optimal objective value of the last solve."""
        return float(self.problem.value)


class CompiledArgmin:
    r"""The argmin problem of an activation, compiled once for a batch of rows.

    Solves :math:`\min_z D(u, z)` subject to the domain, for every row of ``U``, with ``u`` a
    ``(batch_size, n)`` parameter; rows are processed in batches (the last one zero-padded), so
    one compiled problem serves any number of rows.

    Parameters
    ----------
    activation : Activation or str
        The activation (or its registry name).
    n_features : int
        Width ``n`` of the input rows.
    batch_size : int, default=1
        Rows per solve.
    accuracy : {"default", "tight"}, default="default"
        Solver tolerances.
    solvers : sequence of str, optional
        Solver order (see :data:`SOLVER_ORDER`).

    Examples
    --------
    >>> import numpy as np
    >>> argmin = CompiledArgmin("relu", n_features=3)
    >>> np.round(argmin(np.array([[-1.0, 0.5, 2.0]])), 6)
    array([[0. , 0.5, 2. ]])
    """

    def __init__(
        self,
        activation: Activation | str,
        n_features: int,
        batch_size: int = 1,
        *,
        accuracy: Accuracy = "default",
        solvers: Sequence[str] | None = None,
    ) -> None:
        act = get_activation(activation)
        if int(n_features) != n_features or n_features < 1:
            raise ValueError(f"n_features must be a positive integer, got {n_features!r}.")
        if int(batch_size) != batch_size or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
        self.activation = act
        self.n_features = int(n_features)
        self.batch_size = int(batch_size)
        k = act.output_size(self.n_features)
        self.u = cp.Parameter((self.batch_size, self.n_features), name="u")
        self.z = cp.Variable((self.batch_size, k), name="z")
        objective = drop_constant_terms(act.divergence(self.u, self.z))
        self.problem = CompiledProblem(
            objective,
            act.domain(self.u, self.z),
            {"u": self.u},
            {"z": self.z},
            accuracy=accuracy,
            solvers=solvers,
            what=f"argmin problem of {act.name!r} (divergence in z, u a Parameter)",
        )

    @property
    def stats(self) -> SolveStats:
        """Timings and solver outcomes (see :class:`SolveStats`)."""
        return self.problem.stats

    def __call__(self, U: ArrayLike) -> NDArray[np.float64]:
        """Solve the argmin for every row of ``U``.

        Parameters
        ----------
        U : array_like, shape (m, n_features)

        Returns
        -------
        numpy.ndarray, shape (m, k)
        """
        U = np.asarray(U, dtype=np.float64)
        if U.ndim == 1:
            U = U[None, :]
        if U.ndim != 2 or U.shape[1] != self.n_features:
            raise ValueError(
                f"U must have shape (m, {self.n_features}) (rows are samples), got {U.shape}."
            )
        if not np.all(np.isfinite(U)):
            raise ValueError("U contains NaN or infinity.")
        B = self.batch_size
        out = np.empty((U.shape[0], self.z.shape[1]))
        for start in range(0, U.shape[0], B):
            block = U[start : start + B]
            n = block.shape[0]
            if n < B:
                block = np.vstack([block, np.zeros((B - n, self.n_features))])
            out[start : start + n] = self.problem.solve(u=block)["z"][:n]
        return out


# ------------------------------------------------------------------------------------------
# The blocks of lifted training as compiled problems (the generic "cvxpy" path of bcd.py).
#
# Products of the data with the divergence (e.g. the bilinear u*z of Fenchel--Young
# divergences) are not DPP when both factors depend on parameters, so the affine map of each
# layer enters through an auxiliary variable V with the DPP constraint V == X @ W.T + 1 b^T
# (parameter @ variable). The divergence is then always evaluated with one argument a
# variable and the other a parameter, which is DPP for every DPP-in-u divergence.
# ------------------------------------------------------------------------------------------
def _affine(X: Any, W: Any, b: Any, m: int) -> cp.Expression:
    return X @ W.T + np.ones((m, 1)) @ cp.reshape(b, (1, b.shape[0]), order="C")


def weight_step_problem(
    activation: Activation | None,
    n_samples: int,
    n_in: int,
    n_out: int,
    lam: float,
    rho: float,
    *,
    softmax: bool = False,
    penalty: Any = None,
    accuracy: Accuracy = "default",
    solvers: Sequence[str] | None = None,
    what: str = "weight step",
) -> CompiledProblem:
    r"""Compile the weight step of one layer for the generic path.

    .. math::
        \min_{W, b}\ \frac{\lambda}{m} D(X W^\top + 1 b^\top, T) + \frac{\rho}{2}\|W\|_F^2

    (or :math:`\frac1m` times the softmax cross-entropy of :math:`XW^\top + 1b^\top` against
    ``T`` when ``softmax``), with parameters ``X`` (inputs) and ``T`` (next states or targets).

    Parameters
    ----------
    activation : Activation or None
        The layer's activation (``None`` with ``softmax``).
    n_samples, n_in, n_out : int
        Problem size.
    lam, rho : float
        Penalty weights (baked in: a parameter times a data-dependent term is not DPP).
    softmax : bool, default=False
        Use the softmax cross-entropy instead of a divergence.
    penalty : callable, optional
        ``W -> cvxpy.Expression``, the penalty :math:`\pi(W)` that ``rho`` multiplies; default
        :math:`\tfrac12\|W\|_F^2`.
    accuracy : {"default", "tight"}
    solvers : sequence of str, optional
    what : str
        Name used in errors.

    Returns
    -------
    CompiledProblem
        Parameters ``X``, ``T``; variables ``W``, ``b``.
    """
    m = int(n_samples)
    X = cp.Parameter((m, n_in), name="X")
    T = cp.Parameter((m, n_out), name="T", nonneg=softmax)
    W = cp.Variable((n_out, n_in), name="W")
    b = cp.Variable(n_out, name="b")
    V = cp.Variable((m, n_out), name="V")
    constraints = [V == _affine(X, W, b, m)]
    if softmax:
        data = cp.sum(cp.log_sum_exp(V, axis=1)) - cp.sum(cp.multiply(T, V))
        weight = 1.0 / m
    else:
        assert activation is not None
        data = drop_constant_terms(activation.divergence(V, T))
        constraints += activation.domain(V, T)
        weight = float(lam) / m
    objective = weight * data
    if rho > 0:
        pi = 0.5 * cp.sum_squares(W) if penalty is None else penalty(W)
        objective = objective + float(rho) * pi
    return CompiledProblem(
        objective,
        constraints,
        {"X": X, "T": T},
        {"W": W, "b": b},
        accuracy=accuracy,
        solvers=solvers,
        what=what,
    )


def state_step_problem(
    previous: Activation,
    following: Activation | None,
    batch_size: int,
    width: int,
    next_width: int,
    lam_prev: float,
    lam_next: float,
    *,
    softmax: bool = False,
    accuracy: Accuracy = "default",
    solvers: Sequence[str] | None = None,
    what: str = "state step",
) -> CompiledProblem:
    r"""Compile the state step of one hidden layer for a batch of rows (generic path).

    .. math::
        \min_Z\ \lambda_l D_{l-1}(U, Z) + \lambda_{l+1} D_l(Z W^\top + 1b^\top, T)

    (the second term is the softmax cross-entropy against ``T`` when ``softmax``, with weight
    one), subject to both domains; parameters ``U`` (this layer's pre-activation), ``W``, ``b``
    (next layer) and ``T`` (next state or targets).

    Parameters
    ----------
    previous : Activation
        Activation whose divergence ties ``U`` to ``Z``.
    following : Activation or None
        Activation of the next layer (``None`` with ``softmax``).
    batch_size, width, next_width : int
        Rows per solve, width of ``Z``, width of the next state.
    lam_prev, lam_next : float
        Weights of the two terms.
    softmax : bool, default=False
        The next term is the softmax cross-entropy (last hidden layer of ``softmax_xent``).
    accuracy : {"default", "tight"}
    solvers : sequence of str, optional
    what : str
        Name used in errors.

    Returns
    -------
    CompiledProblem
        Parameters ``U``, ``W``, ``b``, ``T``; variable ``Z``.
    """
    B = int(batch_size)
    U = cp.Parameter((B, width), name="U")
    W = cp.Parameter((next_width, width), name="W")
    b = cp.Parameter(next_width, name="b")
    T = cp.Parameter((B, next_width), name="T", nonneg=softmax)
    Z = cp.Variable((B, width), name="Z")
    V = cp.Variable((B, next_width), name="V")
    constraints = [V == _affine(Z, W, b, B), *previous.domain(U, Z)]
    objective = float(lam_prev) * drop_constant_terms(previous.divergence(U, Z))
    if softmax:
        objective = objective + cp.sum(cp.log_sum_exp(V, axis=1)) - cp.sum(cp.multiply(T, V))
    else:
        assert following is not None
        objective = objective + float(lam_next) * drop_constant_terms(following.divergence(V, T))
        constraints += following.domain(V, T)
    return CompiledProblem(
        objective,
        constraints,
        {"U": U, "W": W, "b": b, "T": T},
        {"Z": Z},
        accuracy=accuracy,
        solvers=solvers,
        what=what,
    )


def output_step_problem(
    head: Any,
    batch_size: int,
    width: int,
    lam: float,
    *,
    onehot: bool = False,
    accuracy: Accuracy = "default",
    solvers: Sequence[str] | None = None,
    what: str = "output step",
) -> CompiledProblem:
    r"""Compile the output-state step for a batch of rows (generic path).

    .. math:: \min_Z\ \mathcal L(Y, Z) + \lambda D_L(U, Z)

    subject to the output activation's domain; parameters ``U`` and ``Y`` (non-negative for
    classification heads).

    Parameters
    ----------
    head : OutputHead
        A head with an output state.
    batch_size, width : int
        Rows per solve and output width.
    lam : float
        Weight of the divergence.
    onehot : bool, default=False
        Use the head's cheaper loss form, exact when every row of ``Y`` is one-hot.
    accuracy : {"default", "tight"}
    solvers : sequence of str, optional
    what : str
        Name used in errors.

    Returns
    -------
    CompiledProblem
        Parameters ``U``, ``Y``; variable ``Z``.
    """
    B = int(batch_size)
    U = cp.Parameter((B, width), name="U")
    Y = cp.Parameter((B, width), name="Y", nonneg=bool(head.classification))
    Z = cp.Variable((B, width), name="Z")
    act = head.activation
    objective = head.loss_expr(Y, Z, onehot=onehot) + float(lam) * drop_constant_terms(
        act.divergence(U, Z)
    )
    return CompiledProblem(
        objective,
        act.domain(U, Z),
        {"U": U, "Y": Y},
        {"Z": Z},
        accuracy=accuracy,
        solvers=solvers,
        what=what,
    )
