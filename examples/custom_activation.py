# SPDX-License-Identifier: Apache-2.0
"""
Your own activation: declare, verify, train
===========================================

Declare your own activation as a convex program, check it, and train a lifted network with it.

What this example teaches
-------------------------
1. :func:`cvx_lifted.custom_activation` turns three plain functions into an activation that works
   wherever a built-in one does: the divergence ``D(u, z)`` as a CVXPY expression, optional domain
   constraints, and the closed form ``phi(u) = argmin_z D(u, z)``. Here: soft-thresholding::

       soft(u) = sign(u) max(|u| - tau, 0) = argmin_z 1/2 ||z - u||^2 + tau ||z||_1,

   the proximal operator of the l1 norm (jointly convex in (u, z), so it is trainable).
2. :func:`cvx_lifted.verify` solves the convex program and compares it with the closed form: it
   passes for the right closed form and catches a wrong one.
3. A small :class:`cvx_lifted.LiftedNetwork` with the new activation, trained by block-coordinate
   descent through the generic (compiled CVXPY) path, on tiny data so it runs in seconds.
4. What happens with a definition that is not convex: :class:`cvx_lifted.NonConvexError`, with a
   message that names the offending sub-expression.

Run it with ``python examples/custom_activation.py``.
"""

import cvxpy as cp
import numpy as np

import cvx_lifted as cl

TAU = 0.5  # threshold of the soft-thresholding activation

# --------------------------------------------------------------------------- 1. declare
# u and z have shape (m, n) (rows are samples); the divergence sums over all entries.
soft = cl.custom_activation(
    name="soft_threshold",
    divergence=lambda u, z: 0.5 * cp.sum_squares(z - u) + TAU * cp.sum(cp.abs(z)),
    closed_form=lambda u: np.sign(u) * np.maximum(np.abs(u) - TAU, 0.0),
    formula=f"sign(u) max(|u| - {TAU}, 0)",
    overwrite=True,  # so that re-running this file in the same session works
)
print(f"declared {soft!r}: convexity = {soft.convexity!r}, cone = {soft.cone!r}")
print(f"soft([-2, -0.3, 0, 0.3, 2]) = {soft.act([[-2.0, -0.3, 0.0, 0.3, 2.0]])[0]}")

# --------------------------------------------------------------------------- 2. verify
report = cl.verify(soft)
print(f"verify: {report}")

# a wrong closed form (the threshold forgotten: it is the identity) is caught, because the
# solver finds a point with a smaller divergence than the "closed form" gives: custom_activation
# refuses it at once (one solve), and verify shows the whole report
wrong_definition = {
    "name": "soft_threshold_wrong",
    "divergence": lambda u, z: 0.5 * cp.sum_squares(z - u) + TAU * cp.sum(cp.abs(z)),
    "closed_form": lambda u: u,
    "register": False,
}
try:
    cl.custom_activation(**wrong_definition)
except ValueError as exc:
    print(f"ValueError: {exc}")
wrong = cl.custom_activation(**wrong_definition, check_closed_form=False)
print(f"verify (wrong closed form): {cl.verify(wrong)}")

# --------------------------------------------------------------------------- 3. train
# data from a random "teacher" network with 4 soft-thresholding units; 45 rows to train, 15 to test
rng = np.random.default_rng(0)
X = rng.standard_normal((60, 3))
Y = soft.act(X @ rng.standard_normal((4, 3)).T) @ rng.standard_normal((4, 1))
X_train, Y_train, X_test, Y_test = X[:45], Y[:45], X[45:], Y[45:]

# activation="soft_threshold" works too: the activation is registered under its name.
# A small lam keeps the l1 term of the state step from switching the hidden units off.
net = cl.LiftedNetwork([3, 6, 1], activation=soft, lam=0.1, rho=1e-2)
result = net.fit(
    X_train, Y_train, max_iter=10, backend="cvxpy", random_state=0, validation=(X_test, Y_test)
)
print(f"trained with paths {result.history.paths}")
print("sweep  objective    test R^2")
for sweep, (obj, r2) in enumerate(
    zip(result.history.objective, result.history.validation, strict=True)
):
    print(f"{sweep:>5}  {obj:.6f}  {r2:>8.3f}")
print(f"objective never increased: {bool(np.all(np.diff(result.history.objective) <= 1e-9))}")

# --------------------------------------------------------------------------- 4. not convex
# "1/2 (z - u)^2 - |z|" rewards large |z|: concave in z, so it is not an argmin of a convex program
try:
    cl.custom_activation(
        name="not_convex",
        divergence=lambda u, z: 0.5 * cp.sum_squares(z - u) - cp.sum(cp.abs(z)),
        closed_form=lambda u: u,
        register=False,
    )
except cl.NonConvexError as exc:
    print(f"NonConvexError: {exc}")
