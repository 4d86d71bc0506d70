# SPDX-License-Identifier: Apache-2.0
"""The argmin problem of an activation, compiled once and re-solved for batches of rows."""

from __future__ import annotations

from collections.abc import Sequence

import cvxpy as cp
import numpy as np
from numpy.typing import ArrayLike, NDArray

from cvx_lifted.activations import Activation, get_activation
from cvx_lifted.compile import Accuracy, CompiledProblem, SolveStats, row_batches
from cvx_lifted.dcp import drop_constant_terms

__all__ = ["CompiledArgmin"]


class CompiledArgmin:
    r"""The argmin problem of an activation, compiled once for a batch of rows.

    Solves :math:`\min_z D(u, z)` subject to the domain, for every row of ``U``, with ``u`` a
    ``(batch_size, n)`` parameter; rows are processed in batches (the last one padded with
    copies of its last row, :func:`~cvx_lifted.compile.row_batches`), so one compiled problem
    serves any number of rows. All batches of one call are mapped to solver
    data together (:meth:`CompiledProblem.solve_many`).

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
    fast_path : bool, default=True
        Call the solver directly after the first solve (see :class:`CompiledProblem`).

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
        fast_path: bool = True,
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
            fast_path=fast_path,
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
        m = U.shape[0]
        if m == 0:
            return np.empty((0, self.z.shape[1]))
        batches = list(row_batches(m, self.batch_size))
        blocks = [{"u": pad(U[rows])} for rows, pad in batches]
        if len(blocks) == 1:
            return self.problem.solve(blocks[0])["z"][:m]
        solved = self.problem.solve_many(blocks)
        return np.concatenate(
            [s["z"][: rows.stop - rows.start] for s, (rows, _) in zip(solved, batches, strict=True)]
        )
