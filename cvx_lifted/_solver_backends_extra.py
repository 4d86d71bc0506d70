# SPDX-License-Identifier: Apache-2.0
"""Direct solver adapters used by blocks assembled without CVXPY (:mod:`cvx_lifted.separable`).

:class:`~cvx_lifted.compile.CompiledProblem` solves SCS through CVXPY and calls ECOS through
:class:`~cvx_lifted._solver_backends.EcosBackend`; blocks built from templates have no CVXPY
problem to fall back on, so they get an SCS adapter (:class:`ScsBackend`) and an ECOS adapter
that keeps no index array per matrix entry (:class:`EcosSlicedBackend`).
:func:`make_any_backend` returns these or the adapters of :mod:`cvx_lifted._solver_backends`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import cvxpy as cp
import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray

from cvx_lifted._solver_backends import (
    _ECOS_STATUS,
    _SOLUTION_PRESENT,
    FastPathUnavailable,
    Outcome,
    ProgramData,
    ProgramMap,
    _Backend,
    make_backend,
)

__all__ = ["EcosSlicedBackend", "ScsBackend", "make_any_backend"]

# SCS ``info["status_val"]`` -> CVXPY status
_SCS_STATUS: dict[int, str] = {
    1: cp.OPTIMAL,
    2: cp.OPTIMAL_INACCURATE,
    -1: cp.UNBOUNDED,
    -6: cp.UNBOUNDED_INACCURATE,
    -2: cp.INFEASIBLE,
    -7: cp.INFEASIBLE_INACCURATE,
}


class EcosSlicedBackend(_Backend):
    """ECOS through ``ecos.solve``, its matrices cut from ``A`` by rows once (lean memory).

    The same solver calls as :class:`EcosBackend`, but the equality rows and the cone rows
    are cut from the CSC matrix once, with 64-bit indices (what ECOS uses, so no conversion
    per call): no index array per entry is kept, and ``A`` is cut again only when its values
    change. Used by :func:`make_any_backend`.
    """

    name = "ECOS"

    def __init__(self, pmap: ProgramMap) -> None:
        super().__init__(pmap)
        if pmap.has_P:
            raise FastPathUnavailable("ECOS takes no quadratic objective")
        import ecos

        self._ecos = ecos
        self._dims = {"l": pmap.n_nonneg, "q": list(pmap.soc), "e": pmap.n_exp}
        self._G: Any = None
        self._A_eq: Any = None

    def _slice(self, A: NDArray[np.float64]) -> None:
        pm = self.pmap
        z = pm.n_zero
        eq = pm.A_indices < z
        cols = np.diff(pm.A_indptr)

        def part(mask: NDArray[np.bool_], shift: int, rows: int) -> Any:
            if rows <= 0:
                return None
            counts = np.zeros(pm.n, dtype=np.int64)
            if mask.size:  # entries of each column in the part (empty columns: none)
                starts = np.minimum(pm.A_indptr[:-1], mask.size - 1)
                counts = np.where(cols > 0, np.add.reduceat(mask, starts), 0).astype(np.int64)
            indptr = np.concatenate([np.zeros(1, np.int64), np.cumsum(counts)])
            indices = pm.A_indices[mask].astype(np.int64) - shift
            return sp.csc_matrix((-A[mask], indices, indptr), shape=(rows, pm.n), copy=False)

        self._A_eq = part(eq, 0, z)
        self._G = part(~eq, z, pm.m - z)
        if z and (self._A_eq is None or not self._A_eq.nnz):
            raise FastPathUnavailable("ECOS cannot take equality rows without entries")

    def solve(self, data: ProgramData, settings: Mapping[str, Any]) -> Outcome:
        pm = self.pmap
        A = self._changed("A", data.A)
        if A is not None or (self._G is None and self._A_eq is None):
            self._slice(np.ascontiguousarray(data.A[:, 0]))
        b = data.b[:, 0]
        z = pm.n_zero
        sol = self._ecos.solve(
            np.ascontiguousarray(data.q[:, 0]),
            self._G,
            np.ascontiguousarray(b[z:]) if self._G is not None else None,
            self._dims,
            self._A_eq,
            np.ascontiguousarray(b[:z]) if self._A_eq is not None else None,
            verbose=False,
            **settings,
        )
        status = _ECOS_STATUS.get(int(sol["info"]["exitFlag"]), cp.SOLVER_ERROR)
        x = np.asarray(sol["x"], dtype=np.float64) if status in _SOLUTION_PRESENT else None
        return Outcome(status, x)


class ScsBackend(_Backend):
    """SCS through ``scs.SCS``, set up once and warm-started from the previous answer.

    Only ``b`` and ``c`` are updated in place; new matrices rebuild the solver.

    Not used by :class:`~cvx_lifted.compile.CompiledProblem`, which solves SCS through CVXPY;
    blocks assembled without CVXPY (:mod:`cvx_lifted.separable`) call it through
    :func:`make_any_backend`.
    """

    name = "SCS"

    def __init__(self, pmap: ProgramMap) -> None:
        super().__init__(pmap)
        import scs

        self._scs = scs
        self._cone = {"z": pmap.n_zero, "l": pmap.n_nonneg, "q": list(pmap.soc), "ep": pmap.n_exp}
        self._solver: Any = None
        self._applied: dict[str, Any] | None = None

    def _build(self, data: ProgramData, wanted: dict[str, Any]) -> None:
        pm = self.pmap
        self._forget()
        q = self._changed("q", data.q)
        A = self._changed("A", data.A)
        b = self._changed("b", data.b)
        P = self._changed("P", data.P) if data.P is not None else None
        assert q is not None and A is not None and b is not None
        problem = {
            "A": sp.csc_matrix((-A, pm.A_indices, pm.A_indptr), shape=(pm.m, pm.n)),
            "b": b,
            "c": q,
        }
        if P is not None and P.size:
            problem["P"] = sp.csc_matrix((P, pm.P_indices, pm.P_indptr), shape=(pm.n, pm.n))
        self._solver = self._scs.SCS(problem, self._cone, verbose=False, **wanted)
        self._applied = wanted

    def solve(self, data: ProgramData, settings: Mapping[str, Any]) -> Outcome:
        wanted = dict(settings)
        fresh = self._solver is None or wanted != self._applied
        if not fresh:
            A = self._changed("A", data.A)
            P = self._changed("P", data.P) if data.P is not None else None
            fresh = A is not None or P is not None
        if fresh:
            self._build(data, wanted)
        else:
            q = self._changed("q", data.q, compare=False)
            b = self._changed("b", data.b, compare=False)
            if q is not None or b is not None:
                self._solver.update(b=b, c=q)
        sol = self._solver.solve(warm_start=not fresh)
        status = _SCS_STATUS.get(int(sol["info"]["status_val"]), cp.SOLVER_ERROR)
        x = np.asarray(sol["x"], dtype=np.float64) if status in _SOLUTION_PRESENT else None
        return Outcome(status, x)


def make_any_backend(solver: str, pmap: ProgramMap) -> _Backend:
    """Return a direct adapter like :func:`make_backend`, SCS's included.

    SCS is :class:`ScsBackend`, ECOS the lean :class:`EcosSlicedBackend`.

    Raises
    ------
    FastPathUnavailable
        If ``solver`` has no direct adapter or cannot take this program.
    """
    extra: dict[str, type[_Backend]] = {"SCS": ScsBackend, "ECOS": EcosSlicedBackend}
    if solver not in extra:
        return make_backend(solver, pmap)
    try:
        return extra[solver](pmap)
    except ImportError as exc:
        raise FastPathUnavailable(f"{solver}'s Python package cannot be imported: {exc}") from exc
