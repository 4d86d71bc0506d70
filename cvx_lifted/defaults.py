# SPDX-License-Identifier: Apache-2.0
r"""Default settings of cvx_lifted, in one place.

:class:`~cvx_lifted.network.LiftedNetwork`, the estimators
(:class:`~cvx_lifted.estimator.LiftedMLPClassifier`,
:class:`~cvx_lifted.estimator.LiftedMLPRegressor`), the command line (``cvx-lifted demo`` and
``cvx-lifted train``) and the experiment runner all read their defaults from this module, so the
same call with the same visible settings trains the same network wherever it is made.

========================  ==================  ====================================================
name                      value               meaning
========================  ==================  ====================================================
``ACTIVATION``            ``"relu_fenchel"``  hidden activation (ReLU, Fenchel--Young divergence)
``HIDDEN``                ``(100,)``          hidden widths (estimators and command line)
``LAM``                   ``1.0``             :math:`\lambda`, weight of every layer's divergence
``MINIBATCH_LAM``         ``3.0``             hidden layers' :math:`\lambda` of ``"minibatch"``
                                              under the estimators' ``lam="auto"``
``RHO``                   ``1e-3``            :math:`\rho`, ridge penalty on every weight matrix
                                              (``rho="auto"``: :func:`auto_rho`)
``MINIBATCH_RHO_ROWS``    ``15_000``          rows above which ``"minibatch"``'s :math:`\rho`
                                              shrinks like 1/rows under ``rho="auto"``
``PENALTY``               ``"l2"``            :math:`\pi(W) = \tfrac12\|W\|_F^2`
``SWEEPS``                ``20``              maximum number of BCD sweeps (``max_iter``)
``TOL``                   ``1e-4``            relative objective decrease that stops training
``BACKEND``               ``"auto"``          NumPy kernels where they exist, CVXPY elsewhere
``CLASSIFIER_HEAD``       ``"simplex_xent"``  output head for classification (paper eq. 15)
``REGRESSOR_HEAD``        ``"squared"``       output head for regression (and of LiftedNetwork)
``OUTPUT_ACTIVATION``     ``"identity"``      output activation of the squared head
``DTYPE``                 ``"float64"``       floating type of weights and states
``PREDICTION``            ``"feedforward"``   prediction rule (paper eq. 2; ``"lifted"``: eq. 12)
``SEED``                  ``0``               seed of the command line's runs
``SOLVER``                ``"auto"``          estimators' training algorithm (:func:`auto_solver`)
``MINIBATCH_ROWS``        ``5_000``           rows from which ``solver="auto"`` trains mini-batch
``BATCH_SIZE``            ``500``             rows per batch of ``solver="minibatch"``
``PROX``                  ``0.006``           first prox weight of ``"minibatch"``, per batch
``WEIGHT_ITER_ROWS``      ``20_000``          rows from which BCD takes 1 weight iteration a sweep
========================  ==================  ====================================================

Why ``relu_fenchel`` and not ``relu``: both have the ReLU as their argmin and the same state
step, but the ``relu`` divergence :math:`\tfrac12\|z-u\|^2` pulls negative pre-activations
towards zero in the weight step, so the ReLU hardly acts during training. Measured with the
classifier's defaults otherwise (hidden 100, :math:`\lambda = 1`, :math:`\rho = 10^{-3}`, 20
sweeps, seed 0; ``relu`` vs ``relu_fenchel``): digits, the demo's stratified 75/25 split, test
accuracy 0.940 vs 0.982; iris, standardised, stratified 75/25 split, 0.789 vs 1.0; MNIST-10k,
validation accuracy 0.846 vs 0.935 (``docs/design.md``).
``relu`` stays available by name, and trains faster per sweep (its weight step is one ridge
regression instead of a few L-BFGS iterations).
"""

from __future__ import annotations

__all__ = [
    "ACTIVATION",
    "BACKEND",
    "BATCH_SIZE",
    "CLASSIFIER_HEAD",
    "DTYPE",
    "HIDDEN",
    "LAM",
    "MINIBATCH_LAM",
    "MINIBATCH_RHO_ROWS",
    "MINIBATCH_ROWS",
    "OUTPUT_ACTIVATION",
    "PENALTY",
    "PREDICTION",
    "PROX",
    "REGRESSOR_HEAD",
    "RHO",
    "SEED",
    "SOLVER",
    "SWEEPS",
    "TOL",
    "WEIGHT_ITER_ROWS",
    "auto_lam",
    "auto_rho",
    "auto_solver",
    "auto_weight_iterations",
]

ACTIVATION: str = "relu_fenchel"
"""Hidden activation (a name in :data:`cvx_lifted.ACTIVATIONS`)."""

HIDDEN: tuple[int, ...] = (100,)
"""Hidden layer widths of the estimators and the command line."""

LAM: float = 1.0
r"""Weight :math:`\lambda` of every layer's divergence."""

MINIBATCH_LAM: float = 3.0
r"""The hidden layers' :math:`\lambda` of ``solver="minibatch"`` under ``lam="auto"``.

The estimators and ``cvx-lifted train`` default to ``lam="auto"`` (:func:`auto_lam`): :data:`LAM`
for every layer with full-batch BCD; with mini-batch BCD this value for the hidden layers and
:data:`LAM` for the output layer. Measured with the mini-batch solver (``docs/design.md``; λ of
the hidden layer 1 / 3): Fashion-MNIST 784-300-10 validation accuracy after 5 epochs 0.865 /
0.878, MNIST-10k after 10 epochs 0.955 / 0.960, and 5-fold on breast cancer, digits, wine and
iris 0.965 / 0.968, 0.977 / 0.975, 0.961 / 0.983, 0.967 / 0.967.
"""

RHO: float = 1e-3
r"""Weight :math:`\rho` of the penalty on every weight matrix."""

MINIBATCH_RHO_ROWS: int = 15_000
r"""Rows above which ``rho="auto"`` shrinks mini-batch BCD's :math:`\rho` (:func:`auto_rho`).

The lifted objective averages its divergences over the rows and adds :math:`\rho` once, so a
fixed :math:`\rho` regularises a large data set as strongly as a small one; the classical
scaling is :math:`\rho \propto 1/m`. Measured with the mini-batch solver (784-300-10, λ = 3,
validation sixth of the training rows, ``docs/design.md``), :math:`\rho` = 1e-3 / 3e-4 / 1e-4:
Fashion-MNIST (50,000 rows) after 8 epochs 0.881 / 0.887 / 0.889 on the [0, 1] pixels
(training accuracy 0.894 / 0.910 / 0.919: 1e-3 underfits) and 0.891 / 0.893 / 0.889
standardised; MNIST-10k (6,700 rows) after 15 epochs 0.960 / 0.960 / 0.948 raw and
0.951 / 0.936 / 0.930 standardised. :math:`\rho = 10^{-3} \cdot 15{,}000/m` is 3e-4 on the
50,000 rows, keeps 1e-3 up to 15,000 rows and gives 2.5e-4 on Fashion-MNIST's 60,000.
"""

PENALTY: str = "l2"
r"""Weight penalty :math:`\pi(W) = \tfrac12\|W\|_F^2` (ridge weight steps, the fast path)."""

SWEEPS: int = 20
"""Maximum number of block-coordinate-descent sweeps (``max_iter``)."""

TOL: float = 1e-4
"""Relative objective decrease of a sweep below which training stops."""

BACKEND: str = "auto"
"""Block solvers: NumPy fast path where one exists, compiled CVXPY problems otherwise."""

CLASSIFIER_HEAD: str = "simplex_xent"
"""Output head for classification: cross-entropy with the output state on the simplex."""

REGRESSOR_HEAD: str = "squared"
"""Output head for regression, and of :class:`~cvx_lifted.network.LiftedNetwork`."""

OUTPUT_ACTIVATION: str = "identity"
"""Output activation of the squared head."""

DTYPE: str = "float64"
"""Floating type of weights and states."""

PREDICTION: str = "feedforward"
"""Prediction rule of the estimators: ``"feedforward"`` (eq. 2) or ``"lifted"`` (eq. 12)."""

SEED: int = 0
"""Seed of ``cvx-lifted demo`` and ``cvx-lifted train``."""

SOLVER: str = "auto"
"""Training algorithm of the estimators and ``cvx-lifted train``: :func:`auto_solver` chooses
between full-batch BCD (``"bcd"``, :class:`~cvx_lifted.bcd.BCDSolver`) and mini-batch BCD
(``"minibatch"``, :class:`~cvx_lifted.minibatch.MinibatchBCDSolver`)."""

MINIBATCH_ROWS: int = 5_000
r"""Training rows from which ``solver="auto"`` trains with mini-batch BCD (10 batches of 500).

Measured (``docs/design.md``, 784-300-10 or the sets' own widths, the estimators' defaults
otherwise): on MNIST-10k (8,000 training rows) mini-batch BCD reached test accuracy 0.95 in
0.35-0.78x the time float32 Adam took (on two machines) and 0.961-0.965 at best, where
full-batch BCD stopped at 0.942; on Fashion-MNIST (60,000 rows) 0.884-0.885 against 0.853.
On sets of 150-1,797 rows (iris, wine, breast cancer, digits; 5-fold) neither was better on
all of them (full-batch BCD 0.960, 0.983, 0.979, 0.967; mini-batch 0.967, 0.983, 0.968,
0.975), and full-batch BCD keeps its guarantee that no sweep raises the objective, which a
stochastic method does not have. The depth does not matter: with hidden layers of 300 and 100,
and of 300, 100 and 100, mini-batch BCD reached 0.961-0.966 and 0.955-0.958 on MNIST-10k (seeds
0 and 1, 20 epochs) against full-batch BCD's 0.943 and 0.936 after 20 sweeps, in less time.
"""

BATCH_SIZE: int = 500
"""Rows per batch of mini-batch BCD (MNIST-10k: 256-1000 similar per epoch, 2000 slower)."""

PROX: float = 0.006
r"""Prox weight of mini-batch BCD's first epoch per batch of the epoch (grows 1.3x per epoch)."""

WEIGHT_ITER_ROWS: int = 20_000
"""Rows of training data from which ``weight_max_iter="auto"`` takes 1 iteration instead of 3."""


def auto_weight_iterations(rows: int, *, softmax_head: bool = False) -> int:
    """Return the weight-step iterations per sweep of ``weight_max_iter="auto"`` on ``rows`` rows.

    3 below :data:`WEIGHT_ITER_ROWS` rows, where a sweep is cheap and the sweep count
    (``max_iter``) is what limits training; 1 from there, where the products over the data
    dominate a sweep and one iteration per sweep trains as well per second (``docs/design.md``).
    The weight step of a softmax head keeps 3: its products are thin (one column per class), and
    one iteration per sweep left it far from its minimiser.

    Parameters
    ----------
    rows : int
        Rows of the training data.
    softmax_head : bool, default False
        Whether the step is a softmax head's.

    Returns
    -------
    int
    """
    return 3 if softmax_head or rows < WEIGHT_ITER_ROWS else 1


def auto_solver(rows: int, *, minibatch_possible: bool = True) -> str:
    """Return the training algorithm of ``solver="auto"`` for ``rows`` training rows.

    ``"minibatch"`` from :data:`MINIBATCH_ROWS` rows when mini-batch BCD can train the network
    (every block has a fast path, the data are in memory), ``"bcd"`` otherwise.

    Parameters
    ----------
    rows : int
        Rows of training data.
    minibatch_possible : bool, default True
        Whether :class:`~cvx_lifted.minibatch.MinibatchBCDSolver` can train the network on
        these data (see :func:`cvx_lifted.minibatch.unsupported_blocks`).

    Returns
    -------
    {"bcd", "minibatch"}
    """
    return "minibatch" if minibatch_possible and rows >= MINIBATCH_ROWS else "bcd"


def auto_rho(solver: str, n_rows: int) -> float:
    r"""Return the :math:`\rho` of ``rho="auto"`` for ``solver`` and ``n_rows`` training rows.

    :data:`RHO` with ``"bcd"``; with ``"minibatch"``, :data:`RHO` up to
    :data:`MINIBATCH_RHO_ROWS` rows and :math:`\rho \cdot` ``MINIBATCH_RHO_ROWS / n_rows``
    above (the evidence is in :data:`MINIBATCH_RHO_ROWS`).

    Parameters
    ----------
    solver : {"bcd", "minibatch"}
        The training algorithm.
    n_rows : int
        Number of training rows (for ``partial_fit``: those of its first call).

    Returns
    -------
    float
        :math:`\rho`, the same for every weight layer.
    """
    if solver != "minibatch" or n_rows <= MINIBATCH_RHO_ROWS:
        return RHO
    return RHO * MINIBATCH_RHO_ROWS / n_rows


def auto_lam(solver: str, n_hidden: int) -> tuple[float, ...]:
    r"""Return the per-layer :math:`\lambda` of ``lam="auto"`` for ``solver``.

    :data:`LAM` for every layer with ``"bcd"``; :data:`MINIBATCH_LAM` for the ``n_hidden`` hidden
    layers and :data:`LAM` for the output layer with ``"minibatch"``.

    Parameters
    ----------
    solver : {"bcd", "minibatch"}
        The training algorithm.
    n_hidden : int
        Number of hidden layers.

    Returns
    -------
    tuple of float
        One value per weight layer (``n_hidden + 1``).
    """
    hidden = MINIBATCH_LAM if solver == "minibatch" else LAM
    return (hidden,) * n_hidden + (LAM,)
