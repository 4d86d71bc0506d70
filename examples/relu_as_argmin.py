# SPDX-License-Identifier: Apache-2.0
"""
ReLU is an argmin
=================

The convex program, the closed form and the NumPy kernel side by side.

What this example teaches
-------------------------
1. The ReLU is the Euclidean projection onto the non-negative orthant (paper eq. 4)::

       max(u, 0) = argmin_z 1/2 ||z - u||^2  subject to  z >= 0.

   The same inputs go through three routes: the CVXPY program compiled once with
   :class:`cvx_lifted.CompiledArgmin` (the generic path), the closed form ``relu.act``, and the
   NumPy kernel that lifted training uses (the box-constrained state step with the next layer
   switched off). All three agree; the errors are printed.
2. A compiled problem is re-solved with new inputs without being compiled again.
3. ``relu_fenchel``, the ReLU's Fenchel--Young divergence
   ``1/2 z^2 + 1/2 max(u, 0)^2 - u z``, differs from ``1/2 (z - u)^2`` only by
   ``-1/2 min(u, 0)^2``, a function of u alone: same argmin (same closed form, same state step),
   but a different weight step, because it does not pull negative pre-activations up to zero.

Run it with ``python examples/relu_as_argmin.py``; ``relu_as_argmin.png`` (both divergences
over a grid of (u, z), with their argmin) is written to the current directory when matplotlib is
installed.
"""

from pathlib import Path

import numpy as np

import cvx_lifted as cl
from cvx_lifted import kernels
from cvx_lifted.blocks import state_step_problem

rng = np.random.default_rng(0)
# 6 rows (samples) of 5 pre-activations: random values plus the edge cases 0, +-1e-8 and 50
edges = np.array([[0.0, 1e-8, -1e-8, 50.0, -50.0]])
U = np.vstack([2.0 * rng.standard_normal((4, 5)), edges, -edges])


def kernel_argmin(activation, U):
    """The NumPy state-step kernel with the next layer switched off (c = 0).

    ``state_step`` minimises ``a/2 ||Z - U||^2 + c g(Z W^T + b)`` over the box ``lo <= Z <= hi``
    row by row; with ``c = 0`` that is the argmin of the ReLU divergence itself.
    """
    lo, hi = activation.box  # (0, inf) for the ReLU family
    W, b = np.zeros((1, U.shape[1])), np.zeros(1)  # an inert next layer of one unit
    coupling = kernels.L2Coupling(np.zeros((U.shape[0], 1)))
    return kernels.state_step(U, W, b, coupling, a=1.0, c=0.0, lo=lo, hi=hi).value


def side_by_side(name):
    """Solve argmin_z D(u, z) for every row of U three ways and print the differences."""
    activation = cl.get_activation(name)
    argmin = cl.CompiledArgmin(activation, n_features=U.shape[1], batch_size=U.shape[0])
    Z_cvxpy = argmin(U)  # writes U into the Parameter u and solves: no recompilation
    Z_closed = activation.act(U)
    Z_kernel = kernel_argmin(activation, U)
    print(f"{name}: D(u, z) = {activation.divergence_text}, domain {activation.domain_text}")
    print(
        f"  CVXPY program: {argmin.problem.problem.objective}, s.t. "
        f"{', '.join(str(c) for c in argmin.problem.problem.constraints)}"
    )
    print(
        f"  {name}: max |CVXPY - closed form|  = {np.max(np.abs(Z_cvxpy - Z_closed)):.1e} "
        f"({argmin.stats.solver})"
    )
    print(f"  {name}: max |kernel - closed form| = {np.max(np.abs(Z_kernel - Z_closed)):.1e}")
    argmin(-U)  # new inputs, same compiled problem
    stats = argmin.stats
    print(
        f"  compiled once in {stats.compile_seconds * 1e3:.1f} ms, then {stats.n_solves} "
        f"solves at {stats.seconds_per_solve * 1e3:.2f} ms each"
    )
    return activation


print(f"inputs U (rows are samples):\n{np.array2string(U, precision=3, suppress_small=True)}\n")
relu = side_by_side("relu")
print(f"  closed form max(U, 0), first row: {relu.act(U)[0].round(3)}")

# In training the kernel earns its keep: the state step adds the next layer's pull on z,
#   min_{Z >= 0} 1/2 ||Z - U||^2 + 1/2 ||Z W^T + b - T||^2,
# which has no closed form. CVXPY (compiled once) and the kernel still agree.
W, b = rng.standard_normal((3, 5)), rng.standard_normal(3)
T = np.maximum(rng.standard_normal((U.shape[0], 3)), 0.0)  # the next layer's states
step = state_step_problem(relu, relu, U.shape[0], 5, 3, lam_prev=1.0, lam_next=1.0)
Z_cvxpy = step.solve(U=U, W=W, b=b, T=T)["Z"]
result = kernels.state_step(U, W, b, kernels.L2Coupling(T), a=1.0, c=1.0, lo=0.0, tol=1e-12)
Z_kernel = result.value  # result.info: iterations, residual and convergence per row
print(
    "  state step with a next layer (no closed form): "
    f"max |kernel - CVXPY| = {np.max(np.abs(Z_kernel - Z_cvxpy)):.1e}\n"
)
fenchel = side_by_side("relu_fenchel")

# --------------------------------------------------------------------------- D differs by f(u)
print("\nD_relu_fenchel(u, z) - D_relu(u, z) for a few u (rows) and z (columns):")
zs = np.array([0.0, 0.5, 1.0, 3.0])
print("      u " + "".join(f"{'z = ' + str(z):>10}" for z in zs) + "   -min(u,0)^2/2")
for u in (-2.0, -0.5, 0.0, 1.5):
    diffs = [
        fenchel.value([[u]], [[z]]) - relu.value([[u]], [[z]])  # 1x1 arrays: one (u, z) pair
        for z in zs
    ]
    print(
        f"  {u:>5} "
        + "".join(f"{d:>10.3f}" for d in diffs)
        + f"{-0.5 * min(u, 0.0) ** 2 + 0.0:>16.3f}"
    )
print("constant along each row: the two divergences have the same argmin over z. In u they differ:")
print(
    f"  D(-2, 0) = {relu.value([[-2.0]], [[0.0]]):.1f} for relu: its weight step pulls u up to 0;"
)
print(
    f"  D(-2, 0) = {fenchel.value([[-2.0]], [[0.0]]):.1f} for relu_fenchel: any u <= 0 fits z = 0."
)

# --------------------------------------------------------------------------- figure
try:
    from matplotlib.figure import Figure

    from cvx_lifted.plot import plot_divergence_landscape

    fig = Figure(figsize=(12, 4.5), layout="constrained")
    for ax, activation in zip(fig.subplots(1, 2), (relu, fenchel), strict=True):
        plot_divergence_landscape(activation, u_range=(-3, 3), z_range=(-1, 3), ax=ax)
    out = Path.cwd() / "relu_as_argmin.png"
    fig.savefig(out, dpi=120)
    print(f"figure written to {out}")
except ImportError:  # matplotlib is optional
    print('(no figure: matplotlib is missing; pip install "cvx-lifted[plot]")')
