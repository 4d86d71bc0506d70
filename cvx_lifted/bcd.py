# SPDX-License-Identifier: Apache-2.0
r"""Block-coordinate descent for lifted networks (paper §6): every block an exact convex step.

One *sweep* is

1. the **weight step** of every layer (independent across layers):
   :math:`\min_{W_l, b_l} \frac{\lambda_{l+1}}m D_l(X_l W_l^\top + 1b_l^\top, X_{l+1})
   + \frac{\rho_l}2\|W_l\|^2` -- a ridge regression for :math:`\ell_2` divergences, a
   "ReLU regression" for ``relu_fenchel``, a multinomial logistic regression for the
   ``softmax_xent`` head, a compiled CVXPY problem otherwise;
2. the **state step** of each hidden layer, cyclically :math:`l = 1, \dots, L` (rows
   independent, processed in memory-bounded chunks):
   :math:`\min_Z \lambda_l D_{l-1}(U_{l-1}, Z) + \lambda_{l+1} D_l(Z W_l^\top + 1b_l^\top,
   X_{l+1})` -- a box-constrained QP with the shared Hessian
   :math:`\lambda_l I + \lambda_{l+1} W_l^\top W_l` for the ReLU family;
3. the **output step**: analytic for the squared loss; for the cross-entropy on the simplex,
   Appendix A's scalar equation in the shift, solved in closed form for one-hot rows and by
   safeguarded Newton in a verified bracket otherwise (:mod:`cvx_lifted.kernels.simplex`).

Each block is minimised exactly (to a tolerance), so the objective never increases.

Backends: ``"numpy"`` uses the kernels of :mod:`cvx_lifted.kernels` and refuses blocks that have
none; ``"cvxpy"`` solves every block with a problem compiled once per layer
(:mod:`cvx_lifted.compile`) and re-solved with new parameter values; ``"auto"`` (default) takes
the fast path for each block that has one and the compiled path for the others.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cvx_lifted import defaults, kernels, paths, threads
from cvx_lifted._validation import (
    check_array,
    check_choice,
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
    check_thread_setting,
)
from cvx_lifted.argmin import CompiledArgmin
from cvx_lifted.blocks import (
    column_weight_problem,
    output_step_problem,
    separable_weight_step,
    state_problem,
    whole_weight_problem,
)
from cvx_lifted.compile import Accuracy, CompiledProblem, row_batches
from cvx_lifted.exceptions import SolverFailedError
from cvx_lifted.guard import _RETRY_SOLVERS, BLOCK_RTOL, GuardedBlocks
from cvx_lifted.history import BCDHistory, BCDResult

if TYPE_CHECKING:
    from cvx_lifted.network import LiftedNetwork

__all__ = [
    "BCDHistory",
    "BCDResult",
    "BCDSolver",
    "BCDState",
    "Backend",
    "blas_limits",
    "default_metric",
]

Backend = Literal["auto", "numpy", "cvxpy"]
FloatArray = NDArray[np.floating[Any]]


def _check_weight_max_iter(value: Any) -> int:
    try:
        return check_positive_int(value, "weight_max_iter")
    except ValueError:
        raise ValueError(
            f"weight_max_iter must be a positive integer or 'auto', got {value!r}."
        ) from None


@dataclass
class BCDState:
    """The iterate of block-coordinate descent (the weights live in the network).

    Attributes
    ----------
    states : list of numpy.ndarray
        ``[X_0, X_1, ..., X_L]`` (the input, then the hidden states), plus the output state
        ``X_{L+1}`` when the head has one.
    targets : numpy.ndarray
        The targets ``Y`` (unused by the lifted prediction rule).
    history : BCDHistory
        What happened so far.
    sweep : int
        Number of sweeps done.
    """

    states: list[FloatArray]
    targets: FloatArray
    history: BCDHistory
    sweep: int = 0


class BCDSolver(GuardedBlocks):
    r"""Block-coordinate descent on the lifted training problem.

    Parameters
    ----------
    network : LiftedNetwork
        The network to train (weights are updated in place).
    max_iter : int, default=20
        Maximum number of sweeps.
    tol : float, default=1e-4
        Stop when the relative objective decrease of a sweep is below ``tol``.
    time_limit : float, optional
        Wall-time budget in seconds (checked after each sweep).
    backend : {"auto", "numpy", "cvxpy"}, default="auto"
        Fast NumPy kernels, compiled CVXPY problems, or the fast path wherever one exists.
    batch_size : int, default=16
        Rows per compiled state/output problem (CVXPY path).
    chunk_size : int, default=8192
        Rows per chunk in the fast state step (bounds memory).
    state_tol : float, default=1e-8
        KKT tolerance of the fast state step.
    weight_tol : float, default=1e-6
        Relative gradient tolerance of iterative weight steps (``relu_fenchel``, softmax).
    weight_max_iter : int or "auto", default="auto"
        Iteration cap of iterative weight steps (``relu_fenchel``, softmax), warm started every
        sweep: a few iterations per sweep decrease the objective (the block stays monotone) at a
        fraction of the cost of an exact solve. ``"auto"`` (:meth:`weight_iterations`): 3
        below ``defaults.WEIGHT_ITER_ROWS`` (20,000) rows of training data, 1 from there, where
        the products over the data dominate a sweep and one iteration per sweep trains as well
        per second (``docs/design.md``); a softmax head's step keeps 3. Measured on MNIST-10k
        (784-300-10, 6,400 rows, validation accuracy after 10 sweeps): 0.934 with 2 iterations,
        0.936 with 3, 0.935 with 5 and 0.934 with 15 (for 2.3x the time of 5); 3 iterations and
        15 sweeps reach 0.941.
    accuracy : {"default", "tight"}, default="default"
        Solver tolerances of the CVXPY path.
    solvers : sequence of str, optional
        Solver order of the CVXPY path.
    track_blocks : bool, default=False
        Evaluate the objective after every block (costs one forward pass per block).
    validation : tuple of array_like, optional
        ``(X_val, Y_val)`` scored after every sweep with ``metric``.
    metric : callable, optional
        ``metric(network, X_val, Y_val) -> float``; default accuracy for classification heads
        (``Y_val`` one-hot or integer labels), :math:`R^2` for regression.
    callback : callable, optional
        ``callback(sweep, result_so_far) -> bool``; returning ``True`` stops training.
    verbose : bool, default=False
        Show a progress bar with the objective.
    blas_threads : int, "auto" or None, default="auto"
        BLAS threads during training (threadpoolctl, :func:`cvx_lifted.threads.training_threads`).
        ``"auto"`` runs every BLAS call on one thread except the large products over the data
        that the kernels send through :func:`cvx_lifted.threads.matmul`: those are cut into as
        many fixed pieces as this process has cores (at most the BLAS library's own thread
        count), which a :class:`~cvx_lifted.threads.ThreadChooser` computes on one worker thread
        or on that many, per kind of product, from their measured rates (running every eighth
        product with the other count, and taking more workers only when measured at least 1.25x
        faster; the results do not depend on the choice); the chunks of rows of the state step
        run on one or several Python threads the same way. No size threshold decides: on a busy
        2-core machine multithreaded BLAS was 5-20x slower on small and medium products, on a
        quiet one it halves a large product. An integer: that many threads for everything, no
        measurements. ``None`` leaves the setting alone.
    """

    #: Where the weight steps' rows live (:mod:`cvx_lifted.distributed` puts them on a cluster).
    row_ops: kernels.RowOps = kernels.MEMORY

    def __init__(
        self,
        network: LiftedNetwork,
        *,
        max_iter: int = 20,
        tol: float = 1e-4,
        time_limit: float | None = None,
        backend: Backend = "auto",
        batch_size: int = 16,
        chunk_size: int = 8192,
        state_tol: float = 1e-8,
        weight_tol: float = 1e-6,
        weight_max_iter: int | Literal["auto"] = "auto",
        accuracy: Accuracy = "default",
        solvers: Any = None,
        track_blocks: bool = False,
        validation: tuple[ArrayLike, ArrayLike] | None = None,
        metric: Callable[[LiftedNetwork, FloatArray, FloatArray], float] | None = None,
        callback: Callable[[int, BCDResult], bool | None] | None = None,
        verbose: bool = False,
        blas_threads: int | str | None = "auto",
    ) -> None:
        check_choice(backend, "backend", ("auto", "numpy", "cvxpy"))
        self.backend = backend
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.chunk_size = check_positive_int(chunk_size, "chunk_size")
        self.weight_max_iter: int | Literal["auto"] = (
            "auto"
            if isinstance(weight_max_iter, str) and weight_max_iter == "auto"
            else _check_weight_max_iter(weight_max_iter)
        )
        self._rows = 0  # of the data being fitted (set by init)
        self.tol = check_non_negative_float(tol, "tol")
        self.state_tol = check_non_negative_float(state_tol, "state_tol")
        self.weight_tol = check_non_negative_float(weight_tol, "weight_tol")
        self.time_limit = (
            None if time_limit is None else check_positive_float(time_limit, "time_limit")
        )
        self.blas_threads = check_thread_setting(blas_threads, "blas_threads")
        self.network = network
        self.accuracy: Accuracy = accuracy
        self.solvers = solvers
        self.track_blocks = bool(track_blocks)
        self.validation = validation
        self.metric = metric
        self.callback = callback
        self.verbose = bool(verbose)
        self._problems: dict[tuple[Any, ...], CompiledProblem] = {}
        self._ridge0: kernels.Ridge | None = None
        self._sweep = 0
        self._wversion: dict[int, int] = {}
        self._retrying = False
        self._val: tuple[FloatArray, FloatArray] | None = None
        self._argmin_out: CompiledArgmin | None = None
        self.paths = self._choose_paths()

    # ------------------------------------------------------------------ path choice
    def _fast_paths(self) -> dict[str, bool]:
        """Which blocks have a fast path (see :mod:`cvx_lifted.paths`)."""
        net = self.network
        fast: dict[str, bool] = {}
        for layer in range(net.n_layers):
            found = paths.WEIGHT.find(net.divergence_of(layer))
            # the fast weight steps are ridge-type: they need the l2 penalty with rho > 0
            fast[f"W{layer}"] = (
                found is not None and net.penalty == "l2" and bool(net.rho[layer] > 0)
            )
        for layer in range(1, net.n_hidden + 1):
            fast[f"X{layer}"] = (
                paths.STATE.find(net.activations[layer - 1]) is not None
                and paths.COUPLING.find(net.divergence_of(layer)) is not None
            )
        if net.head.has_state:
            fast["output"] = paths.OUTPUT.find(net.head) is not None
        return fast

    def _choose_paths(self) -> dict[str, str]:
        fast = self._fast_paths()
        if self.backend == "numpy":
            paths.require_fast(self.network, [b for b, ok in fast.items() if not ok])
        if self.backend == "cvxpy":
            return dict.fromkeys(fast, "cvxpy")
        return {b: ("numpy" if ok else "cvxpy") for b, ok in fast.items()}

    # ------------------------------------------------------------------ helpers
    def _problem(self, key: tuple[Any, ...], build: Callable[[], CompiledProblem]) -> Any:
        if key not in self._problems:
            self._problems[key] = build()
        return self._problems[key]

    @staticmethod
    def _finite(arr: FloatArray, block: str) -> FloatArray:
        if not np.all(np.isfinite(arr)):
            raise SolverFailedError(
                f"the {block} step produced NaN or infinity; the previous iterate is kept. "
                "Try a larger rho, a smaller lam ratio between layers, or backend='cvxpy'."
            )
        return arr

    # ------------------------------------------------------------------ weight step
    def _weight_step(self, layer: int, Xs: list[FloatArray], Y: FloatArray) -> dict[str, float]:
        net = self.network
        Xin = Xs[layer]
        act = net.divergence_of(layer)
        target = Y if act is None else Xs[layer + 1]
        lam, rho = float(net.lam[layer]), float(net.rho[layer])
        block = f"W{layer}"
        info: dict[str, float] = {}
        if self.paths[block] == "numpy":
            found = paths.WEIGHT.find(act)
            assert found is not None
            result = found[1](
                act, Xin, target, net.weights[layer], net.biases[layer], lam, rho,
                self._options(layer, Xin),
            )  # fmt: skip
            (W, b), info = result.value, result.info
        else:
            W, b = self._compiled_weight_step(layer, act, Xin, target, lam, rho)
            if act is None:
                # softmax is invariant to a common shift of the (unpenalised) biases: pick the
                # minimiser with zero-mean biases, as the fast path does
                b = np.asarray(b) - np.mean(b)
        net.weights[layer] = self._finite(np.asarray(W, dtype=net.dtype), f"{block} weight")
        net.biases[layer] = self._finite(np.asarray(b, dtype=net.dtype), f"{block} bias")
        self._wversion[layer] = self._wversion.get(layer, 0) + 1
        return info

    def _compiled_weight_step(
        self,
        layer: int,
        act: Any,
        Xin: FloatArray,
        target: FloatArray,
        lam: float,
        rho: float,
    ) -> tuple[FloatArray, FloatArray]:
        net = self.network
        n_out = target.shape[1]
        penalty = net.penalty if isinstance(net.penalty, str) else net.penalty_expr
        what = f"weight step of layer {layer}"
        accuracy, solvers = self._solver_options(act)
        # the input of layer 0 never changes during a fit: its problems are compiled once
        stamp = id(Xin) if layer == 0 else self._sweep
        if separable_weight_step(act, net.penalty):
            prob = self._problem(
                ("W", layer, stamp, self._retrying),
                lambda: column_weight_problem(
                    act, Xin, lam, rho, penalty=penalty, accuracy=accuracy, solvers=solvers,
                    what=what,
                ),
            )  # fmt: skip
            if hasattr(prob, "solve_columns"):  # a block assembled from a one-entry template
                W, b = prob.solve_columns(target)
            else:
                W = np.empty((n_out, Xin.shape[1]))
                b = np.empty(n_out)
                for j in range(n_out):
                    sol = prob.solve(t=target[:, j : j + 1])
                    W[j], b[j] = sol["w"][:, 0], float(sol["b"])
        else:
            prob = self._problem(
                ("W", layer, stamp, self._retrying),
                lambda: whole_weight_problem(
                    act, Xin, n_out, lam, rho, penalty=penalty, accuracy=accuracy,
                    solvers=solvers, what=what,
                ),
            )  # fmt: skip
            sol = prob.solve(T=target)
            W, b = sol["W"], sol["b"]
        if act is not None:
            # a domain that depends on u (leaky_relu: z >= alpha u) must hold exactly for the
            # next state step to be feasible: shift the (unpenalised) biases by the violation
            b = b - act.bias_shift(Xin @ W.T + b, target)
        self._forget(("W", layer), keep=stamp)
        return W, b

    def _solver_options(self, *acts: Any) -> tuple[Accuracy, Any]:
        """Accuracy and solver order for a compiled block whose divergences are ``acts``.

        The user's order when given; tight tolerances with interior point first on a retry; and
        interior point first when a divergence is piecewise linear (``cone == "lp"``: ``sign``,
        ``relu_l1``), whose degenerate QPs OSQP solves slowly and, at its default tolerance, to a
        point that can raise the objective (measured on digits, 64-100-10: ``sign`` 71 s per
        sweep with OSQP first, 14 s with Clarabel first).
        """
        if self._retrying:
            return "tight", list(_RETRY_SOLVERS)
        if self.solvers is None and any(getattr(a, "cone", None) == "lp" for a in acts):
            return self.accuracy, list(_RETRY_SOLVERS)
        return self.accuracy, self.solvers

    def _forget(self, prefix: tuple[Any, ...], keep: Any) -> None:
        """Drop compiled problems of an earlier sweep (their constants are stale)."""
        n = len(prefix)
        for key in [k for k in self._problems if k[:n] == prefix and k[n] != keep]:
            del self._problems[key]

    def weight_iterations(self, rows: int, layer: int | None = None) -> int:
        """Return the iteration cap of the iterative weight steps for ``rows`` rows of data.

        ``weight_max_iter`` when it is a number. For ``"auto"``,
        :func:`cvx_lifted.defaults.auto_weight_iterations` of ``rows`` (and of whether ``layer``
        is a softmax head, whose step keeps 3).

        Parameters
        ----------
        rows : int
            Rows of the training data.
        layer : int, optional
            The layer whose weight step asks.

        Returns
        -------
        int
        """
        if self.weight_max_iter != "auto":
            return int(self.weight_max_iter)
        softmax = layer is not None and self.network.divergence_of(layer) is None
        return defaults.auto_weight_iterations(rows, softmax_head=softmax)

    def _options(self, layer: int, Xin: FloatArray) -> paths.StepOptions:
        def ridge(alpha: float) -> kernels.Ridge:
            if layer == 0:
                # the input never changes during a fit: factor its Gram once
                if self._ridge0 is None or self._ridge0.alpha != alpha:
                    self._ridge0 = kernels.Ridge(Xin, alpha, ops=self.row_ops)
                return self._ridge0
            return kernels.Ridge(Xin, alpha, ops=self.row_ops)

        return paths.StepOptions(
            weight_tol=self.weight_tol,
            weight_max_iter=self.weight_iterations(self._rows, layer),
            state_tol=self.state_tol,
            ridge=ridge,
        )

    def _row_options(self) -> paths.StepOptions:
        """Return the options of the row-separable steps (which use no ridge)."""
        return paths.StepOptions(
            self.weight_tol, self.weight_iterations(self._rows), self.state_tol, paths.no_ridge
        )

    # ------------------------------------------------------------------ rows
    def _preactivation(self, layer: int, X: Any) -> Any:
        r"""Return :math:`XW^\top + \mathbf 1b^\top` of ``layer`` (in the rows' layout)."""
        return self.network.preactivation(layer, X)

    def _map_rows(
        self, step: Callable[..., paths.StepResult], *arrays: Any, **consts: Any
    ) -> tuple[Any, dict[str, float]]:
        """Run a row-separable fast step over chunks of :attr:`chunk_size` rows.

        ``step(*row_chunks, **consts)`` returns a summarised :class:`~cvx_lifted.paths.StepResult`
        whose value has the shape of the first array's chunk; returns the values stacked (in the
        network's dtype) and the merged summary.
        """
        return paths.map_rows(
            step, *arrays, chunk_rows=self.chunk_size, dtype=self.network.dtype, **consts
        )

    def _objective(self, Xs: list[Any], Y: Any) -> dict[str, float]:
        """Return the terms of the lifted objective at the states ``Xs`` (see ``network``).

        The first layer's image is the one its fast weight step keeps up to date (no product):
        the image the blocks themselves used, in float32 when the products over a large input
        are (``kernels.Ridge``'s mixed precision); the terms are summed in float64.
        """
        net = self.network
        images: dict[int, Any] = {}
        r0 = self._ridge0
        if r0 is not None and r0.X is Xs[0]:
            images[0] = r0.image(net.weights[0], net.biases[0])
        terms: dict[str, float] = net.objective_terms(Xs, Y, images)
        return terms

    # ------------------------------------------------------------------ state step
    def _state_step(
        self, layer: int, Xs: list[FloatArray], Y: FloatArray, *, lifted_rule: bool = False
    ) -> dict[str, float]:
        net = self.network
        prev = net.activations[layer - 1]
        following = net.divergence_of(layer)
        softmax = following is None
        r0 = self._ridge0 if layer == 1 and self.paths[f"X{layer}"] == "numpy" else None
        if r0 is not None and r0.X is Xs[0]:  # layer 0's fast weight step keeps its image
            U = r0.image(net.weights[0], net.biases[0])
        else:
            U = self._preactivation(layer - 1, Xs[layer - 1])
        W, b = net.weights[layer], net.biases[layer]
        if softmax:
            T = Y
            lam_next = 1.0
        else:
            T = Xs[layer + 1]
            lam_next = float(net.lam[layer])
        lam_prev = float(net.lam[layer - 1])
        block = f"X{layer}"
        if softmax and lifted_rule:
            # the output is free in the lifted rule, so no loss term: the state is the argmin
            Xs[layer] = prev.act(U).astype(net.dtype, copy=False)
            return {}
        Z = Xs[layer]
        info: dict[str, float] = {}
        if self.paths[block] == "numpy":
            state = paths.STATE.find(prev)
            coupling = paths.COUPLING.find(following)
            assert state is not None and coupling is not None
            out, info = self._map_rows(
                paths.state_rows, U, Z, T, solve=state[1], couple=coupling[1], act=prev,
                following=following, W=W, b=b, lam_prev=lam_prev, lam_next=lam_next,
                options=self._row_options(),
            )  # fmt: skip
        else:
            accuracy, solvers = self._solver_options(prev, following)
            stamp = self._wversion.get(layer, 0)
            prob = self._problem(
                ("X", layer, stamp, lam_next, self._retrying),
                lambda: state_problem(
                    prev,
                    following,
                    W,
                    b,
                    self.batch_size,
                    lam_prev,
                    lam_next,
                    accuracy=accuracy,
                    solvers=solvers,
                    what=f"state step of layer {layer}",
                ),
            )
            self._forget(("X", layer), keep=stamp)
            if hasattr(prob, "solve_rows"):  # a block assembled from one-row templates
                out = np.asarray(prob.solve_rows(U, T), dtype=Z.dtype)
            else:
                out = np.empty_like(Z)
                for rows, pad in row_batches(Z.shape[0], self.batch_size):
                    sol = prob.solve(U=pad(U[rows]), T=pad(T[rows]))
                    out[rows] = sol["Z"][: rows.stop - rows.start]
            out = prev.repair(U, out)
        Xs[layer] = self._finite(out.astype(net.dtype, copy=False), block)
        return info

    # ------------------------------------------------------------------ output step
    def _output_step(self, Xs: list[FloatArray], Y: FloatArray) -> dict[str, float]:
        net = self.network
        head = net.head
        act = head.activation
        assert act is not None
        L = net.n_hidden
        U = self._preactivation(L, Xs[L])
        lam = float(net.lam[L])
        if self.paths["output"] == "numpy":
            found = paths.OUTPUT.find(head)
            assert found is not None
            Z, _ = self._map_rows(paths.output_rows, U, Y, solve=found[1], head=head, lam=lam)
        else:
            onehot = bool(np.all((Y == 0) | (Y == 1)) and np.all(Y.sum(axis=1) == 1))
            accuracy, solvers = self._solver_options(act)
            prob = self._problem(
                ("output", onehot, self._retrying),
                lambda: output_step_problem(
                    head,
                    self.batch_size,
                    U.shape[1],
                    lam,
                    onehot=onehot,
                    accuracy=accuracy,
                    solvers=solvers,
                    what="output step",
                ),
            )
            Z = np.empty_like(U)
            for rows, pad in row_batches(U.shape[0], self.batch_size):
                Z[rows] = prob.solve(U=pad(U[rows]), Y=pad(Y[rows]))["Z"][: rows.stop - rows.start]
            Z = act.repair(U, Z)
        Xs[L + 1] = self._finite(Z.astype(net.dtype, copy=False), "output")
        return {}

    # ------------------------------------------------------------------ driver
    def _validate(self, X: ArrayLike, Y: ArrayLike) -> tuple[FloatArray, FloatArray]:
        return check_training_data(self.network, X, Y)

    def initial_states(self, X0: FloatArray) -> list[FloatArray]:
        """Return the states of a forward pass from the current weights: ``[X_0, ..., ]``."""
        net = self.network
        Xs = [X0]
        for layer, act in enumerate(net.activations):
            Xs.append(act.act(self._preactivation(layer, Xs[-1])).astype(net.dtype, copy=False))
        if net.head.has_state:
            assert net.head.activation is not None
            U = self._preactivation(net.n_hidden, Xs[-1])
            Xs.append(net.head.activation.act(U).astype(net.dtype, copy=False))
        return Xs

    def init(
        self,
        X: ArrayLike,
        Y: ArrayLike,
        *,
        random_state: int | np.random.Generator | None = None,
        warm_start: bool = False,
    ) -> BCDState:
        """Validate the data, initialise the weights and return the starting iterate.

        The states are a forward pass from the weights (Xavier initialisation, or the current
        weights with ``warm_start`` on a fitted network), with the output state set by an exact
        output step (a forward pass can put zero probability on a label).

        Parameters
        ----------
        X : array_like, shape (m, n_inputs)
            Inputs.
        Y : array_like, shape (m, n_outputs)
            Targets; one-hot (or probability) rows for classification heads.
        random_state : int or numpy.random.Generator, optional
            Seed of the Xavier initialisation (ignored with ``warm_start`` on a fitted network).
        warm_start : bool, default=False
            Start from the current weights instead of a fresh initialisation.

        Returns
        -------
        BCDState
        """
        X0, Ymat = self._validate(X, Y)
        net = self.network
        self._rows = int(X0.shape[0])
        if not (warm_start and net.is_fitted):
            net.initialize(random_state)
        self._ridge0 = None
        self._val = check_validation_data(self.network, self.validation)
        Xs = self.initial_states(X0)
        if net.head.has_state:
            self._output_step(Xs, Ymat)
        state = BCDState(Xs, Ymat, BCDHistory(paths=dict(self.paths)))
        self._record(state.history, Xs, Ymat, {}, {}, self._val)
        return state

    def update(self, state: BCDState) -> BCDState:
        """Run one sweep (every weight step, the state steps in order, the output step).

        The sweep's objective, terms, timings and solver residuals are appended to
        ``state.history``; ``state`` is updated in place and returned.

        Parameters
        ----------
        state : BCDState
            From :meth:`init` or a previous :meth:`update`.

        Returns
        -------
        BCDState
        """
        net = self.network
        Xs, Y, history = state.states, state.targets, state.history
        state.sweep += 1
        sweep = self._sweep = state.sweep
        seconds: dict[str, float] = {}
        residuals: dict[str, float] = {}
        t_sweep = time.perf_counter()
        steps: list[tuple[str, Callable[[], dict[str, float]]]] = [
            (f"W{layer}", lambda layer=layer: self._weight_step(layer, Xs, Y))  # type: ignore[misc]
            for layer in range(net.n_layers)
        ]
        steps += [
            (f"X{layer}", lambda layer=layer: self._state_step(layer, Xs, Y))  # type: ignore[misc]
            for layer in range(1, net.n_hidden + 1)
        ]
        if net.head.has_state:
            steps.append(("output", lambda: self._output_step(Xs, Y)))
        for block, step in steps:
            self._timed(block, seconds, residuals, history, sweep, Xs, Y, step)
        seconds["sweep"] = time.perf_counter() - t_sweep
        self._record(history, Xs, Y, seconds, residuals, self._val)
        return state

    def run(
        self,
        X: ArrayLike,
        Y: ArrayLike,
        *,
        random_state: int | np.random.Generator | None = None,
        warm_start: bool = False,
    ) -> BCDResult:
        """Train the network on ``(X, Y)``: :meth:`init`, then :meth:`update` until a stop.

        Training stops after ``max_iter`` sweeps, when a sweep decreases the objective by less
        than ``tol`` (relative; a sweep that raises it is recorded in ``history.increases`` and
        never counts as convergence), when ``time_limit`` is spent or when ``callback`` says so.

        Parameters
        ----------
        X : array_like, shape (m, n_inputs)
            Inputs.
        Y : array_like, shape (m, n_outputs)
            Targets; one-hot (or probability) rows for classification heads.
        random_state : int or numpy.random.Generator, optional
            Seed of the Xavier initialisation (ignored with ``warm_start`` on a fitted network).
        warm_start : bool, default=False
            Start from the current weights instead of a fresh initialisation.

        Returns
        -------
        BCDResult
        """
        n_rows = np.shape(X)[0] if np.ndim(X) else 0
        paths.warn_slow_weight_steps(self.network, self.paths, self.backend)
        with blas_limits(self.blas_threads, n_rows, self.network.layer_sizes):
            state = self.init(X, Y, random_state=random_state, warm_start=warm_start)
            result = self._loop(state)
        paths.warn_unconverged_states(result.history)
        return result

    def lifted_update(self, state: BCDState) -> BCDState:
        """One cycle of the lifted prediction rule (paper eq. 12) on ``state``'s rows.

        The weights are fixed and the output is free: every hidden state takes an exact state
        step in turn, without a loss term, and the output state becomes the argmin of the output
        activation. Used by :func:`cvx_lifted.predict.lifted_predict`.

        Parameters
        ----------
        state : BCDState
            States of the rows to predict (``targets`` are ignored).

        Returns
        -------
        BCDState
        """
        net = self.network
        Xs, L = state.states, net.n_hidden
        for layer in range(1, L + 1):
            self._state_step(layer, Xs, state.targets, lifted_rule=True)
        if net.head.has_state:
            act = net.head.activation
            assert act is not None
            U = net.preactivation(L, Xs[L])
            Z: FloatArray
            if self.paths.get("output") == "cvxpy":
                if self._argmin_out is None:
                    self._argmin_out = CompiledArgmin(act, U.shape[1], self.batch_size)
                Z = self._argmin_out(U)
            else:
                Z = act.act(U)
            Xs[L + 1] = Z.astype(net.dtype, copy=False)
        state.sweep += 1
        return state

    def _loop(self, state: BCDState) -> BCDResult:
        net = self.network
        history = state.history
        t_start = time.perf_counter()
        stop_reason, converged = "max_iter", False
        bar = _progress(self.max_iter, self.verbose)
        try:
            while state.sweep < self.max_iter:
                self.update(state)
                if bar is not None:
                    bar.update(1)
                    post = {"objective": f"{history.objective[-1]:.6g}"}
                    if history.validation:
                        post["val"] = f"{history.validation[-1]:.4f}"
                    bar.set_postfix(post)
                prev, cur = history.objective[-2], history.objective[-1]
                scale = max(abs(prev), 1e-12)
                if cur - prev > BLOCK_RTOL * scale:
                    # an increase is recorded, and never taken for convergence
                    history.increases.append(state.sweep)
                elif prev - cur <= self.tol * scale:
                    stop_reason, converged = "tol", True
                    break
                if self.time_limit is not None and time.perf_counter() - t_start > self.time_limit:
                    stop_reason = "time_limit"
                    break
                if self.callback is not None:
                    partial = BCDResult(
                        net, state.states[1:], history, state.sweep, False, "running"
                    )
                    stop = self.callback(state.sweep, partial)
                    # the next sweep replaces the states: holding them here would keep a
                    # second copy of every state alive through it
                    del partial
                    if stop:
                        stop_reason = "callback"
                        break
        finally:
            if bar is not None:
                bar.close()
        net.history = history
        return BCDResult(net, state.states[1:], history, state.sweep, converged, stop_reason)

    def _timed(
        self,
        block: str,
        seconds: dict[str, float],
        residuals: dict[str, float],
        history: BCDHistory,
        sweep: int,
        Xs: list[FloatArray],
        Y: FloatArray,
        step: Callable[[], dict[str, float]],
    ) -> None:
        t0 = time.perf_counter()
        try:
            if self.paths.get(block) == "cvxpy":
                info = self._guarded(block, sweep, history, Xs, Y, step)
            else:
                info = step()
        except SolverFailedError as exc:
            raise SolverFailedError(f"sweep {sweep}, block {block}: {exc}", exc.attempts) from exc
        seconds[block] = time.perf_counter() - t0
        for key, value in info.items():
            residuals[f"{block}.{key}"] = value
        if self.track_blocks:
            history.blocks.append((sweep, block, self._objective(Xs, Y)["total"]))

    def _record(
        self,
        history: BCDHistory,
        Xs: list[FloatArray],
        Y: FloatArray,
        seconds: dict[str, float],
        residuals: dict[str, float],
        val: tuple[FloatArray, FloatArray] | None,
    ) -> None:
        t0 = time.perf_counter()
        terms = self._objective(Xs, Y)
        if "sweep" in seconds:  # the sweep's time includes its objective
            seconds["objective"] = time.perf_counter() - t0
            seconds["sweep"] += seconds["objective"]
        if not np.isfinite(terms["total"]):
            raise SolverFailedError(f"the objective became {terms['total']} ({terms}).")
        history.terms.append(terms)
        history.objective.append(terms["total"])
        history.seconds.append(seconds)
        history.residuals.append(residuals)
        if val is not None:
            metric = self.metric or default_metric
            history.validation.append(float(metric(self.network, *val)))


def check_training_data(
    network: LiftedNetwork, X: ArrayLike, Y: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """Return ``X`` and ``Y`` as arrays of the network's dtype, or raise naming what is wrong.

    ``Y`` needs one row per row of ``X`` and one column per output, and rows the head's loss
    is defined for (:meth:`~cvx_lifted.losses.OutputHead.check_targets`).
    """
    X0 = check_array(X, "X", n_features=network.layer_sizes[0], dtype=network.dtype)
    Ymat = check_array(Y, "Y", dtype=network.dtype)
    if Ymat.shape != (X0.shape[0], network.layer_sizes[-1]):
        raise ValueError(
            f"Y must have shape ({X0.shape[0]}, {network.layer_sizes[-1]}) (one row per sample, "
            f"one column per output), got {Ymat.shape}."
        )
    network.head.check_targets(Ymat)
    return X0, Ymat


def check_validation_data(
    network: LiftedNetwork, validation: tuple[ArrayLike, ArrayLike] | None
) -> tuple[FloatArray, FloatArray] | None:
    """Return ``(X_val, Y_val)`` checked against the network (``X_val`` in its dtype), or None."""
    if validation is None:
        return None
    Xv, Yv = validation
    Xv = check_array(Xv, "X_val", n_features=network.layer_sizes[0], dtype=network.dtype)
    return Xv, np.asarray(Yv)


def blas_limits(setting: int | str | None, n_rows: int, layer_sizes: Any) -> Any:
    """Return a context manager that sets the BLAS threads of training or prediction.

    ``"auto"``: one thread, except for the large products over the data, whose thread count is
    measured (:func:`cvx_lifted.threads.training_threads`); an integer: that many threads; ``None``:
    unchanged. ``n_rows`` and ``layer_sizes`` are not used (no size threshold).
    """
    return threads.training_threads(setting)


def default_metric(network: LiftedNetwork, X: FloatArray, Y: ArrayLike) -> float:
    """Score a network: accuracy for classification, :math:`R^2` for regression (feed-forward).

    Accuracy is used for classification heads, and for any head when ``Y`` holds integer labels
    for a multi-output network (a squared-loss classifier trained on one-hot rows).

    Parameters
    ----------
    network : LiftedNetwork
    X : numpy.ndarray
        Inputs.
    Y : array_like
        One-hot rows or integer labels (classification), targets (regression).

    Returns
    -------
    float
    """
    pred = network.predict(X)
    Y = np.asarray(Y)
    labels_given = Y.ndim == 1 and pred.shape[1] > 1 and Y.dtype.kind in "iub"
    if network.head.classification or labels_given:
        labels = Y.argmax(axis=1) if Y.ndim == 2 else Y
        return float(np.mean(pred.argmax(axis=1) == labels))
    Y = Y.reshape(pred.shape)
    ss_res = float(np.sum((Y - pred) ** 2))
    ss_tot = float(np.sum((Y - Y.mean(axis=0)) ** 2))
    return 1.0 - ss_res / ss_tot if ss_tot > 0 else 0.0


def _progress(total: int, verbose: bool) -> Any:
    if not verbose:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="BCD sweeps", unit="sweep", leave=True)
