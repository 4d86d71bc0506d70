# SPDX-License-Identifier: Apache-2.0
"""NumPy/SciPy fast paths for the convex blocks of lifted-network training.

Rows are samples. Nothing here imports CVXPY or the rest of :mod:`cvx_lifted`; every public function
states in its docstring the exact argmin it computes, and ``tests/test_kernels_*.py`` checks each
one against a direct CVXPY formulation.

* :mod:`~cvx_lifted.kernels.simplex`: Euclidean simplex projection (sparsemax) and the cross-entropy
  output step on the simplex (paper eq. (15), Appendix A), with the Appendix A bounds.
* :mod:`~cvx_lifted.kernels.ridge`: matrix ridge regression with a reusable Cholesky factor
  (the W-step of the JCR layers).
* :mod:`~cvx_lifted.kernels.boxqp`: the hidden-state step, a box-constrained problem per row with a
  shared linear map and a coupling to the next layer.
* :mod:`~cvx_lifted.kernels.glm`: the W-steps of the Fenchel–Young ReLU layer and of the softmax
  output layer.
"""

from .boxqp import L2Coupling, ReluFenchelCoupling, SoftmaxCoupling, state_step
from .glm import relu_fenchel_wstep, softmax_wstep
from .ridge import Ridge
from .simplex import (
    AppendixABounds,
    appendix_a_bounds,
    project_simplex,
    simplex_xent_prox,
    xent_bracket,
)

__all__ = [
    "AppendixABounds",
    "L2Coupling",
    "ReluFenchelCoupling",
    "Ridge",
    "SoftmaxCoupling",
    "appendix_a_bounds",
    "project_simplex",
    "relu_fenchel_wstep",
    "simplex_xent_prox",
    "softmax_wstep",
    "state_step",
    "xent_bracket",
]
