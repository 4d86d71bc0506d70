# SPDX-License-Identifier: Apache-2.0
"""
The sigmoid as a Fenchel--Young argmin
======================================

The sigmoid as a bi-convex argmin (Fenchel--Young divergence), trained through the generic path.

What this example teaches
-------------------------
1. For a strictly increasing activation phi, ``Phi(z) = int_0^z phi^{-1}`` is convex and
   ``phi(u) = argmin_z Phi(z) - u z`` (paper eq. 6-7). For the sigmoid, ``Phi`` is the negative
   binary entropy, so the argmin problem needs the exponential cone::

       sigmoid(u) = argmin_{0 <= z <= 1}  z log z + (1 - z) log(1 - z) - u z.

   The Fenchel--Young divergence adds ``Phi*(u) = log(1 + e^u)``:
   ``D(u, z) = Phi(z) + Phi*(u) - u z >= 0``, zero exactly at ``z = sigmoid(u)``. It is convex in
   z and convex in u, but not jointly convex (bi-convex).
2. :func:`cvx_lifted.verify` checks the CVXPY program against the closed form.
3. Why ``Phi*(u)`` matters: it does not move the argmin over z, but without it D is *linear* in
   u, so the weight step ``min_W D(X W^T, Z)`` is unbounded below. CVXPY says so on a tiny
   weight step, and so does lifted training.
4. A tiny sigmoid network trained with ``backend="cvxpy"``: every block is an exact convex
   problem (weight steps are logistic-regression-like problems, state steps exponential-cone
   programs), so the objective never increases.

Run it with ``python examples/sigmoid_fenchel.py``.
"""

import cvxpy as cp
import numpy as np

import cvx_lifted as cl

rng = np.random.default_rng(0)
sigmoid = cl.get_activation("sigmoid")

# --------------------------------------------------------------------------- 1. the divergence
print(f"sigmoid: D(u, z) = {sigmoid.divergence_text}")
u = cp.Parameter((1, 3), name="u")
z = cp.Variable((1, 3), name="z")
D = sigmoid.divergence(u, z)
print(f"  as CVXPY: {D}")
print(f"  curvature in z: {D.curvature}; DPP in u: {cp.Problem(cp.Minimize(D)).is_dpp()}")
u_val = np.array([[-2.0, 0.0, 3.0]])
half = np.full((1, 3), 0.5)
at_argmin = abs(sigmoid.value(u_val, sigmoid.act(u_val)))
print(f"  |D(u, sigmoid(u))| = {at_argmin:.1e}  (zero at the argmin)")
print(f"  D(u, 0.5)          = {sigmoid.value(u_val, half):.3f}  (positive elsewhere)")

# --------------------------------------------------------------------------- 2. verify
print(f"verify: {cl.verify('sigmoid')}")

# --------------------------------------------------------------------------- 3. Phi*(u) matters
# A tiny weight step: targets Z (in (0, 1)) fixed, inputs X fixed, weights W free, no penalty.
m, n, k = 6, 3, 2
X = rng.standard_normal((m, n))
Z = sigmoid.act(X @ rng.standard_normal((k, n)).T)  # reachable targets: a finite optimum exists
W = cp.Variable((k, n), name="W")
U = X @ W.T
without = cp.Problem(cp.Minimize(sigmoid.phi(cp.Constant(Z)) - cp.sum(cp.multiply(U, Z))))
without.solve()
print(f"weight step without Phi*(u): status {without.status!r}, value {without.value}")
with_conj = cp.Problem(cp.Minimize(sigmoid.divergence(U, cp.Constant(Z))))
with_conj.solve()
print(f"weight step with Phi*(u):    status {with_conj.status!r}, value {with_conj.value:.2e}")

# The same mistake in a custom activation is accepted as an activation (the argmin is right) but
# lifted training fails at the first weight step, naming each solver's verdict.
no_conj = cl.custom_activation(
    name="sigmoid_without_conjugate",
    divergence=lambda u, z: sigmoid.phi(z) - cp.sum(cp.multiply(u, z)),  # no Phi*(u) term
    closed_form=lambda u: 1.0 / (1.0 + np.exp(-u)),
    register=False,
)
try:
    cl.LiftedNetwork([n, 2, 1], activation=no_conj, rho=0.0).fit(
        X, X[:, :1], max_iter=1, backend="cvxpy", random_state=0
    )
except cl.SolverFailedError as exc:
    print(f"training without Phi*(u): SolverFailedError: {exc}")

# --------------------------------------------------------------------------- 4. train
X = rng.standard_normal((60, 2))
Y = np.tanh(X @ [[1.5], [-1.0]]) + 0.5 * np.tanh(X @ [[0.5], [2.0]])  # a smooth target
X_train, Y_train, X_test, Y_test = X[:40], Y[:40], X[40:], Y[40:]
net = cl.LiftedNetwork([2, 4, 1], activation="sigmoid", lam=1.0, rho=1e-3)
result = net.fit(
    X_train,
    Y_train,
    max_iter=10,
    tol=0,
    backend="cvxpy",
    random_state=0,
    validation=(X_test, Y_test),
)
history = result.history
print(f"trained a [2, 4, 1] sigmoid network, blocks solved by {set(history.paths.values())}")
print("sweep  objective   test R^2")
for sweep, (obj, r2) in enumerate(zip(history.objective, history.validation, strict=True)):
    print(f"{sweep:>5}  {obj:.6f}  {r2:>8.3f}")
increase = float(np.max(np.diff(history.objective)))
print(f"objective never increased: {increase <= 1e-9} (largest change {increase:.1e})")
