# SPDX-License-Identifier: Apache-2.0
r"""Compiled blocks of lifted training assembled from one-element templates.

:func:`cvx_lifted.blocks.column_weight_problem` and :func:`cvx_lifted.blocks.state_problem`
return these for divergences that split by entries (or, in a state step, by rows): the same
problems as their CVXPY-built blocks, with the program assembled by
:mod:`cvx_lifted.separable` instead of canonicalised whole by CVXPY.

==========================  ===================================================================
block                       problem
==========================  ===================================================================
:class:`TemplateWeightStep`  one output unit: :math:`\min_{w,b}\ \tfrac{\lambda}{m}\sum_i
                            d(x_i^\top w + b, t_i) + \rho\,\pi(w)`; :meth:`~TemplateWeightStep.
                            solve_columns` solves every unit, warm-started in turn
:class:`TemplateStateStep`   one row: :math:`\min_z\ \lambda_l D_{l-1}(u, z) + \lambda_{l+1}
                            D_l(Wz + b, t)`; :meth:`~TemplateStateStep.solve_rows` solves any
                            number of rows
==========================  ===================================================================

Both are :class:`~cvx_lifted.compile.CompiledProblem` objects and keep its guarantees: the
solver order and fallbacks of :data:`~cvx_lifted.compile.SOLVER_ORDER`, status and feasibility
checks of every answer, ``accuracy`` ("default" / "tight"), per-call ``solvers``, and
:class:`~cvx_lifted.exceptions.SolverFailedError` naming every solver and status. Every solve
is a direct call of OSQP, Clarabel, ECOS or SCS, warm-started where the solver allows, with
vector-only updates when only parameters that enter vectors change. One difference, in
"tight" mode: an interior-point solver (ECOS, Clarabel) that stops short of the tight
tolerances with ``optimal_inaccurate`` and a feasible point is accepted rather than retried at
default tolerances, since it has run past where default tolerances stop (measured on one-row
exponential-cone state steps: 1e-9 to 5e-8 from the optimum, against up to 5e-5 for the
default-tolerance "optimal").
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cvxpy as cp
import numpy as np
from numpy.typing import ArrayLike, NDArray

from cvx_lifted._solver_backends import FastPathUnavailable, ProgramMap
from cvx_lifted._solver_backends_extra import make_any_backend
from cvx_lifted.activations import Activation
from cvx_lifted.compile import (
    SOLVER_ORDER,
    SOLVER_SETTINGS,
    Accuracy,
    CompiledProblem,
    SolveStats,
    _Attempt,
    _Batch,
)
from cvx_lifted.exceptions import SolverFailedError
from cvx_lifted.separable import (
    AssembledProgram,
    Block,
    Fixed,
    Group,
    Layout,
    Segment,
    Spec,
    TemplateUnavailable,
    get_template,
    matrix_columns,
    row_separable,
    separable,
    spec_class,
)

__all__ = ["TemplateBlock", "TemplateStateStep", "TemplateWeightStep"]

FloatArray = NDArray[np.float64]

_INTERIOR = ("ECOS", "CLARABEL")
_CHUNK_BYTES = 8 * 2**20  # solver data of many instances mapped at once, at most about this


def _block_class(classes: Sequence[str], quadratic: bool) -> str:
    """Return the problem class of a block whose templates have ``classes``."""
    if "exp" in classes:
        return "exp"
    if "conic" in classes:
        return "conic"
    return "qp" if quadratic or "qp" in classes else "lp"


class TemplateBlock(CompiledProblem):
    """A :class:`CompiledProblem` whose program is assembled from templates.

    It keeps :class:`CompiledProblem`'s solving logic (solver order and fallbacks, status and
    feasibility checks, ``accuracy``, per-call ``solvers``, :meth:`solve_many`) and replaces
    the program: every solver is called directly with data assembled by
    :class:`AssembledProgram` (no CVXPY problem of the block is ever built). Subclasses
    implement :meth:`_assemble`.
    """

    def __init__(  # no CompiledProblem.__init__: it canonicalises the whole block with CVXPY
        self,
        parameters: Mapping[str, cp.Parameter],
        variables: Mapping[str, cp.Variable],
        cls: str,
        *,
        accuracy: Accuracy,
        solvers: Sequence[str] | None,
        what: str,
    ) -> None:
        if accuracy not in SOLVER_SETTINGS:
            raise ValueError(f"accuracy must be 'default' or 'tight', got {accuracy!r}.")
        self.accuracy = accuracy
        self.accept_inaccurate = True
        self.fast_path = True
        self.parameters = dict(parameters)
        self.variables = dict(variables)
        self.what = what
        self.problem_class = cls
        installed = set(cp.installed_solvers())
        order = tuple(str(s).upper() for s in (solvers or SOLVER_ORDER[cls]))
        unknown = [s for s in order if s not in installed]
        if solvers is not None and unknown:
            raise ValueError(
                f"solver(s) {unknown} not installed; installed: {sorted(installed)}. "
                "ECOS needs `pip install ecos`."
            )
        self.solvers = [s for s in order if s in installed]
        if not self.solvers:
            raise SolverFailedError(f"no installed solver for a {cls} problem.")
        self.stats = SolveStats()
        self._current: dict[str, FloatArray] = {}
        self._stale: set[str] = set()
        self._nonneg = {name for name, p in self.parameters.items() if p.is_nonneg()}
        self._attributed: set[str] = set()
        self._direct: dict[str, tuple[ProgramMap, Any]] = {}
        self._value: float | None = None
        self._objective: Callable[[], float] | None = None
        self._programs: dict[str, tuple[AssembledProgram, Any] | str] = {}
        self._batch: tuple[_Batch, _OneProgramBatch] | None = None
        t0 = time.perf_counter()
        reasons = []
        for solver in self.solvers:
            try:
                self._program(solver)
                break
            except FastPathUnavailable as exc:
                reasons.append(str(exc))
        else:
            raise TemplateUnavailable("; ".join(reasons))
        self.stats.compile_seconds = time.perf_counter() - t0

    def _assemble(self, solver: str) -> AssembledProgram:
        raise NotImplementedError

    def _program(self, solver: str) -> tuple[AssembledProgram, Any]:
        """Return the assembled program and direct adapter of ``solver`` (built on first use)."""
        hit = self._programs.get(solver)
        if hit is None:
            # one program at a time: each holds the block's data once more and its solver's
            # workspace; after a fallback, going back to a solver rebuilds its program
            self._programs = {s: h for s, h in self._programs.items() if isinstance(h, str)}
            if self._objective is not None:  # the last answer's value, without its program
                self._value, self._objective = self._objective(), None
            try:
                prog = self._assemble(solver)
                backend: Any = make_any_backend(solver, prog)
                hit = (prog, _Unpolished(backend) if solver == "OSQP" else backend)
            except FastPathUnavailable as exc:
                hit = str(exc)
            self._programs[solver] = hit
        if isinstance(hit, str):
            raise FastPathUnavailable(hit)
        return hit

    def _attempt(
        self, solver: str, mode: Accuracy, feas_tol: float, batch: _Batch | None, k: int
    ) -> _Attempt:
        try:
            direct = self._program(solver)
        except FastPathUnavailable as exc:
            return _Attempt(error=str(exc))
        if batch is not None:
            if self._batch is None or self._batch[0] is not batch:
                self._batch = (batch, _OneProgramBatch(batch.per_row, batch.shared, batch.n_rows))
            batch = self._batch[1]
        try:
            res = self._attempt_direct(direct, solver, mode, feas_tol, batch, k)
        except Exception as exc:  # noqa: BLE001 - a solver that raises is a failed attempt
            self._programs.pop(solver, None)  # a fresh solver next time
            return _Attempt(error=f"{type(exc).__name__}: {exc}")
        if mode == "tight" and solver in _INTERIOR and res.status == cp.OPTIMAL_INACCURATE:
            # an interior-point method follows the same path at any tolerance: stopped short
            # of tight tolerances it is past where default tolerances stop it (measured on
            # one-row exponential-cone state steps: 1e-9..5e-8 from the optimum, against up
            # to 5e-5 for the "optimal" answer at default tolerances)
            res.inaccurate_ok = res.usable
        return res

    @property
    def value(self) -> float:
        """Optimal objective value of the last solve."""
        if self._value is None and self._objective is not None:
            self._value, self._objective = self._objective(), None
        if self._value is None:
            raise RuntimeError(f"{self.what} has not been solved yet.")
        return float(self._value)

    def _chunk(self, per_instance: int, floor: int) -> int:
        """Instances mapped to solver data at once: about ``max(floor, 8 MB)`` bytes of data."""
        return max(1, max(floor, _CHUNK_BYTES) // max(1, 8 * per_instance))


class _OneProgramBatch(_Batch):
    """The rows of a :meth:`CompiledProblem.solve_many` call, mapped for one program at a time.

    :class:`~cvx_lifted.compile._Batch` keeps the data of every program it served until the
    call ends; with one program alive at a time (:meth:`TemplateBlock._program`) that would
    keep the released ones too.
    """

    def data(self, pmap: ProgramMap, k: int) -> Any:
        """Return row ``k``'s data for ``pmap`` (all rows mapped at once, on first use)."""
        if pmap not in self._data:
            self._data.clear()
        return super().data(pmap, k)


class _Unpolished:
    """An OSQP adapter that polishes only when the settings ask for it ("tight" mode).

    At default accuracy every solve of a template block is then an unpolished one at OSQP's
    tolerance of 1e-7, the first included (CompiledProblem's first solve goes through CVXPY,
    which polishes it): polishing refactorises a second system, which for a weight step costs
    about 6x the bytes of X at its peak.
    """

    def __init__(self, backend: Any) -> None:
        self.backend = backend
        self._settings: dict[int, tuple[Mapping[str, Any], dict[str, Any]]] = {}

    def solve(self, data: Any, settings: Mapping[str, Any]) -> Any:
        """Solve with ``settings``, polishing off unless they name it."""
        if "polishing" not in settings:
            hit = self._settings.get(id(settings))
            if hit is None or hit[0] is not settings:  # one dict per settings object: OSQP's
                hit = (settings, {**settings, "polishing": False})  # adapter tests identity
                self._settings[id(settings)] = hit
            settings = hit[1]
        return self.backend.solve(data, settings)


def _as_matrix(
    value: ArrayLike, name: str, rows: int | None, cols: int | None, what: str
) -> FloatArray:
    """Return ``value`` as a float matrix of the given shape (``None``: any), or raise."""
    arr = np.asarray(value, dtype=np.float64)
    ok = arr.ndim == 2 and (rows is None or arr.shape[0] == rows)
    if not ok or (cols is not None and arr.shape[1] != cols):
        want = f"({'n' if rows is None else rows}, {'q' if cols is None else cols})"
        raise ValueError(f"{name} of {what} must have shape {want}, got {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} of {what} contains NaN or infinity.")
    return arr


class TemplateWeightStep(TemplateBlock):
    r"""The weight step of one output unit of an elementwise divergence, from its template.

    .. math::
        \min_{w, b, v}\ \frac{\lambda}{m}\sum_i d(v_i, t_i) + \rho\,\pi(w)
        \quad\text{s.t.}\quad v = Xw + b\mathbf 1

    with :math:`\pi = \tfrac12\|\cdot\|^2` or :math:`\|\cdot\|_1`; the same problem as
    :func:`cvx_lifted.blocks.column_weight_problem` builds through CVXPY. Parameter ``t``
    (shape ``(m, 1)``), variables ``w`` (``(p, 1)``) and ``b`` (scalar). Successive columns
    change only vectors of the solver's data.

    Raises
    ------
    TemplateUnavailable
        When no solver can take the activation's one-element problem.
    """

    def __init__(
        self,
        activation: Activation,
        X: ArrayLike,
        lam: float,
        rho: float,
        *,
        penalty: str = "l2",
        accuracy: Accuracy = "default",
        solvers: Sequence[str] | None = None,
        what: str = "weight step",
    ) -> None:
        if penalty not in ("l2", "l1"):
            raise TemplateUnavailable(f"penalty {penalty!r} does not split by weights")
        self._X = np.asarray(X, dtype=np.float64)
        m, p = self._X.shape
        self._lam, self._rho, self._penalty = float(lam), float(rho), penalty
        self._spec = Spec("u", activation, (1, 1), (1, 1))
        cls = _block_class([spec_class(self._spec)], penalty == "l2" and self._rho > 0)
        super().__init__(
            {"t": cp.Parameter((m, 1), name="t")},
            {"w": cp.Variable((p, 1), name="w"), "b": cp.Variable(name="b")},
            cls,
            accuracy=accuracy,
            solvers=solvers,
            what=what,
        )

    def _assemble(self, solver: str) -> AssembledProgram:
        X, rho = self._X, self._rho
        m, p = X.shape
        tpl = get_template(self._spec, solver)
        ones = np.ones((m, 1))
        group = Group(self._spec, m, self._lam / m, "t", np.arange(m)[:, None], ones)
        l1 = self._penalty == "l1" and rho > 0
        soc = self._penalty == "l2" and rho > 0 and solver == "ECOS"
        n_fixed = p + 1 + (p if l1 else int(soc))
        layout = Layout([(group, tpl)], m, n_fixed, 2 * p if l1 else 0, [p + 2] if soc else [])
        k = np.arange(p)[:, None]
        extra_rows, extra_vals = np.zeros((p, 0), np.int64), np.zeros(0)
        fixed_blocks: list[Block] = [(1, [Segment(m, np.arange(m)[None, :], -ones.T)])]
        q = np.zeros(n_fixed)
        b_soc = np.zeros(0)
        if l1:  # r - w >= 0 and r + w >= 0, objective rho * sum(r)
            extra_rows = layout.fixed_nonneg_start + np.hstack([k, k + p])
            extra_vals = np.array([-1.0, 1.0])
            fixed_blocks.append((p, [Segment(2, extra_rows, np.ones((1, 2)))]))
            q[p + 1 :] = rho
        if soc:  # ||(2w, s - 1)|| <= s + 1, i.e. ||w||^2 <= s; objective rho / 2 * s
            start = layout.fixed_soc_start
            extra_rows, extra_vals = start + 1 + k, np.array([2.0])
            rows = np.array([[start, start + p + 1]])
            fixed_blocks.append((1, [Segment(2, rows, np.ones((1, 2)))]))
            q[p + 1] = rho / 2
            b_soc = np.concatenate([[1.0], np.zeros(p), [-1.0]])
        # the input's columns without their zeros (CVXPY drops them too: digits, one-hot data)
        fixed_blocks.insert(0, matrix_columns(X, -1.0, extra_rows, extra_vals))
        P_diag = np.zeros(n_fixed)
        if self._penalty == "l2" and not soc:
            P_diag[:p] = rho
        fixed = Fixed(fixed_blocks, q, P_diag, np.zeros(m), np.zeros(2 * p if l1 else 0), b_soc)
        variables = {"w": (0, (p, 1)), "b": (p, ())}
        return AssembledProgram([(group, tpl)], layout, fixed, variables)

    def solve_columns(
        self,
        T: ArrayLike,
        *,
        solvers: Sequence[str] | None = None,
        accuracy: Accuracy | None = None,
    ) -> tuple[FloatArray, FloatArray]:
        """Solve for every column of ``T`` (one output unit each), warm-started in turn.

        The parameter values of many columns are mapped to solver data at once.

        Parameters
        ----------
        T : array_like, shape (m, q)
            Next states (one column per output unit).
        solvers, accuracy : optional
            As in :meth:`solve`.

        Returns
        -------
        W : numpy.ndarray, shape (q, p)
        b : numpy.ndarray, shape (q,)
        """
        m, p = self._X.shape
        T = _as_matrix(T, "T", m, None, self.what)
        n_out = T.shape[1]
        W, b = np.empty((n_out, p)), np.empty(n_out)
        step = self._chunk(4 * m, self._X.nbytes)
        for s in range(0, n_out, step):
            cols = range(s, min(n_out, s + step))
            sols = self.solve_many(
                [{"t": T[:, j : j + 1]} for j in cols], solvers=solvers, accuracy=accuracy
            )
            for j, sol in zip(cols, sols, strict=True):
                W[j], b[j] = sol["w"][:, 0], float(sol["b"])
        self._batch = None
        return W, b


class TemplateStateStep(TemplateBlock):
    r"""The state step of one hidden layer, row by row, from the divergences' templates.

    .. math::
        \min_{z, v}\ \lambda_l D_{l-1}(u, z) + \lambda_{l+1} D_l(v, t)
        \quad\text{s.t.}\quad v = Wz + b

    (the softmax cross-entropy of ``v`` against ``t`` when ``following`` is ``None``): the
    problem of :func:`cvx_lifted.blocks.state_problem` for one row. An elementwise divergence
    is a template replicated per entry, a divergence that couples a row's entries (``sparsemax``,
    the softmax) a one-row template. Parameters ``U`` (1 x p) and ``T`` (1 x q); variable ``Z``.
    :meth:`solve` takes any number of rows and solves them one after the other, warm-started;
    :meth:`solve_rows` also maps all rows to solver data at once.

    Raises
    ------
    TemplateUnavailable
        When a divergence is not separable by rows or no solver takes its template.
    """

    def __init__(
        self,
        previous: Activation,
        following: Activation | None,
        W: ArrayLike,
        b: ArrayLike,
        lam_prev: float,
        lam_next: float,
        *,
        accuracy: Accuracy = "default",
        solvers: Sequence[str] | None = None,
        what: str = "state step",
    ) -> None:
        self._W = np.asarray(W, dtype=np.float64)
        q, p = self._W.shape
        self._b = np.asarray(b, dtype=np.float64).reshape(q)
        self._specs = [
            _group_spec(previous, "z", p, "previous"),
            _group_spec(following, "u", q, "following"),
        ]
        self._scales = (float(lam_prev), 1.0 if following is None else float(lam_next))
        cls = _block_class([spec_class(s) for s, _ in self._specs], False)
        super().__init__(
            {
                "U": cp.Parameter((1, p), name="U"),
                "T": cp.Parameter((1, q), name="T", nonneg=following is None),
            },
            {"Z": cp.Variable((1, p), name="Z")},
            cls,
            accuracy=accuracy,
            solvers=solvers,
            what=what,
        )

    def _assemble(self, solver: str) -> AssembledProgram:
        q, p = self._W.shape
        (sp_prev, n_prev), (sp_next, n_next) = self._specs
        prev = Group(sp_prev, n_prev, self._scales[0], "U",
                     np.broadcast_to(np.arange(q), (p, q)), self._W.T, -1.0)  # fmt: skip
        nxt = Group(sp_next, n_next, self._scales[1], "T", np.arange(q)[:, None], np.ones((q, 1)))
        groups = [(prev, get_template(sp_prev, solver)), (nxt, get_template(sp_next, solver))]
        layout = Layout(groups, q, 0)
        fixed = Fixed([], np.zeros(0), np.zeros(0), -self._b, np.zeros(0), np.zeros(0))
        t_prev = groups[0][1]
        z_col = layout.col_start[0] + int(t_prev.a_cols[0]) * n_prev
        return AssembledProgram(groups, layout, fixed, {"Z": (z_col, (1, p))})

    def _rows_of(self, U: ArrayLike, T: ArrayLike) -> tuple[FloatArray, FloatArray]:
        q, p = self._W.shape
        U = _as_matrix(U, "U", None, p, self.what)
        T = _as_matrix(T, "T", U.shape[0], q, self.what)
        return U, T

    def solve(
        self,
        values: Mapping[str, ArrayLike] | None = None,
        /,
        *,
        solvers: Sequence[str] | None = None,
        accuracy: Accuracy | None = None,
        **kwargs: ArrayLike,
    ) -> dict[str, FloatArray]:
        """Solve the state step of every row of ``U`` and ``T`` (``(B, p)`` and ``(B, q)``).

        Each row is one :meth:`CompiledProblem.solve`; ``value`` is then the sum over the rows.

        Returns
        -------
        dict
            ``{"Z": array of shape (B, p)}``.
        """
        merged = {**(values or {}), **kwargs}
        unknown = sorted(set(merged) - {"U", "T"})
        if unknown or len(merged) != 2:
            raise ValueError(f"{self.what} takes the parameters U and T, got {sorted(merged)}.")
        U, T = self._rows_of(merged["U"], merged["T"])
        Z = np.empty_like(U)
        total = 0.0
        for i in range(U.shape[0]):
            row = {"U": U[i : i + 1], "T": T[i : i + 1]}
            Z[i] = CompiledProblem.solve(self, row, solvers=solvers, accuracy=accuracy)["Z"][0]
            total += self.value
        self._value, self._objective = total, None
        return {"Z": Z}

    def solve_rows(
        self,
        U: ArrayLike,
        T: ArrayLike,
        *,
        solvers: Sequence[str] | None = None,
        accuracy: Accuracy | None = None,
    ) -> FloatArray:
        """Solve the state step of every row, mapping many rows to solver data at once.

        Parameters
        ----------
        U : array_like, shape (n, p)
            Pre-activations of the layer.
        T : array_like, shape (n, q)
            Next states (or targets of a softmax head).
        solvers, accuracy : optional
            As in :meth:`solve`.

        Returns
        -------
        numpy.ndarray, shape (n, p)
        """
        U, T = self._rows_of(U, T)
        q, p = self._W.shape
        Z = np.empty_like(U)
        step = self._chunk(8 * (p + q), self._W.nbytes)
        for s in range(0, U.shape[0], step):
            rows = range(s, min(U.shape[0], s + step))
            sols = self.solve_many(
                [{"U": U[i : i + 1], "T": T[i : i + 1]} for i in rows],
                solvers=solvers,
                accuracy=accuracy,
            )
            for i, sol in zip(rows, sols, strict=True):
                Z[i] = sol["Z"][0]
        self._batch = None
        return Z


def _group_spec(act: Activation | None, role: str, width: int, which: str) -> tuple[Spec, int]:
    """Return the template of one divergence of a state step and its copies per row."""
    if act is None:
        return Spec("softmax", None, (1, width), (1, width)), 1
    if separable(act):
        return Spec(role, act, (1, 1), (1, 1)), width
    if act.output_size(width) == width and row_separable(act, width):
        return Spec(role, act, (1, width), (1, width)), 1
    raise TemplateUnavailable(f"the {which} divergence ({act.name!r}) does not split by rows")
