# SPDX-License-Identifier: Apache-2.0
r"""Direct solver calls for compiled (DPP) problems, without CVXPY's per-solve work.

After CVXPY has canonicalised a DPP problem for a solver, it keeps the problem as a parametrised
cone program (``ParamConeProg``)

.. math::
    \min_x\ \tfrac12 x^\top P x + q^\top x + d \quad\text{s.t.}\quad A x + b \in
    \{0\}^{z} \times \mathbb R_+^{l} \times \mathcal Q^{k_1} \times \dots \times
    \mathcal K_{\exp}^{e},

whose data :math:`(P, q, d, A, b)` are affine in the flattened parameter vector
:math:`\theta` (with a trailing 1), in a fixed sparsity pattern, with the rows in the solver's
cone order (a QP solver's program has zero and non-negative rows only).

:class:`ProgramMap` applies those tensors to one parameter vector or to a matrix of them (one
sparse product per batch) and maps the solver's ``x`` back to the user's variables. The
backends call OSQP (set up once, then updated and warm-started), Clarabel (data updated in
place where the version allows) and ECOS (called afresh) through their own APIs.

This relies on CVXPY 1.9.3's internals: :class:`FastPathUnavailable` says why a program cannot
be handled (the caller then uses ``cvxpy.Problem.solve``), and every adapter is checked once
against CVXPY's answer, so a change of those internals shows as a recorded fallback.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

__all__ = [
    "DIRECT_SOLVERS",
    "ClarabelBackend",
    "EcosBackend",
    "FastPathUnavailable",
    "OsqpBackend",
    "Outcome",
    "ProgramData",
    "ProgramMap",
    "make_backend",
]

DIRECT_SOLVERS: tuple[str, ...] = ("OSQP", "CLARABEL", "ECOS")
"""Solvers with a direct adapter; others (SCS, ...) are always called through CVXPY."""

# OSQP 1.x ``info.status_val`` (osqp.interface.SolverStatus) -> CVXPY status
_OSQP_STATUS: dict[int, str] = {
    1: cp.OPTIMAL,
    2: cp.OPTIMAL_INACCURATE,
    3: cp.INFEASIBLE,
    4: cp.INFEASIBLE_INACCURATE,
    5: cp.UNBOUNDED,
    6: cp.UNBOUNDED_INACCURATE,
    7: cp.USER_LIMIT,
    8: cp.USER_LIMIT,
}
# Clarabel ``solution.status`` -> CVXPY status
_CLARABEL_STATUS: dict[str, str] = {
    "Solved": cp.OPTIMAL,
    "AlmostSolved": cp.OPTIMAL_INACCURATE,
    "PrimalInfeasible": cp.INFEASIBLE,
    "AlmostPrimalInfeasible": cp.INFEASIBLE_INACCURATE,
    "DualInfeasible": cp.UNBOUNDED,
    "AlmostDualInfeasible": cp.UNBOUNDED_INACCURATE,
    "MaxIterations": cp.USER_LIMIT,
    "MaxTime": cp.USER_LIMIT,
}
# ECOS ``info["exitFlag"]`` -> CVXPY status
_ECOS_STATUS: dict[int, str] = {
    0: cp.OPTIMAL,
    1: cp.INFEASIBLE,
    2: cp.UNBOUNDED,
    10: cp.OPTIMAL_INACCURATE,
    11: cp.INFEASIBLE_INACCURATE,
    12: cp.UNBOUNDED_INACCURATE,
    -1: cp.USER_LIMIT,
}
_SOLUTION_PRESENT = (cp.OPTIMAL, cp.OPTIMAL_INACCURATE)
# maps with at most this many entries are applied to one instance with numpy's gather and
# bincount (a few microseconds); larger ones with scipy's product, without index copies
_GATHER_MAX_NNZ = 200_000


class FastPathUnavailable(Exception):
    """The compiled program cannot be solved by a direct adapter; the message says why."""


@dataclass
class Outcome:
    """What one direct solver call returned.

    Attributes
    ----------
    status : str
        CVXPY's name for the solver status (``"optimal"``, ``"infeasible"``, ...).
    x : numpy.ndarray or None
        The solver's primal point (the whole program variable), when it returned one.
    prim_res, dual_res : float
        The solver's own primal and dual residuals (OSQP), NaN when not reported.
    """

    status: str
    x: NDArray[np.float64] | None
    prim_res: float = float("nan")
    dual_res: float = float("nan")


@dataclass
class ProgramData:
    """The data of one or several instances of a :class:`ProgramMap`'s program.

    Every array has one column per instance (``R`` columns), or a single column when its value
    is the same for every instance (then :meth:`column` returns that very array, which lets the
    solver adapters skip updates by an identity test).

    Attributes
    ----------
    q : numpy.ndarray, shape (n, R) or (n, 1)
    d : numpy.ndarray, shape (1, R) or (1, 1)
        Constant offset of the objective.
    A : numpy.ndarray, shape (nnz_A, R) or (nnz_A, 1)
        Values of ``A`` in the map's fixed CSC pattern.
    b : numpy.ndarray, shape (m, R) or (m, 1)
    P : numpy.ndarray or None, shape (nnz_P, R) or (nnz_P, 1)
        Values of the upper triangle of ``P`` in the map's CSC pattern (None: linear objective).
    qd : numpy.ndarray, optional
        ``q`` and ``d`` stacked, the array both are views of (kept for reuse).
    """

    q: NDArray[np.float64]
    d: NDArray[np.float64]
    A: NDArray[np.float64]
    b: NDArray[np.float64]
    P: NDArray[np.float64] | None
    qd: NDArray[np.float64] | None = None

    def column(self, k: int) -> ProgramData:
        """Return the data of instance ``k``, every array with one column."""

        def pick(arr: NDArray[np.float64]) -> NDArray[np.float64]:
            return arr if arr.shape[1] == 1 else arr[:, k : k + 1]

        return ProgramData(
            q=pick(self.q),
            d=pick(self.d),
            A=pick(self.A),
            b=pick(self.b),
            P=None if self.P is None else pick(self.P),
        )


class _AffineMap:
    """``values = M @ theta`` for a sparse ``M``, with the constant case precomputed.

    ``deps`` lists the parameter slots ``(name, start, stop)`` of ``theta`` that ``M`` reads.
    """

    def __init__(self, M: Any, const_col: int, slots: list[tuple[str, int, int]]) -> None:
        M = sp.csr_matrix(M)
        self.rows = M.shape[0]
        used = np.zeros(M.shape[1], dtype=bool)
        used[M.indices] = True
        self.deps = [(name, start, stop) for name, start, stop in slots if used[start:stop].any()]
        self._row_of: NDArray[np.int64] | None = None
        if self.deps:
            self.M: Any = M
            self.value = np.zeros((self.rows, 1))
            if M.nnz <= _GATHER_MAX_NNZ:
                # one instance: gather-multiply-scatter in numpy (cheaper than a scipy call
                # for small maps; large ones keep scipy's product and no index copies)
                self._row_of = np.repeat(np.arange(self.rows), np.diff(M.indptr))
        else:
            self.M = None
            col = M[:, [const_col]].toarray() if M.nnz else np.zeros((self.rows, 1))
            self.value = np.asarray(col, dtype=np.float64)

    def __call__(self, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        if self.M is None:
            return self.value
        if theta.shape[1] == 1:
            if self._row_of is not None:
                out = np.bincount(
                    self._row_of,
                    weights=self.M.data * theta[self.M.indices, 0],
                    minlength=self.rows,
                )
                # NumPy's stub types bincount as integer; with weights it is float64
                return out[:, None]  # type: ignore[return-value]
            return np.asarray(self.M @ theta[:, 0], dtype=np.float64)[:, None]
        return np.asarray(self.M @ theta, dtype=np.float64)


def _csr_rows(M: Any, start: int, stop: int) -> Any:
    """Rows ``start:stop`` of a CSR matrix, sharing its data and indices (no copy)."""
    lo, hi = int(M.indptr[start]), int(M.indptr[stop])
    return sp.csr_matrix(
        (M.data[lo:hi], M.indices[lo:hi], M.indptr[start : stop + 1] - lo),
        shape=(stop - start, M.shape[1]),
        copy=False,
    )


def _supported_dims(prog: Any) -> Any:
    """Return the cone dimensions of ``prog``, or raise when the direct path cannot take it."""
    if getattr(prog, "lower_bounds", None) is not None or (
        getattr(prog, "upper_bounds", None) is not None
    ):
        raise FastPathUnavailable("the program has variable bounds")
    if getattr(prog, "lb_tensor", None) is not None or getattr(prog, "ub_tensor", None):
        raise FastPathUnavailable("the program has parametric variable bounds")
    if getattr(prog, "dir_cones", None):
        raise FastPathUnavailable("the program has direct cones")
    if prog.is_mixed_integer():
        raise FastPathUnavailable("the program has integer variables")
    dims = prog.cone_dims
    if dims.psd or dims.p3d or dims.pnd:
        raise FastPathUnavailable("the program has PSD or power cones")
    return dims


def _variable_slices(
    prog: Any, variables: Mapping[str, cp.Variable]
) -> list[tuple[str, int, int, tuple[int, ...]]]:
    """Column blocks of the solver's ``x`` holding each user variable (Fortran order)."""
    out = []
    for name, var in variables.items():
        col = prog.var_id_to_col.get(var.id)
        if col is None:
            raise FastPathUnavailable(
                f"variable {name!r} is not a column of the program (CVXPY transformed it)"
            )
        size = int(np.prod(var.shape)) if var.shape else 1
        out.append((name, int(col), int(col) + size, tuple(var.shape)))
    return out


class ProgramMap:
    """Parameter values to solver data, and solver solution to variable values.

    Parameters
    ----------
    param_prog : cvxpy ParamConeProg
        The parametrised program CVXPY cached for one solver (``problem._cache.param_prog``).
    parameters : mapping of str to cvxpy.Parameter
        The user's parameters by name; every parameter of the program must be one of them.
    variables : mapping of str to cvxpy.Variable
        The user's variables by name; each must be a column block of the program's variable.

    Raises
    ------
    FastPathUnavailable
        For programs with variable bounds, PSD or power cones, integer variables, parameters
        that CVXPY transformed, or variables that are not columns of the program.
    """

    def __init__(
        self,
        param_prog: Any,
        parameters: Mapping[str, cp.Parameter],
        variables: Mapping[str, cp.Variable],
    ) -> None:
        try:
            self._read(param_prog, parameters, variables)
        except FastPathUnavailable:
            raise
        except (AttributeError, KeyError, TypeError, IndexError) as exc:
            raise FastPathUnavailable(
                f"CVXPY's parametrised program lacks the expected internals "
                f"({type(exc).__name__}: {exc})"
            ) from exc

    # ------------------------------------------------------------------ set-up
    def _read(
        self,
        prog: Any,
        parameters: Mapping[str, cp.Parameter],
        variables: Mapping[str, cp.Variable],
    ) -> None:
        from cvxpy.lin_ops import lin_op

        dims = _supported_dims(prog)
        self.n_zero = int(dims.zero)
        self.n_nonneg = int(dims.nonneg)
        self.soc = [int(k) for k in dims.soc]
        self.n_exp = int(dims.exp)
        self.n = int(prog.x.size)
        self.m = self.n_zero + self.n_nonneg + sum(self.soc) + 3 * self.n_exp

        # parameter vector layout: user parameters by id, plus the constant column
        by_id = {p.id: name for name, p in parameters.items()}
        self.n_theta = int(prog.total_param_size) + 1
        self.slots: list[tuple[str, int, int]] = []
        const_col: int | None = None
        for pid, col in prog.param_id_to_col.items():
            if pid == lin_op.CONSTANT_ID:
                const_col = int(col)
                continue
            if pid not in by_id:
                raise FastPathUnavailable(
                    f"parameter {prog.id_to_param[pid]} of the program is not one of the "
                    "problem's parameters (CVXPY transformed it)"
                )
            self.slots.append((by_id[pid], int(col), int(prog.param_id_to_size[pid])))
        if const_col is None:
            const_col = self.n_theta - 1
        self.const_col = const_col
        # the slots and the constant column fill theta entirely (theta may start uninitialised)
        self._covered = sum(size for _, _, size in self.slots) + 1 == self.n_theta
        spans = sorted(
            ((name, col, col + size) for name, col, size in self.slots), key=lambda t: t[1]
        )
        self._spans = spans
        self._starts = np.array([col for _, col, _ in spans], dtype=np.int64)

        # objective: [q; d] = Q @ theta
        Q = sp.csr_matrix(prog.q)
        if Q.shape != (self.n + 1, self.n_theta):
            raise FastPathUnavailable(f"unexpected objective tensor shape {Q.shape}")
        self._q = _AffineMap(Q, const_col, spans)

        # constraints: values of [A | b] in CSC order of an (m, n + 1) matrix
        red = prog.reduced_A
        red.cache()
        if red.problem_data_index is None:
            if self.m:
                raise FastPathUnavailable("the program's constraint data are not indexed")
            # no constraints: empty A and b
            indices = np.zeros(0, dtype=np.int64)
            indptr = np.zeros(self.n + 2, dtype=np.int64)
            RA = sp.csr_matrix((0, self.n_theta))
        else:
            indices, indptr, shape = red.problem_data_index
            if tuple(int(s) for s in shape) != (self.m, self.n + 1):
                raise FastPathUnavailable(
                    f"constraint data of shape {tuple(shape)}, expected {(self.m, self.n + 1)}"
                )
            RA = sp.csr_matrix(red.reduced_mat)
            indices = np.asarray(indices, dtype=np.int64)
            indptr = np.asarray(indptr, dtype=np.int64)
        nnz_a = int(indptr[self.n])
        self.A_indptr = indptr[: self.n + 1].copy()
        self.A_indices = indices[:nnz_a].copy()
        self.A_cols = np.repeat(np.arange(self.n), np.diff(self.A_indptr))
        self._A = _AffineMap(_csr_rows(RA, 0, nnz_a), const_col, spans)
        b_rows = indices[nnz_a:]
        scatter = sp.csr_matrix(
            (np.ones(b_rows.size), (b_rows, np.arange(b_rows.size))), shape=(self.m, b_rows.size)
        )
        self._b = _AffineMap(scatter @ _csr_rows(RA, nnz_a, RA.shape[0]), const_col, spans)

        # quadratic objective: upper triangle of P (CVXPY stores it symmetric)
        self.has_P = prog.P is not None and getattr(prog.reduced_P, "matrix_data", None) is not None
        if self.has_P:
            redP = prog.reduced_P
            redP.cache()
            if redP.problem_data_index is None:
                self.has_P = False
        if self.has_P:
            p_indices, p_indptr, p_shape = prog.reduced_P.problem_data_index
            if tuple(int(s) for s in p_shape) != (self.n, self.n):
                raise FastPathUnavailable(f"quadratic data of shape {tuple(p_shape)}")
            p_indices = np.asarray(p_indices, dtype=np.int64)
            # the ignore: NumPy's stub types diff of an int64 array as timedelta64
            p_cols = np.repeat(np.arange(self.n), np.diff(np.asarray(p_indptr, dtype=np.int64)))  # type: ignore[arg-type]
            upper = p_indices <= p_cols
            RP = sp.csr_matrix(prog.reduced_P.reduced_mat)[np.flatnonzero(upper)]
            self._P = _AffineMap(RP, const_col, spans)
            self.P_indices = p_indices[upper]
            self.P_cols = p_cols[upper]
            counts = np.bincount(self.P_cols, minlength=self.n)
            self.P_indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
            # 1/2 x'Px from the upper triangle: diagonal entries once, the others twice
            self.P_weight = np.where(self.P_indices == self.P_cols, 0.5, 1.0)
        else:
            self.P_indices = np.zeros(0, dtype=np.int64)
            self.P_cols = np.zeros(0, dtype=np.int64)
            self.P_indptr = np.zeros(self.n + 1, dtype=np.int64)
            self.P_weight = np.zeros(0)

        self.var_slices = _variable_slices(prog, variables)

        # rows of the linear cones and the second-order cones, for the feasibility check
        self.n_linear = self.n_zero + self.n_nonneg
        starts = np.cumsum([0, *self.soc[:-1]]).astype(np.int64) if self.soc else None
        self.soc_starts = starts
        self._last: ProgramData | None = None
        self._last_theta: NDArray[np.float64] | None = None

    # ------------------------------------------------------------------ data
    def theta(self, values: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        """Return the parameter vector of one instance, shape ``(n_theta, 1)``.

        ``values`` maps every parameter name of the program to an array of the parameter's
        shape.
        """
        theta = (np.empty if self._covered else np.zeros)((self.n_theta, 1))
        theta[self.const_col, 0] = 1.0
        for name, col, size in self.slots:
            theta[col : col + size, 0] = np.ravel(values[name], order="F")
        return theta

    def theta_many(
        self,
        per_row: Mapping[str, NDArray[np.float64]],
        shared: Mapping[str, NDArray[np.float64]],
        R: int,
    ) -> NDArray[np.float64]:
        """Return the parameter vectors of ``R`` instances as columns, shape ``(n_theta, R)``.

        ``per_row[name]`` has shape ``(R, *shape)`` (one value per instance); a parameter absent
        from ``per_row`` takes ``shared[name]`` (the parameter's shape) in every instance.
        """
        theta = np.zeros((self.n_theta, R))
        theta[self.const_col] = 1.0
        for name, col, size in self.slots:
            arr = per_row.get(name)
            if arr is None:
                theta[col : col + size] = np.ravel(shared[name], order="F")[:, None]
            else:
                # Fortran-order flattening of every instance, as columns
                flat = arr.transpose(0, *range(arr.ndim - 1, 0, -1)).reshape(R, size)
                theta[col : col + size] = flat.T
        return theta

    def data(self, theta: NDArray[np.float64]) -> ProgramData:
        """Apply the program's tensors to the columns of ``theta`` (one sparse product each)."""
        qd = self._q(theta)
        return ProgramData(
            q=qd[: self.n],
            d=qd[self.n :],
            A=self._A(theta),
            b=self._b(theta),
            P=self._P(theta) if self.has_P else None,
            qd=qd,
        )

    def data_one(self, values: Mapping[str, NDArray[np.float64]]) -> ProgramData:
        """Return the data of one instance, reusing the previous call's arrays where possible.

        A block of data (``q``, ``A``, ``b``, ``P``) whose parameters did not change since the
        previous call is the previous call's array itself, so adapters see it unchanged at the
        cost of an identity test.
        """
        theta = self.theta(values)
        last, last_theta = self._last, self._last_theta
        if last is None or last_theta is None or last.qd is None:
            data = self.data(theta)
        else:
            # one comparison of the whole vector, then one reduction per slot (slots sorted by
            # column; the constant column and any gap fall in a segment and never differ)
            changed: set[str] = set()
            if self._spans:
                differs = np.logical_or.reduceat(theta[:, 0] != last_theta[:, 0], self._starts)
                changed = {n for (n, _, _), d in zip(self._spans, differs, strict=True) if d}

            def block(amap: _AffineMap, old: NDArray[np.float64]) -> NDArray[np.float64]:
                if amap.M is None or not any(name in changed for name, _, _ in amap.deps):
                    return old
                return amap(theta)

            qd = block(self._q, last.qd)
            A = block(self._A, last.A)
            b = block(self._b, last.b)
            P = block(self._P, last.P) if last.P is not None else None
            if qd is last.qd:
                q, d = last.q, last.d  # the same views: adapters see q unchanged
            else:
                q, d = qd[: self.n], qd[self.n :]
            data = ProgramData(q=q, d=d, A=A, b=b, P=P, qd=qd)
        self._last, self._last_theta = data, theta
        return data

    def data_many(
        self,
        per_row: Mapping[str, NDArray[np.float64]],
        shared: Mapping[str, NDArray[np.float64]],
        R: int,
    ) -> ProgramData:
        """Return the data of ``R`` instances, one sparse product per block of data.

        Arguments as in :meth:`theta_many`. A block that reads no per-instance parameter is
        computed once and kept as a single column.
        """
        theta = self.theta_many(per_row, shared, R)
        first = theta[:, :1]

        def apply(amap: _AffineMap) -> NDArray[np.float64]:
            if any(name in per_row for name, _, _ in amap.deps):
                return amap(theta)
            return amap(first)

        qd = apply(self._q)
        return ProgramData(
            q=qd[: self.n],
            d=qd[self.n :],
            A=apply(self._A),
            b=apply(self._b),
            P=apply(self._P) if self.has_P else None,
        )

    # ------------------------------------------------------------------ solutions
    def unpack(self, x: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
        """Return the user's variables from the program variable ``x`` (copies)."""
        return {
            name: x[col:stop].reshape(shape, order="F").copy()
            for name, col, stop, shape in self.var_slices
        }

    def objective(self, x: NDArray[np.float64], data: ProgramData) -> float:
        """``1/2 x'Px + q'x + d`` for a one-column ``data``."""
        val = float(data.q[:, 0] @ x + data.d[0, 0])
        if data.P is not None:
            val += float(np.dot(data.P[:, 0] * self.P_weight, x[self.P_indices] * x[self.P_cols]))
        return val

    def residual(self, x: NDArray[np.float64], data: ProgramData) -> NDArray[np.float64]:
        """Return ``A x + b`` for a one-column ``data``."""
        return (
            np.bincount(self.A_indices, weights=data.A[:, 0] * x[self.A_cols], minlength=self.m)
            + data.b[:, 0]
        )

    def violation(self, x: NDArray[np.float64], data: ProgramData) -> float:
        """Largest violation of the zero, non-negative and second-order cone rows by ``x``.

        Exponential cones are not measured (their membership is certified by the solver's
        status); the user's linear constraints are among the rows measured.
        """
        if not self.m:
            return 0.0
        r = self.residual(x, data)
        worst = 0.0
        if self.n_zero:
            worst = float(np.abs(r[: self.n_zero]).max())
        if self.n_nonneg:
            worst = max(worst, -float(r[self.n_zero : self.n_linear].min()))
        if self.soc_starts is not None:
            block = r[self.n_linear : self.n_linear + sum(self.soc)]
            sq = block * block
            tails = np.add.reduceat(sq, self.soc_starts) - sq[self.soc_starts]
            gap = np.sqrt(np.maximum(tails, 0.0)) - block[self.soc_starts]
            worst = max(worst, float(gap.max()))
        return max(worst, 0.0)


# ---------------------------------------------------------------------------- backends
class _Backend:
    """A solver called directly with the data of a :class:`ProgramMap`."""

    name = ""

    def __init__(self, pmap: ProgramMap) -> None:
        self.pmap = pmap
        self._src: dict[str, NDArray[np.float64]] = {}
        self._vals: dict[str, NDArray[np.float64]] = {}

    def _changed(
        self, key: str, arr: NDArray[np.float64], compare: bool = True
    ) -> NDArray[np.float64] | None:
        """Return the values of the one-column ``arr``, or None if they did not change.

        Unchanged means the same array object as last time under ``key``, or (with
        ``compare``; worth it for matrices, whose update refactorises) equal values.
        """
        if arr is self._src.get(key):
            return None
        self._src[key] = arr
        vals = np.ascontiguousarray(arr[:, 0])
        if compare:
            old = self._vals.get(key)
            if old is not None and np.array_equal(vals, old):
                return None
            self._vals[key] = vals
        return vals

    def _forget(self) -> None:
        self._src.clear()
        self._vals.clear()

    def solve(self, data: ProgramData, settings: Mapping[str, Any]) -> Outcome:
        """Solve one instance (``data`` with one column) with native ``settings``."""
        raise NotImplementedError


class OsqpBackend(_Backend):
    """OSQP through ``osqp.OSQP``: set up once, then ``update`` only what changed.

    Polishing follows CVXPY's rule unless the settings name it: on for the first solve and for
    solves whose ``P`` or ``A`` changed (a refactorisation), off for vectors-only re-solves.
    Every solve warm-starts from the previous answer when it had one, from zero otherwise.
    """

    name = "OSQP"

    def __init__(self, pmap: ProgramMap) -> None:
        super().__init__(pmap)
        if pmap.soc or pmap.n_exp:
            raise FastPathUnavailable("OSQP handles zero and non-negative rows only")
        import osqp

        self._osqp = osqp
        self._solver: Any = None
        self._ext: Any = None
        self._applied: dict[str, Any] | None = None
        # the settings mapping and refactorisation flag ``_applied`` was derived from
        self._applied_src: Mapping[str, Any] | None = None
        self._applied_refactor = False
        self._last: tuple[NDArray[np.float64], NDArray[np.float64]] | None = None
        self._upper_inf = np.full(pmap.n_nonneg, np.inf)

    def _bounds(self, b: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        lower = -b
        upper = np.concatenate([lower[: self.pmap.n_zero], self._upper_inf])
        return lower, upper

    def _setup(self, data: ProgramData, settings: Mapping[str, Any]) -> None:
        pm = self.pmap
        self._forget()
        q = self._changed("q", data.q)
        A = self._changed("A", data.A)
        b = self._changed("b", data.b)
        P = self._changed("P", data.P) if data.P is not None else np.zeros(0)
        assert q is not None and A is not None and b is not None and P is not None
        lower, upper = self._bounds(b)
        opts = {k: v for k, v in settings.items() if k != "polishing"}
        polishing = bool(settings.get("polishing", True))
        solver = self._osqp.OSQP()
        solver.setup(
            sp.csc_matrix((P, pm.P_indices, pm.P_indptr), shape=(pm.n, pm.n)),
            q,
            sp.csc_matrix((A, pm.A_indices, pm.A_indptr), shape=(pm.m, pm.n)),
            lower,
            upper,
            verbose=False,
            polishing=polishing,
            **opts,
        )
        self._solver = solver
        self._applied = {**opts, "polishing": polishing}
        self._applied_src = None
        # the package's own ``OSQP.solve`` copies every info field into a new namespace on
        # each call (~70 us here); read the compiled solver's fields directly when present
        ext = getattr(solver, "_solver", None)
        has = all(hasattr(ext, a) for a in ("solve", "info", "solution"))
        self._ext = ext if ext is not None and has else None

    def _update(self, data: ProgramData, settings: Mapping[str, Any]) -> None:
        solver = self._solver
        update: dict[str, NDArray[np.float64]] = {}
        q = self._changed("q", data.q, compare=False)
        if q is not None:
            update["q"] = q
        b = self._changed("b", data.b, compare=False)
        if b is not None:
            update["l"], update["u"] = self._bounds(b)
        refactor = False
        if data.P is not None:
            P = self._changed("P", data.P)
            if P is not None and P.size:
                update["Px"] = P
                refactor = True
        A = self._changed("A", data.A)
        if A is not None and A.size:
            update["Ax"] = A
            refactor = True
        if update:
            solver.update(**update)
        if settings is not self._applied_src or refactor != self._applied_refactor:
            opts = {k: v for k, v in settings.items() if k != "polishing"}
            wanted = {**opts, "polishing": bool(settings.get("polishing", refactor))}
            if wanted != self._applied:
                solver.update_settings(**wanted)
                self._applied = wanted
            self._applied_src, self._applied_refactor = settings, refactor
        if self._last is not None:
            solver.warm_start(x=self._last[0], y=self._last[1])
        else:
            solver.warm_start(x=np.zeros(self.pmap.n), y=np.zeros(self.pmap.m))

    def _run(self) -> tuple[int, float, float, Any, Any]:
        solver = self._solver
        ext = self._ext
        if ext is not None:
            ext.solve()
            info, sol = ext.info, ext.solution
            return int(info.status_val), info.prim_res, info.dual_res, sol.x, sol.y
        res = solver.solve(raise_error=False)
        return int(res.info.status_val), res.info.prim_res, res.info.dual_res, res.x, res.y

    def solve(self, data: ProgramData, settings: Mapping[str, Any]) -> Outcome:
        if self._solver is None:
            self._setup(data, settings)
        else:
            self._update(data, settings)
        quiet = (
            contextlib.redirect_stdout(io.StringIO())
            if self._applied and self._applied.get("polishing")
            else contextlib.nullcontext()
        )
        with quiet:  # OSQP 1.x prints "Polishing not needed" unconditionally (osqp/osqp#785)
            status_val, prim, dual, x_raw, y_raw = self._run()
        status = _OSQP_STATUS.get(status_val, cp.SOLVER_ERROR)
        if status in _SOLUTION_PRESENT:
            # OSQP hands out fresh arrays (copies of its workspace); no further copy needed
            x = np.asarray(x_raw, dtype=np.float64)
            self._last = (x, np.asarray(y_raw, dtype=np.float64))
        else:
            x = None
            self._last = None
        return Outcome(status, x, float(prim), float(dual))


class ClarabelBackend(_Backend):
    """Clarabel through ``clarabel.DefaultSolver``, data updated in place when allowed.

    Clarabel is an interior-point method: it does not warm-start, but updating the data of an
    existing solver (Clarabel >= 0.6, when no presolve reduction or chordal decomposition was
    applied) skips its allocations and symbolic factorisation. Otherwise the solver is rebuilt.
    """

    name = "CLARABEL"

    def __init__(self, pmap: ProgramMap) -> None:
        super().__init__(pmap)
        import clarabel

        self._clarabel = clarabel
        cones: list[Any] = []
        if pmap.n_zero:
            cones.append(clarabel.ZeroConeT(pmap.n_zero))
        if pmap.n_nonneg:
            cones.append(clarabel.NonnegativeConeT(pmap.n_nonneg))
        cones.extend(clarabel.SecondOrderConeT(k) for k in pmap.soc)
        cones.extend(clarabel.ExponentialConeT() for _ in range(pmap.n_exp))
        self._cones = cones
        self._solver: Any = None
        self._applied: dict[str, Any] | None = None

    def _settings(self, settings: Mapping[str, Any]) -> Any:
        st = self._clarabel.DefaultSettings()
        st.verbose = False
        for key, val in settings.items():
            setattr(st, key, val)
        return st

    def _build(self, data: ProgramData, wanted: dict[str, Any]) -> Any:
        pm = self.pmap
        self._forget()
        q = self._changed("q", data.q)
        A = self._changed("A", data.A)
        b = self._changed("b", data.b)
        P = self._changed("P", data.P) if data.P is not None else np.zeros(0)
        assert q is not None and A is not None and b is not None and P is not None
        solver = self._clarabel.DefaultSolver(
            sp.csc_matrix((P, pm.P_indices, pm.P_indptr), shape=(pm.n, pm.n)),
            q,
            sp.csc_matrix((-A, pm.A_indices, pm.A_indptr), shape=(pm.m, pm.n)),
            b,
            self._cones,
            self._settings(wanted),
        )
        self._solver, self._applied = solver, wanted
        return solver

    def solve(self, data: ProgramData, settings: Mapping[str, Any]) -> Outcome:
        wanted = dict(settings)
        solver = self._solver
        if (
            solver is not None
            and wanted == self._applied
            and hasattr(solver, "update")
            and solver.is_data_update_allowed()
        ):
            update: dict[str, NDArray[np.float64]] = {}
            q = self._changed("q", data.q, compare=False)
            if q is not None:
                update["q"] = q
            b = self._changed("b", data.b, compare=False)
            if b is not None:
                update["b"] = b
            A = self._changed("A", data.A)
            if A is not None and A.size:
                update["A"] = -A
            if data.P is not None:
                P = self._changed("P", data.P)
                if P is not None and P.size:
                    update["P"] = P
            if update:
                solver.update(**update)
        else:
            solver = self._build(data, wanted)
        sol = solver.solve()
        status = _CLARABEL_STATUS.get(str(sol.status), cp.SOLVER_ERROR)
        x = np.asarray(sol.x, dtype=np.float64) if status in _SOLUTION_PRESENT else None
        return Outcome(status, x)


class EcosBackend(_Backend):
    """ECOS through ``ecos.solve``, called afresh each time (no update interface).

    ECOS has no quadratic objective; CVXPY's program for ECOS moves it into a second-order cone.
    """

    name = "ECOS"

    def __init__(self, pmap: ProgramMap) -> None:
        super().__init__(pmap)
        if pmap.has_P:
            raise FastPathUnavailable("ECOS takes no quadratic objective")
        import ecos

        self._ecos = ecos
        # split the CSC pattern of A into its equality rows (first n_zero) and the cone rows
        pm = pmap
        rows, cols, z = pm.A_indices, pm.A_cols, pm.n_zero
        eq = rows < z
        self._eq = np.flatnonzero(eq)
        self._cone = np.flatnonzero(~eq)
        self._eq_rows = rows[eq]
        self._cone_rows = rows[~eq] - z
        self._eq_indptr = np.concatenate(
            [[0], np.cumsum(np.bincount(cols[eq], minlength=pm.n))]
        ).astype(np.int64)
        self._cone_indptr = np.concatenate(
            [[0], np.cumsum(np.bincount(cols[~eq], minlength=pm.n))]
        ).astype(np.int64)
        self._dims = {"l": pm.n_nonneg, "q": list(pm.soc), "e": pm.n_exp}
        if z and not self._eq.size:
            raise FastPathUnavailable("ECOS cannot take equality rows without entries")
        # the matrices are built once; each solve only replaces their values (building a
        # scipy matrix costs more than a small ECOS solve)
        self._G = self._A_eq = None
        if pm.m > z:
            self._G = sp.csc_matrix(
                (np.zeros(self._cone.size), self._cone_rows, self._cone_indptr),
                shape=(pm.m - z, pm.n),
            )
        if z:
            self._A_eq = sp.csc_matrix(
                (np.zeros(self._eq.size), self._eq_rows, self._eq_indptr), shape=(z, pm.n)
            )

    def solve(self, data: ProgramData, settings: Mapping[str, Any]) -> Outcome:
        pm = self.pmap
        A = self._changed("A", data.A)
        if A is not None:
            if self._G is not None:
                self._G.data = -A[self._cone]
            if self._A_eq is not None:
                self._A_eq.data = -A[self._eq]
        b = data.b[:, 0]
        z = pm.n_zero
        h = np.ascontiguousarray(b[z:]) if self._G is not None else None
        b_eq = np.ascontiguousarray(b[:z]) if self._A_eq is not None else None
        sol = self._ecos.solve(
            np.ascontiguousarray(data.q[:, 0]),
            self._G,
            h,
            self._dims,
            self._A_eq,
            b_eq,
            verbose=False,
            **settings,
        )
        status = _ECOS_STATUS.get(int(sol["info"]["exitFlag"]), cp.SOLVER_ERROR)
        x = np.asarray(sol["x"], dtype=np.float64) if status in _SOLUTION_PRESENT else None
        return Outcome(status, x)


_BACKENDS: dict[str, type[_Backend]] = {
    "OSQP": OsqpBackend,
    "CLARABEL": ClarabelBackend,
    "ECOS": EcosBackend,
}


def make_backend(solver: str, pmap: ProgramMap) -> _Backend:
    """Return the direct adapter of ``solver`` for the program ``pmap``.

    Raises
    ------
    FastPathUnavailable
        If ``solver`` has no direct adapter or cannot take this program.
    """
    try:
        cls = _BACKENDS[solver]
    except KeyError:
        raise FastPathUnavailable(f"no direct adapter for {solver}") from None
    try:
        return cls(pmap)
    except ImportError as exc:
        raise FastPathUnavailable(f"{solver}'s Python package cannot be imported: {exc}") from exc
