# SPDX-License-Identifier: Apache-2.0
r"""Mini-batch block-coordinate descent: states per batch, proximal weight steps across batches.

In the manner of Fenchel Lifted Networks (Gu, Askari, El Ghaoui, AISTATS 2020), the rows are
cut into batches at random once, and one *epoch* visits the batches in a new random order; for
each batch :math:`B` of rows it

0. moves the weights to the **look-ahead point** :math:`W_l^- = W_l + \beta(W_l - W_l^{prev})`
   (Nesterov-type momentum across batches; :math:`W_l^{prev}`: the weights before the previous
   batch, :math:`\beta` = ``momentum``; the biases too);
1. sets the batch's states by a forward pass from :math:`W^-` that ends with an exact output
   step, then runs the exact state steps of the hidden layers with the weights fixed, from the
   last hidden layer down to the first, as back-propagation does (the row-separable fast paths
   of :mod:`cvx_lifted.paths`, the same kernels as :class:`~cvx_lifted.bcd.BCDSolver`);
2. takes a **proximal weight step** of every layer on the batch, from and around :math:`W_l^-`:

   .. math::

       \min_{W_l, b_l}\; \frac{\lambda_{l+1}}{|B|} D_l(X_{l,B} W_l^\top + \mathbf 1 b_l^\top,
       X_{l+1,B}) + \frac{\rho_l}2\|W_l\|^2 + \frac{\mu}2\|W_l - W_l^-\|^2 ,

   so that one batch cannot throw the weights away (the biases are not held back).

The states of a batch are discarded after its weight steps: memory is that of one batch, and
the data can arrive in pieces (:meth:`MinibatchBCDSolver.update` makes one pass over whatever
rows it is given; the estimators' ``partial_fit`` is built on it).

**The weight step** is majorisation-minimisation with the divergence's own curvature bound: the
divergence as a function of the pre-activation, :math:`g(U)`, is the state step's coupling
(:data:`cvx_lifted.paths.COUPLING`) and has an :math:`L`-Lipschitz gradient
(:attr:`~cvx_lifted.kernels.L2Coupling.lipschitz`: 1 for the ReLU family and the squared
divergence, 1/2 for the softmax head, :math:`\sup\phi'` for a Fenchel--Young pair), so
:math:`g(U) \le g(U_k) + \langle\nabla g(U_k), U - U_k\rangle + \tfrac L2\|U - U_k\|^2`. The
right-hand side is a ridge regression with targets :math:`U_k - \nabla g(U_k)/L`, and the prox
term only adds :math:`\mu W_l^{-}` to its moments: one :class:`~cvx_lifted.kernels.Ridge`
factor of the batch input (:class:`~cvx_lifted.kernels.KernelRidge`, through the
:math:`|B| \times |B|` kernel matrix, when the batch has fewer rows than the layer has inputs)
and one solve per iteration. The batches being the same rows in every epoch, the kernel matrix
of layer 0's input (the data) and the centred copy of the batch it is made from
(:class:`~cvx_lifted.kernels.CentredRows`) are formed once per batch and kept for the later
epochs of :meth:`~MinibatchBCDSolver.run`, which then read the batch only through them (the
forward image too); that is :math:`|B|` entries per row of a batch that uses it, plus a copy of
the data in the product dtype. The SYRK saved was an eighth of an epoch on Fashion-MNIST, with
the same test accuracy as batches drawn anew every epoch, and the gather, cast and centring of
the rows another 8 %. Products over a batch of 65,536 entries or more run in float32,
the factors and solves in float64 (the kernel system's in float32 when it is well
conditioned). For a quadratic divergence (ReLU, the
sparsemax and squared heads) the majoriser is the function, so one solve is the exact step.
From the second epoch of :meth:`~cvx_lifted.MinibatchBCDSolver.run`, once a batch's curvature
bound from the top eigenpairs of its inputs (:class:`~cvx_lifted.kernels.SpectralBound`, made
once and kept) is tight enough for the step, the first layer's step minimises that looser
majoriser instead: no factor or solves, two thin products (``spectral_rank``; on
Fashion-MNIST's pixels later epochs 13 % shorter at the same accuracy, the second one about
1.4 s longer).

**The prox weight** of a batch is :math:`\mu` = ``prox * prox_growth**epoch`` (at most
``prox_max``) times the number of batches of the epoch: the weights then move about as far per
epoch whatever the batch size and the number of rows (measured with momentum 0.9, the best
per-batch :math:`\mu` was about 0.1 on MNIST-10k, 16 batches of 500, and 0.75-1 on
Fashion-MNIST, 120 batches). Its growth damps the noise of the batches as training goes on.

**Guarantees.** For every batch, each block (state, output, weight) does not increase the
*batch's proximal objective*

.. math::

    J_B = \frac1{|B|}\Bigl[\mathrm{Loss}(Y_B, X_{L+1,B}) + \sum_l \lambda_{l+1}
    D_l(X_{l,B} W_l^\top + \mathbf 1 b_l^\top, X_{l+1,B})\Bigr] + \sum_l \frac{\rho_l}2\|W_l\|^2
    + \frac\mu2\sum_l \|W_l - W_l^-\|^2

from its value at the look-ahead point and its forward states (the state and output steps are
minimisers, to ``state_tol`` and never worse than their start, the weight steps
majorisation-minimisation iterations, up to rounding).
Nothing is claimed for the full objective: it is recorded after every epoch (at the states of
a forward pass and an exact output step, on at most ``objective_rows`` rows) but may rise, as
for any stochastic method.

Measured (``benchmarks/bench_accuracy.py``, 784-300-10, ``relu_fenchel``, ``simplex_xent``, the
estimators' ``lam="auto"`` (3 on the hidden layer) and ``rho="auto"`` (1e-3 up to 15,000 rows,
then shrinking like 1/rows: 2.5e-4 on 60,000), the defaults: batch 500, prox 0.006, momentum
0.9, one MM iteration; one BLAS thread): on MNIST-10k (8,000 rows, pixels in [0, 1]) test
accuracy 0.924, 0.940, 0.950 after epochs 1-3 and 0.957-0.961 after 5-20, where full-batch BCD
ends at 0.942 after 20 sweeps and float32 Adam at 0.956. On Fashion-MNIST (60,000 rows)
0.865, 0.868, 0.872 after epochs 1-3 and 0.884 at best on the raw pixels; on standardised
inputs 0.889 at best, where Adam reaches 0.890-0.891 (full-batch BCD: 0.853 and 0.837). An
epoch after the second on Fashion-MNIST takes 1.4-1.5x a float32 Adam epoch
(``benchmarks/bench_sweep.py``, one thread, two runs; 1.5-1.9x across runs with the exact
first-layer step).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cvx_lifted import defaults, kernels, paths
from cvx_lifted._validation import (
    caller_stacklevel,
    check_non_negative_float,
    check_non_negative_int,
    check_positive_float,
    check_positive_int,
    check_seed,
    check_thread_setting,
)
from cvx_lifted.bcd import (
    blas_limits,
    check_training_data,
    check_validation_data,
    default_metric,
)
from cvx_lifted.exceptions import SolverFailedError
from cvx_lifted.history import BCDHistory, BCDResult
from cvx_lifted.kernels.proximal import (
    FLOAT32_MIN_ENTRIES,
    batch_kernel,
    prox_penalty,
    prox_weight_step,
)
from cvx_lifted.kernels.spectral import SpectralBound

if TYPE_CHECKING:
    from cvx_lifted.network import LiftedNetwork

__all__ = [
    "MinibatchBCDSolver",
    "MinibatchState",
    "batch_kernel",
    "prox_weight_step",
    "unsupported_blocks",
]

FloatArray = NDArray[np.floating[Any]]


def unsupported_blocks(net: LiftedNetwork) -> list[str]:
    """Return the blocks of ``net`` that :class:`MinibatchBCDSolver` cannot train (``[]``: none).

    Mini-batch BCD needs a row-separable fast path (:mod:`cvx_lifted.paths`) for every state,
    output and weight block, and the ``"l2"`` weight penalty of its proximal weight step.

    Parameters
    ----------
    net : LiftedNetwork
        The network to train.

    Returns
    -------
    list of str
        The names of the blocks without a fast path (``"W0"``, ``"X1"``, ``"output"``, ...).
    """
    missing = []
    if net.penalty != "l2":
        missing.append(f"W* (penalty={net.penalty!r}, the proximal weight step needs 'l2')")
    for layer in range(net.n_layers):
        if paths.COUPLING.find(net.divergence_of(layer)) is None:
            missing.append(f"W{layer}")
    for layer in range(1, net.n_hidden + 1):
        prev, following = net.activations[layer - 1], net.divergence_of(layer)
        if paths.STATE.find(prev) is None or paths.COUPLING.find(following) is None:
            missing.append(f"X{layer}")
    if net.head.has_state and paths.OUTPUT.find(net.head) is None:
        missing.append("output")
    return missing


@dataclass
class MinibatchState:
    """Where mini-batch training is: the history, the epochs done and the shuffling generator.

    Attributes
    ----------
    history : BCDHistory
        Objective (on the rows of each epoch, after it), timings and validation, per epoch.
    rng : numpy.random.Generator
        Draws the batches (once) and the order in which every epoch visits them.
    epoch : int
        Epochs (passes over the rows given to :meth:`MinibatchBCDSolver.update`) done.
    states : list of numpy.ndarray
        The states of the last evaluation of the objective (forward pass and output step on the
        rows it was evaluated on).
    previous : list of numpy.ndarray
        The weights and biases before the last batch (the momentum's memory; empty at the start).
    batches : list of numpy.ndarray
        The rows of each batch: cut at random on the first epoch and kept for every later epoch
        over as many rows (cut anew for another number of rows).
    """

    history: BCDHistory
    rng: np.random.Generator
    epoch: int = 0
    states: list[FloatArray] = field(default_factory=list)
    previous: list[FloatArray] = field(default_factory=list)
    batches: list[NDArray[np.intp]] = field(default_factory=list)


@dataclass
class _Rows:
    """Validated training rows and what every epoch over them reuses."""

    X: FloatArray
    Y: FloatArray
    #: the rows the objective is evaluated on after every epoch
    X_objective: FloatArray
    Y_objective: FloatArray
    #: the solver's validation data, checked once (None: none)
    validation: tuple[FloatArray, Any] | None = None
    #: layer 0's input on each batch, centred, with its kernel matrix (batch_kernel), kept for
    #: every epoch; None for a batch with as many rows as inputs or more
    kernels: dict[int, kernels.CentredRows | None] = field(default_factory=dict)
    #: the spectral bounds of the kept batches made so far (None: too few rows): from the second
    #: pass over the rows, one batch's a pass (the probe) until one fits its step, from then on
    #: every batch's; ``spectral``: a bound has fitted
    bounds: dict[int, SpectralBound | None] = field(default_factory=dict)
    spectral: bool = False
    #: passes of run over these rows, and the last one that probed a batch
    passes: int = 0
    probed: int = -1


class MinibatchBCDSolver:
    r"""Mini-batch block-coordinate descent on the lifted training problem (a stochastic method).

    See the module documentation for the algorithm and its guarantees: per batch every block
    decreases the batch's proximal objective; the full objective is recorded after each epoch
    and is not monotone.

    Parameters
    ----------
    network : LiftedNetwork
        The network to train (weights are updated in place). Every block needs a row-separable
        fast path (:mod:`cvx_lifted.paths`) and the weight penalty must be ``"l2"``.
    batch_size : int, default=500
        Rows per batch (the last batch of an epoch may be smaller).
    max_iter : int, default=10
        Maximum number of epochs of :meth:`run`.
    tol : float, default=0.0
        Stop when an epoch decreases the full objective by less than ``tol`` (relative; an
        increase never counts as convergence). 0 runs ``max_iter`` epochs.
    prox : float, default=0.006
        Prox weight of the first epoch, per batch of the epoch: a batch's :math:`\mu` is
        :meth:`prox_at(epoch) <prox_at>` times the number of batches of the epoch (MNIST-10k,
        batch 500, momentum 0.9, after 10 epochs: 0.003, 0.006 and 0.012 all gave 0.953-0.957).
    prox_growth : float, default=1.3
        Factor by which the prox weight grows per epoch (``>= 1``; 1.0 gave 0.9535 after 10
        epochs on MNIST-10k, 1.3 0.957).
    prox_max : float, default=1.0
        Largest value of :meth:`prox_at`.
    momentum : float, default=0.9
        :math:`\beta \in [0, 1)` of the look-ahead point of every batch (0: none). On MNIST-10k
        after 1, 5 and 10 epochs: 0.924, 0.954, 0.957 with 0.9; 0.887, 0.934, 0.940 with 0.
    weight_iter : int, default=1
        MM iterations per weight step and batch (without momentum, 2 and 4 gave about the same
        accuracy per epoch on MNIST-10k, at 1.4 and 2x the time).
    state_iter : int, default=1
        Rounds of state and output steps per batch before its weight steps.
    state_tol : float, default=1e-5
        Tolerance of the state steps (on their scaled projected-gradient residual, relative to
        the gradient; :func:`cvx_lifted.kernels.boxqp.state_step`). Tighter than the noise of
        the batches needs: 1e-8 gave the same objective to six digits and the same accuracy on
        MNIST-10k and Fashion-MNIST, and a network of 300 and 100 hidden units took 1.5x as long
        (its first hidden layer's steps are iterative, ``docs/design.md``).
    spectral_rank : int, default=64
        Eigenpairs of a batch's inputs that :meth:`run`'s first-layer weight steps keep for a
        curvature bound (:class:`~cvx_lifted.kernels.SpectralBound`) from the second epoch,
        once a batch's bound is tight enough for the step (checked on one batch per epoch until
        it is); 0: always the exact step through the kernel matrix. On Fashion-MNIST's pixels
        the epochs after the second are about 13 % shorter, at the same accuracy.
    time_limit : float, optional
        Wall-time budget in seconds (checked after each epoch).
    objective_rows : int or None, default=8192
        The objective recorded after each epoch is that of a forward pass (and output step) on
        this many rows of the epoch's data, the same rows for the same number of rows; ``None``:
        all rows. On 60,000 Fashion-MNIST rows the whole evaluation took a third of an epoch.
    validation : tuple of array_like, optional
        ``(X_val, Y_val)`` scored after every epoch with ``metric``.
    metric : callable, optional
        ``metric(network, X_val, Y_val) -> float`` (default :func:`cvx_lifted.bcd.default_metric`).
    callback : callable, optional
        ``callback(epoch, result_so_far) -> bool``; returning ``True`` stops training.
    verbose : bool, default=False
        Show a progress bar.
    blas_threads : int, "auto" or None, default="auto"
        BLAS threads: an integer for everything, ``None`` to leave the setting alone, and
        ``"auto"`` one thread. The products of a batch are too small for a second core to pay:
        on 60,000 Fashion-MNIST rows (batch 500, 2 cores) an epoch took the same time with
        :class:`~cvx_lifted.bcd.BCDSolver`'s measured thread choice as with one thread on a
        quiet machine, and 1.44x its quiet time next to a CPU-bound process (one thread:
        0.98-1.04x across runs); two threads everywhere made it 3.5-4x slower
        (``benchmarks/bench_load.py``, ``docs/design.md``).

    Raises
    ------
    ValueError
        For invalid options, or a network with a block that has no row-separable fast path
        (the message names ``solver=``: train such networks with ``solver="bcd"``).
    """

    def __init__(
        self,
        network: LiftedNetwork,
        *,
        batch_size: int = defaults.BATCH_SIZE,
        max_iter: int = 10,
        tol: float = 0.0,
        prox: float = defaults.PROX,
        prox_growth: float = 1.3,
        prox_max: float = 1.0,
        momentum: float = 0.9,
        weight_iter: int = 1,
        state_iter: int = 1,
        state_tol: float = 1e-5,
        spectral_rank: int = kernels.spectral.RANK,
        time_limit: float | None = None,
        objective_rows: int | None = 8192,
        validation: tuple[ArrayLike, ArrayLike] | None = None,
        metric: Callable[[LiftedNetwork, FloatArray, Any], float] | None = None,
        callback: Callable[[int, BCDResult], bool | None] | None = None,
        verbose: bool = False,
        blas_threads: int | str | None = "auto",
    ) -> None:
        self.network = network
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.max_iter = check_positive_int(max_iter, "max_iter")
        self.tol = check_non_negative_float(tol, "tol")
        self.prox = check_positive_float(prox, "prox")
        self.prox_growth = check_positive_float(prox_growth, "prox_growth")
        if self.prox_growth < 1.0:
            raise ValueError(f"prox_growth must be >= 1, got {prox_growth!r}.")
        self.prox_max = check_positive_float(prox_max, "prox_max")
        if self.prox_max < self.prox:
            raise ValueError(f"prox_max must be >= prox ({prox!r}), got {prox_max!r}.")
        self.momentum = check_non_negative_float(momentum, "momentum")
        if self.momentum >= 1.0:
            raise ValueError(f"momentum must be in [0, 1), got {momentum!r}.")
        self.weight_iter = check_positive_int(weight_iter, "weight_iter")
        self.state_iter = check_positive_int(state_iter, "state_iter")
        self.state_tol = check_non_negative_float(state_tol, "state_tol")
        self.spectral_rank = check_non_negative_int(spectral_rank, "spectral_rank")
        self.time_limit = (
            None if time_limit is None else check_positive_float(time_limit, "time_limit")
        )
        self.objective_rows = (
            None if objective_rows is None else check_positive_int(objective_rows, "objective_rows")
        )
        self.validation = validation
        self.metric = metric
        self.callback = callback
        self.verbose = bool(verbose)
        setting = check_thread_setting(blas_threads, "blas_threads")
        self.blas_threads = 1 if setting == "auto" else setting
        self._check_paths()
        self._options = paths.StepOptions(1e-6, 1, self.state_tol, paths.no_ridge)
        #: The iterate of the last :meth:`run` (for continuing with :meth:`update`).
        self.last_state: MinibatchState | None = None
        self._lipschitz0: float | None = None  # the curvature of layer 0's divergence

    # ------------------------------------------------------------------ paths
    def _check_paths(self) -> None:
        net = self.network
        missing = unsupported_blocks(net)
        if missing:
            raise ValueError(
                f"solver='minibatch' needs a row-separable fast path for every block, and block(s) "
                f"{missing} of this network have none (activations "
                f"{[a.name for a in net.activations]}, output {net.head.name!r}); train it with "
                f"solver='bcd' (BCDSolver), which solves those blocks with compiled CVXPY problems."
            )

    def prox_at(self, epoch: int) -> float:
        r"""Return the prox weight of epoch ``epoch``: ``prox * prox_growth**epoch``, capped.

        A batch's :math:`\mu` is this value times the number of batches of its epoch.
        """
        if self.prox_growth == 1.0:
            return self.prox
        # the epoch from which the cap holds, computed without overflowing the power
        capped = np.log(self.prox_max / self.prox) / np.log(self.prox_growth)
        if epoch >= capped:
            return self.prox_max
        return float(min(self.prox * self.prox_growth**epoch, self.prox_max))

    # ------------------------------------------------------------------ blocks of a batch
    def _state_steps(
        self, Xs: list[FloatArray], Y: FloatArray, U0: FloatArray | None = None
    ) -> None:
        """Take the state step of every hidden layer, the last first (``U0``: layer 0's image).

        The order of back-propagation: the output step has moved the batch's last state towards
        its labels, and each state step passes that on to the layer below within the batch. In
        the forward order a state step saw the forward state of the layer above, which carried
        nothing of the labels yet, and a network of two or more hidden layers learned badly
        (``docs/design.md``).
        """
        net = self.network
        for layer in range(net.n_hidden, 0, -1):
            prev, following = net.activations[layer - 1], net.divergence_of(layer)
            state, coupling = paths.STATE.find(prev), paths.COUPLING.find(following)
            assert state is not None and coupling is not None
            softmax = following is None
            U = U0 if layer == 1 and U0 is not None else _image(net, layer - 1, Xs[layer - 1])
            result = paths.state_rows(
                U, Xs[layer],
                Y if softmax else Xs[layer + 1], solve=state[1], couple=coupling[1], act=prev,
                following=following, W=net.weights[layer], b=net.biases[layer],
                lam_prev=float(net.lam[layer - 1]),
                lam_next=1.0 if softmax else float(net.lam[layer]), options=self._options,
            )  # fmt: skip
            Xs[layer] = _finite(np.asarray(result.value, dtype=net.dtype), f"X{layer}")

    def _output_step(self, Xs: list[FloatArray], Y: FloatArray) -> None:
        net = self.network
        if not net.head.has_state:
            return
        found = paths.OUTPUT.find(net.head)
        assert found is not None
        L = net.n_hidden
        U = _image(net, L, Xs[L])
        result = paths.output_rows(U, Y, solve=found[1], head=net.head, lam=float(net.lam[L]))
        Xs[L + 1] = _finite(np.asarray(result.value, dtype=net.dtype), "output")

    def forward_states(
        self,
        X0: FloatArray | kernels.CentredRows,
        Y: FloatArray,
        images: list[FloatArray] | None = None,
    ) -> list[Any]:
        """Return ``[X_0, X_1, ...]``: a forward pass, and the output state by an output step.

        The pre-activations of the hidden layers are appended to ``images`` when it is given.
        """
        net = self.network
        Xs: list[Any] = [X0]
        for layer, act in enumerate(net.activations):
            U = _image(net, layer, Xs[-1])
            if images is not None:
                images.append(U)
            Xs.append(np.asarray(act.act(U), dtype=net.dtype))
        if net.head.has_state:
            Xs.append(np.empty((X0.shape[0], net.layer_sizes[-1]), dtype=net.dtype))
            self._output_step(Xs, Y)
        return Xs

    def _objective(
        self, Xs: list[FloatArray], images: list[FloatArray], Y: FloatArray
    ) -> dict[str, float]:
        """Return the terms of the lifted objective at ``Xs``, reusing the hidden images."""
        terms: dict[str, float] = self.network.objective_terms(Xs, Y, dict(enumerate(images)))
        return terms

    def _weight_steps(
        self,
        Xs: list[FloatArray],
        Y: FloatArray,
        mu: float,
        U0: FloatArray | None = None,
        bound: kernels.SpectralBound | None = None,
    ) -> None:
        """Take the proximal weight step of every layer (``U0``, ``bound``: layer 0's)."""
        net = self.network
        for layer in range(net.n_layers):
            act = net.divergence_of(layer)
            found = paths.COUPLING.find(act)
            assert found is not None
            coupling = found[1](act, Y if act is None else Xs[layer + 1])
            if layer == 0:
                self._lipschitz0 = float(coupling.lipschitz)
            W, b = prox_weight_step(
                Xs[layer], coupling, net.weights[layer], net.biases[layer],
                weight=self._divergence_weight(layer),
                rho=float(net.rho[layer]), mu=mu, n_iter=self.weight_iter,
                U=U0 if layer == 0 else None, bound=bound if layer == 0 else None,
            )  # fmt: skip
            if act is None:  # softmax: pick the minimiser with zero-mean biases, as BCD does
                b = b - b.mean()
            net.weights[layer] = _finite(W.astype(net.dtype, copy=False), f"W{layer} weight")
            net.biases[layer] = _finite(b.astype(net.dtype, copy=False), f"W{layer} bias")

    def batch_step(
        self,
        X0: FloatArray | kernels.CentredRows,
        Y: FloatArray,
        mu: float,
        bound: kernels.SpectralBound | None = None,
    ) -> dict[str, float]:
        """Train on one batch: its states (forward, then exact steps), then the weight steps.

        The forward pass ends with an exact output step; each of the ``state_iter`` rounds then
        takes the state steps of the hidden layers, the last first (a round after the first
        starts with another output step), and the weight steps of every layer follow.

        Parameters
        ----------
        X0 : ndarray, shape (rows, n_inputs), or kernels.CentredRows
            The batch's inputs, or their :func:`~cvx_lifted.minibatch.batch_kernel` when the
            caller keeps it for the next epochs.
        Y : ndarray, shape (rows, n_outputs)
            Its targets.
        mu : float
            The prox weight of the weight steps.
        bound : kernels.SpectralBound, optional
            A curvature bound of the centred rows ``X0`` for the first layer's weight step
            (see :func:`~cvx_lifted.minibatch.prox_weight_step`).

        Returns
        -------
        dict of str to float
            Seconds spent on the states (``"states"``) and on the weights (``"weights"``).
        """
        t0 = time.perf_counter()
        images: list[FloatArray] = []
        Xs = self.forward_states(X0, Y, images)
        U0 = images[0] if images else None
        # the forward pass ended with an output step: the hidden states come next, and a later
        # round starts with the output step (one output step fewer per batch than "states, then
        # output": on Fashion-MNIST 6 % of an epoch, and the same accuracy)
        for round_ in range(self.state_iter):
            if round_:
                self._output_step(Xs, Y)
            self._state_steps(Xs, Y, U0)
        t1 = time.perf_counter()
        # the input and the weights of layer 0 have not changed since the forward pass
        self._weight_steps(Xs, Y, mu, U0, bound)
        return {"states": t1 - t0, "weights": time.perf_counter() - t1}

    # ------------------------------------------------------------------ driver
    def _rows(self, X: ArrayLike, Y: ArrayLike) -> _Rows:
        """Validate ``(X, Y)`` once and pick the rows the objective is evaluated on.

        The objective after every epoch is evaluated on ``objective_rows`` of the rows, the same
        ones for the same number of rows, whatever the training order.
        """
        X0, Ymat = check_training_data(self.network, X, Y)
        m = X0.shape[0]
        X_obj, Y_obj = X0, Ymat
        if self.objective_rows is not None and m > self.objective_rows:
            rows = np.sort(np.random.default_rng(m).choice(m, self.objective_rows, replace=False))
            X_obj, Y_obj = X0[rows], Ymat[rows]
        # the validation data is checked once here and scored after every epoch
        validation = check_validation_data(self.network, self.validation)
        return _Rows(X0, Ymat, X_obj, Y_obj, validation)

    def init(
        self,
        X: ArrayLike,
        Y: ArrayLike,
        *,
        random_state: int | np.random.Generator | None = None,
        warm_start: bool = False,
    ) -> MinibatchState:
        """Initialise the weights (unless warm) and record the objective of the start on ``(X, Y)``.

        An integer ``random_state`` gives the Xavier initialisation of
        :meth:`LiftedNetwork.initialize(random_state) <cvx_lifted.network.LiftedNetwork.initialize>`
        (the same start as :class:`~cvx_lifted.bcd.BCDSolver`) and seeds the shuffling; a
        generator is used for both.

        Parameters
        ----------
        X : array_like, shape (m, n_inputs)
            Inputs.
        Y : array_like, shape (m, n_outputs)
            Targets; one-hot (or probability) rows for classification heads.
        random_state : int or numpy.random.Generator, optional
            Seed of the initialisation and of the order of the rows.
        warm_start : bool, default=False
            Start from the current weights instead of a fresh initialisation.

        Returns
        -------
        MinibatchState
        """
        return self._start(self._rows(X, Y), random_state, warm_start)

    def _start(
        self, rows: _Rows, random_state: int | np.random.Generator | None, warm_start: bool
    ) -> MinibatchState:
        net = self.network
        init: int | np.random.Generator
        random_state = check_seed(random_state)
        if random_state is None or isinstance(random_state, np.random.Generator):
            rng = init = np.random.default_rng(random_state)
        else:  # an int: BCDSolver's initial weights, and a shuffling stream of its own
            init = int(random_state)
            rng = np.random.default_rng([init, 1])
        if not (warm_start and net.is_fitted):
            net.initialize(init)
        state = MinibatchState(BCDHistory(paths=self._paths()), rng)
        self._record(state, rows, {})
        return state

    def _paths(self) -> dict[str, str]:
        net = self.network
        names = [f"W{layer}" for layer in range(net.n_layers)]
        names += [f"X{layer}" for layer in range(1, net.n_hidden + 1)]
        names += ["output"] if net.head.has_state else []
        return dict.fromkeys(names, "minibatch")

    def update(self, state: MinibatchState, X: ArrayLike, Y: ArrayLike) -> MinibatchState:
        """Run one epoch over ``(X, Y)``: its batches in a new order, each :meth:`batch_step`.

        The prox weight is :meth:`prox_at(state.epoch) <prox_at>`; the objective on ``(X, Y)``
        after the epoch (on ``objective_rows`` of its rows), its seconds and the validation
        score are appended to ``state.history``. ``state`` is updated in place and returned.

        Parameters
        ----------
        state : MinibatchState
            From :meth:`init` or an earlier :meth:`update`.
        X : array_like, shape (m, n_inputs)
            Inputs of this epoch (all the data, or the piece at hand).
        Y : array_like, shape (m, n_outputs)
            Their targets.

        Returns
        -------
        MinibatchState
        """
        return self._epoch(state, self._rows(X, Y))

    def _epoch(self, state: MinibatchState, rows: _Rows, keep: bool = False) -> MinibatchState:
        """One epoch over validated rows (:meth:`update` without the validation).

        ``keep``: ``rows`` are those of every epoch (:meth:`run`), so spectral bounds pay.
        """
        m = rows.X.shape[0]
        n_batches = -(-m // self.batch_size)
        mu = self.prox_at(state.epoch) * n_batches
        t0 = time.perf_counter()
        seconds = {"states": 0.0, "weights": 0.0}
        if len(state.batches) != n_batches or sum(map(len, state.batches)) != m:
            order = state.rng.permutation(m)
            state.batches = [order[s : s + self.batch_size] for s in range(0, m, self.batch_size)]
            rows.kernels.clear()
            rows.bounds.clear()
        for k in state.rng.permutation(n_batches):
            batch = state.batches[k]
            if k not in rows.kernels:
                rows.kernels[k] = batch_kernel(rows.X[batch])
            kept = rows.kernels[k]  # the rows themselves are then not read again
            self._look_ahead(state)
            bound = self._bound(rows, k, mu) if keep else None
            X0 = rows.X[batch] if kept is None else kept
            spent = self.batch_step(X0, rows.Y[batch], mu, bound)
            for key, value in spent.items():
                seconds[key] += value
        state.epoch += 1
        rows.passes += 1
        seconds["epoch"] = time.perf_counter() - t0
        self._record(state, rows, seconds, mu)
        return state

    def _bound(self, rows: _Rows, k: int, mu: float) -> SpectralBound | None:
        """Return the spectral bound of batch ``k`` if its first weight step should use it.

        Not on the first pass over the rows: its time would come before the accuracy of that
        pass (on Fashion-MNIST about 2 s, half the first epoch); the later passes share it.
        """
        kept = rows.kernels[k]
        if kept is None or not self.spectral_rank or not rows.passes:
            return None
        assert self._lipschitz0 is not None  # a pass has taken the weight steps
        if k not in rows.bounds:
            if not rows.spectral and rows.probed == rows.passes:  # one probe a pass until it fits
                return None
            rows.bounds[k] = SpectralBound.of(kept, self.spectral_rank)
            rows.probed = rows.passes
        bound = rows.bounds[k]
        rho = float(self.network.rho[0])
        alpha = prox_penalty(kept.shape[0], self._divergence_weight(0), self._lipschitz0, rho, mu)
        if bound is None or not bound.fits(alpha):
            return None
        rows.spectral = True
        return bound

    def _divergence_weight(self, layer: int) -> float:
        """Return the weight of layer ``layer``'s divergence: its lambda, 1 for a loss."""
        net = self.network
        return 1.0 if net.divergence_of(layer) is None else float(net.lam[layer])

    def _look_ahead(self, state: MinibatchState) -> None:
        r"""Move the weights to :math:`W + \beta(W - W_{prev})` and remember :math:`W`."""
        net = self.network
        current = [*net.weights, *net.biases]
        if self.momentum > 0 and state.previous:
            moved: list[FloatArray] = []
            for a, p in zip(current, state.previous, strict=True):
                step = np.subtract(a, p)  # one new array per weight: W + beta (W - W_prev)
                step *= self.momentum
                step += a
                moved.append(step)
            net.weights, net.biases = moved[: net.n_layers], moved[net.n_layers :]
        # the steps replace the network's arrays (never write into them): no copy is needed
        state.previous = current

    def _record(
        self,
        state: MinibatchState,
        rows: _Rows,
        seconds: dict[str, float],
        mu: float | None = None,
    ) -> None:
        t0 = time.perf_counter()
        net = self.network
        images: list[FloatArray] = []
        state.states = self.forward_states(rows.X_objective, rows.Y_objective, images)
        terms = self._objective(state.states, images, rows.Y_objective)
        if not np.isfinite(terms["total"]):
            raise SolverFailedError(f"the objective became {terms['total']} ({terms}).")
        seconds["objective"] = time.perf_counter() - t0
        history = state.history
        history.terms.append(terms)
        history.objective.append(terms["total"])
        history.seconds.append(seconds)
        history.residuals.append({} if mu is None else {"mu": mu})
        if rows.validation is not None:
            Xv, Yv = rows.validation
            history.validation.append(float((self.metric or default_metric)(net, Xv, Yv)))

    def run(
        self,
        X: ArrayLike,
        Y: ArrayLike,
        *,
        random_state: int | np.random.Generator | None = None,
        warm_start: bool = False,
    ) -> BCDResult:
        """Train on ``(X, Y)``: :meth:`init`, then :meth:`update` epoch by epoch until a stop.

        Training stops after ``max_iter`` epochs, when an epoch decreases the objective by less
        than ``tol`` (relative; an increase is recorded in ``history.increases``), when
        ``time_limit`` is spent or when ``callback`` says so. Deterministic for an integer
        ``random_state``.

        Parameters
        ----------
        X : array_like, shape (m, n_inputs)
            Inputs.
        Y : array_like, shape (m, n_outputs)
            Targets; one-hot (or probability) rows for classification heads.
        random_state : int or numpy.random.Generator, optional
            Seed of the initialisation and of the order of the rows.
        warm_start : bool, default=False
            Start from the current weights instead of a fresh initialisation.

        Returns
        -------
        BCDResult
            ``n_iter`` counts epochs; ``history`` holds one entry per epoch (index 0: the start).
        """
        n_rows = np.shape(X)[0] if np.ndim(X) else 0
        with blas_limits(self.blas_threads, n_rows, self.network.layer_sizes):
            rows = self._rows(X, Y)  # validated once for every epoch
            state = self._start(rows, random_state, warm_start)
            self.last_state = state
            return self._loop(state, rows)

    def _loop(self, state: MinibatchState, rows: _Rows) -> BCDResult:
        net, history = self.network, state.history
        t_start = time.perf_counter()
        stop_reason, converged = "max_iter", False
        bar = _progress(self.max_iter, self.verbose)
        try:
            while state.epoch < self.max_iter:
                self._epoch(state, rows, keep=True)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix({"objective": f"{history.objective[-1]:.6g}"})
                prev, cur = history.objective[-2], history.objective[-1]
                scale = max(abs(prev), 1e-12)
                if cur > prev:
                    history.increases.append(state.epoch)
                elif prev - cur <= self.tol * scale:
                    stop_reason, converged = "tol", True
                    break
                if self.time_limit is not None and time.perf_counter() - t_start > self.time_limit:
                    stop_reason = "time_limit"
                    break
                if self.callback is not None:
                    partial = BCDResult(
                        net, state.states[1:], history, state.epoch, False, "running"
                    )
                    stop = self.callback(state.epoch, partial)
                    del partial  # the next epoch replaces the states: do not hold them
                    if stop:
                        stop_reason = "callback"
                        break
        finally:
            if bar is not None:
                bar.close()
        net.history = history
        if history.rising():
            lowest = min(history.objective[1:])
            warnings.warn(
                f"mini-batch BCD's objective rose in {len(history.increases)} of "
                f"{len(history.objective) - 1} epochs and ends at {history.objective[-1]:.4g}, "
                f"above its lowest {lowest:.4g}: training is not settling. A larger prox (now "
                f"{self.prox:g}), standardised targets or solver='bcd' (whose objective never "
                f"rises) may help.",
                RuntimeWarning,
                stacklevel=caller_stacklevel(),
            )
        return BCDResult(net, state.states[1:], history, state.epoch, converged, stop_reason)


def _image(net: LiftedNetwork, layer: int, X: FloatArray | kernels.CentredRows) -> FloatArray:
    r"""Return :math:`XW_l^\top + \mathbf 1 b_l^\top`, a float32 product for a large float64 ``X``.

    As in the weight step, a batch input of ``FLOAT32_MIN_ENTRIES`` entries or more is multiplied
    in float32 (half the time; relative error about 1e-7), and the image returned in float64
    (in the network's dtype for a float32 network). Kept centred rows (:func:`batch_kernel`)
    are multiplied in their own precision, which follows the same rule.
    """
    if isinstance(X, kernels.CentredRows):
        W, b = net.weights[layer], net.biases[layer]
        return X.image(W, b, dtype=net.dtype)
    if X.dtype != np.float64 or X.size < FLOAT32_MIN_ENTRIES:
        return net.preactivation(layer, X)
    W, b = net.weights[layer], net.biases[layer]
    U = np.asarray(X, dtype=np.float32) @ W.T.astype(np.float32)
    return np.add(U, b, dtype=np.float64)


def _finite(arr: FloatArray, block: str) -> FloatArray:
    if not np.all(np.isfinite(arr)):
        raise SolverFailedError(
            f"the {block} step produced NaN or infinity; try a larger prox or rho, or a larger "
            f"batch_size."
        )
    return arr


def _progress(total: int, verbose: bool) -> Any:
    if not verbose:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc="mini-batch BCD epochs", unit="epoch", leave=True)
