# SPDX-License-Identifier: Apache-2.0
r"""Prediction rules and scores of a trained lifted network.

* the **feed-forward rule** (paper eq. 2) is :meth:`LiftedNetwork.predict`;
* the **lifted rule** (eq. 12), :func:`lifted_predict`, minimises the penalties over the states
  of new rows with the weights fixed, by the same exact state steps as training
  (:meth:`~cvx_lifted.bcd.BCDSolver.lifted_update`);
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from cvx_lifted import paths
from cvx_lifted.bcd import Backend, BCDSolver, BCDState, blas_limits
from cvx_lifted.history import BCDHistory

if TYPE_CHECKING:
    from cvx_lifted.network import LiftedNetwork

__all__ = ["lifted_predict"]

FloatArray = NDArray[np.floating[Any]]


def lifted_predict(
    network: LiftedNetwork,
    X: FloatArray,
    *,
    backend: Backend = "auto",
    tol: float = 1e-8,
    max_iter: int = 200,
) -> tuple[FloatArray, list[FloatArray]]:
    r"""Lifted prediction rule (paper eq. 12) by cyclic exact state steps.

    Minimises :math:`\sum_l \lambda_{l+1} D_l(U_l, X_{l+1})` over the states of the rows of
    ``X`` with the weights fixed and the output free, starting from the feed-forward states.
    Rows are independent and each stops on its own test (relative decrease of its penalty below
    ``tol``), so a row's prediction does not depend on the other rows of the batch.

    Parameters
    ----------
    network : LiftedNetwork
        A fitted network.
    X : numpy.ndarray, shape (m, n_inputs)
        Validated inputs.
    backend : {"auto", "numpy", "cvxpy"}, default="auto"
    tol : float, default=1e-8
        Relative decrease of a row's penalty below which that row stops.
    max_iter : int, default=200
        Maximum number of cycles.

    Returns
    -------
    output : numpy.ndarray
        The predicted outputs.
    states : list of numpy.ndarray
        The optimal hidden states (and output state).
    """
    with blas_limits("auto", X.shape[0], network.layer_sizes):
        return _lifted_predict(network, X, backend, tol, max_iter)


def _lifted_predict(
    network: LiftedNetwork, X: FloatArray, backend: Backend, tol: float, max_iter: int
) -> tuple[FloatArray, list[FloatArray]]:
    # lifted prediction takes state and output steps only: "numpy" needs fast paths for those
    # (the weight blocks, which may lack one, e.g. with rho = 0, are never solved here)
    solver = BCDSolver(
        network, backend="auto" if backend == "numpy" else backend, state_tol=min(1e-10, tol)
    )
    if backend == "numpy":
        paths.require_fast(
            network, [b for b, path in solver.paths.items() if path != "numpy" and b[0] != "W"]
        )
    all_states = solver.initial_states(X)
    L = network.n_hidden

    def row_penalty(Xs: list[FloatArray]) -> NDArray[np.float64]:
        total = np.zeros(Xs[0].shape[0])
        for layer in range(network.n_layers):
            act = network.divergence_of(layer)
            if act is None:
                continue
            U = network.preactivation(layer, Xs[layer])
            total += network.lam[layer] * act.row_values(U, Xs[layer + 1])
        return total

    active = np.arange(X.shape[0])
    previous = row_penalty(all_states)
    for _ in range(max_iter if L > 0 else 0):
        zeros = np.zeros((len(active), network.layer_sizes[-1]), dtype=network.dtype)
        state = BCDState([S[active] for S in all_states], zeros, BCDHistory())
        solver.lifted_update(state)
        for S, part in zip(all_states, state.states, strict=True):
            S[active] = part
        current = row_penalty(state.states)
        done = previous[active] - current <= tol * np.maximum(np.abs(previous[active]), 1e-12)
        previous[active] = current
        active = active[~done]
        if active.size == 0:
            break
    head = network.head
    if head.has_state:
        out = all_states[L + 1]
    else:
        out = head.predict(network.preactivation(L, all_states[L]))
    return out, all_states[1:]
