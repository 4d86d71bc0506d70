# SPDX-License-Identifier: Apache-2.0
"""NumPy/SciPy fast paths for the convex blocks of lifted-network training.

Rows are samples. Nothing here imports CVXPY or the rest of :mod:`cvx_lifted`; every public function
states in its docstring the exact argmin it computes, and ``tests/test_kernels_*.py`` checks each
one against a direct CVXPY formulation; the proximal weight steps of
:mod:`~cvx_lifted.kernels.proximal` state the majoriser they minimise, and their tests check the
decrease and the exact minimiser of a quadratic.

* :mod:`~cvx_lifted.kernels.simplex`: Euclidean simplex projection (sparsemax) and the cross-entropy
  output step on the simplex (paper eq. (15), Appendix A), with the Appendix A bounds.
* :mod:`~cvx_lifted.kernels.ridge`: matrix ridge regression with a reusable Cholesky factor
  (the W-step of the JCR layers).
* :mod:`~cvx_lifted.kernels.proximal`: the proximal weight step of one layer on a batch
  (mini-batch BCD's weight block), exact or with :mod:`~cvx_lifted.kernels.spectral`'s curvature
  bound of the batch from its top eigenpairs.
* :mod:`~cvx_lifted.kernels.boxqp`: the hidden-state step, a box-constrained problem per row with a
  shared linear map and a coupling to the next layer.
* :mod:`~cvx_lifted.kernels.glm`: the W-steps of the Fenchel–Young layers (ReLU and any elementwise
  pair) and of the softmax output layer.
* :mod:`~cvx_lifted.kernels.fenchel_young`: elementwise Fenchel–Young pairs (:class:`ScalarFY`,
  the sigmoid, tanh, ReLU and leaky ReLU catalogue) and the state steps after such a layer (open
  domains, by damped Newton) and after a sparsemax layer (on the simplex).

Every block kernel returns a :class:`StepResult`: the answer (``value``: the states, or ``(W, b)``
of a weight step) and a dict of how the kernel ended (``info``: iterations, residuals,
convergence, objective, method).

The weight steps touch their rows only through a :class:`RowOps` (maps over row chunks and sums
over them): :data:`MEMORY` runs them as plain NumPy, :mod:`cvx_lifted.distributed` on the row
chunks of a Dask cluster. ``relu_fenchel_step``, ``fy_step`` and ``softmax_step`` are the weight
steps on checked inputs in either layout; ``*_wstep`` check in-memory inputs and call them.
"""

from ._result import StepResult
from ._rowops import MEMORY, RowOps
from .boxqp import FYCoupling, L2Coupling, ReluFenchelCoupling, SoftmaxCoupling, state_step
from .fenchel_young import (
    RELU_FY,
    SIGMOID_FY,
    TANH_FY,
    ScalarFY,
    fy_state_step,
    leaky_relu_fy,
    simplex_state_step,
)
from .glm import fy_step, fy_wstep, relu_fenchel_step, relu_fenchel_wstep
from .multinomial import softmax_step, softmax_wstep
from .ridge import CentredRows, KernelRidge, Ridge, centred_kernel
from .simplex import (
    AppendixABounds,
    appendix_a_bounds,
    project_simplex,
    simplex_xent_prox,
    xent_bracket,
)
from .spectral import SpectralBound

__all__ = [
    "RELU_FY",
    "SIGMOID_FY",
    "TANH_FY",
    "MEMORY",
    "AppendixABounds",
    "CentredRows",
    "FYCoupling",
    "L2Coupling",
    "ReluFenchelCoupling",
    "KernelRidge",
    "Ridge",
    "RowOps",
    "ScalarFY",
    "SoftmaxCoupling",
    "SpectralBound",
    "StepResult",
    "appendix_a_bounds",
    "centred_kernel",
    "fy_state_step",
    "fy_step",
    "fy_wstep",
    "leaky_relu_fy",
    "project_simplex",
    "relu_fenchel_step",
    "relu_fenchel_wstep",
    "simplex_state_step",
    "simplex_xent_prox",
    "softmax_step",
    "softmax_wstep",
    "state_step",
    "xent_bracket",
]
