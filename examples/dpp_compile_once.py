# SPDX-License-Identifier: Apache-2.0
"""
Compile once, re-solve many times (DPP)
=======================================

What DPP is and why lifted training depends on it.

What this example teaches
-------------------------
1. The DPP rule (disciplined parametrized programming): CVXPY can compile a problem *once* and
   afterwards only copy new ``Parameter`` values into the solver's data when every parameter
   enters the problem affinely, and a product has at most one parameter-dependent factor
   (``param * variable`` is fine, ``param * f(param, variable)`` is not).
2. A DPP-compliant argmin problem: ReLU as ``argmin_z 1/2 ||z - u||^2  s.t. z >= 0`` with ``u``
   a Parameter, compiled once with :class:`cvx_lifted.CompiledProblem`.
3. A counter-example, ``lam * sum_squares(z - u)`` with ``lam`` a Parameter: convex (DCP) but not
   DPP, and the error cvx_lifted raises for it.
4. The rewrite that restores DPP: ``sum_squares(s * z - su)`` with ``s = sqrt(lam)`` and
   ``su = sqrt(lam) * u`` computed in NumPy and passed as Parameters.
5. A timing plot: re-solving the compiled problem vs building a new ``cp.Problem`` for every
   solve, for growing batch sizes (BLAS pinned to one thread, medians of a few repeats).

Run it with ``python examples/dpp_compile_once.py``; the figure ``dpp_compile_once.png`` is
written to the current directory (skipped, with a note, when matplotlib is missing).
"""

import time
import warnings
from pathlib import Path

import cvxpy as cp
import numpy as np
from threadpoolctl import threadpool_limits

import cvx_lifted as cl
from cvx_lifted.compile import SOLVER_SETTINGS

rng = np.random.default_rng(0)
n = 8  # features per row

# --------------------------------------------------------------------------- 1. the rule
print("1. The DPP rule")
print(
    "   A problem is DPP when it is DCP treating every Parameter as an affine expression,\n"
    "   and each product has at most one parameter-dependent factor. Then CVXPY compiles it\n"
    "   once; later solves only write Parameter.value into the solver's data.\n"
)

# --------------------------------------------------------------------------- 2. DPP argmin
print("2. A DPP-compliant argmin problem: relu(u) = argmin_{z >= 0} 1/2 ||z - u||^2")
u = cp.Parameter((1, n), name="u")
z = cp.Variable((1, n), name="z")
objective = 0.5 * cp.sum_squares(z - u)  # u enters affinely: DPP
problem = cp.Problem(cp.Minimize(objective), [z >= 0])
print(f"   is_dcp: {problem.is_dcp()}, is_dpp: {problem.is_dpp()}")
relu_argmin = cl.CompiledProblem(objective, [z >= 0], {"u": u}, {"z": z}, what="relu argmin")
u_value = rng.standard_normal((1, n))
z_value = relu_argmin.solve(u=u_value)["z"]
error = np.max(np.abs(z_value - np.maximum(u_value, 0)))
print(
    f"   compiled in {relu_argmin.stats.compile_seconds * 1e3:.1f} ms (once); "
    f"max |z - max(u, 0)| = {error:.1e}\n"
)

# --------------------------------------------------------------------------- 3. not DPP
print("3. Counter-example: weight the divergence by a Parameter lam")
print("   argmin_{z >= 0} lam * 1/2 ||z - u||^2 + 1/2 ||z - t||^2   (lam, u, t Parameters)")
lam = cp.Parameter(nonneg=True, name="lam")
t = cp.Parameter((1, n), name="t")
not_dpp = lam * 0.5 * cp.sum_squares(z - u) + 0.5 * cp.sum_squares(z - t)
prob = cp.Problem(cp.Minimize(not_dpp), [z >= 0])
print(
    f"   is_dcp: {prob.is_dcp()}, is_dpp: {prob.is_dpp()}  "
    "(lam multiplies a term that depends on the parameter u)"
)
try:
    cl.CompiledProblem(
        not_dpp, [z >= 0], {"lam": lam, "u": u, "t": t}, {"z": z}, what="weighted argmin"
    )
except cl.NotDPPError as exc:
    print(f"   cvx_lifted.NotDPPError: {exc}\n")

# --------------------------------------------------------------------------- 4. rewrite
print("4. The rewrite: lam * ||z - u||^2 = ||s z - s u||^2 with s = sqrt(lam)")
s = cp.Parameter(nonneg=True, name="s")  # s = sqrt(lam), computed in NumPy
su = cp.Parameter((1, n), name="su")  # su = sqrt(lam) * u, computed in NumPy
dpp = 0.5 * cp.sum_squares(s * z - su) + 0.5 * cp.sum_squares(z - t)  # s * z: param * variable
weighted = cl.CompiledProblem(
    dpp, [z >= 0], {"s": s, "su": su, "t": t}, {"z": z}, what="weighted argmin, rewritten"
)
t_value = rng.standard_normal((1, n))
for lam_value in (0.1, 1.0, 10.0):
    z_value = weighted.solve(s=np.sqrt(lam_value), su=np.sqrt(lam_value) * u_value, t=t_value)["z"]
    exact = np.maximum((lam_value * u_value + t_value) / (lam_value + 1.0), 0.0)
    print(
        f"   lam = {lam_value:>4}: max |z - max((lam u + t)/(lam + 1), 0)| = "
        f"{np.max(np.abs(z_value - exact)):.1e}"
    )
print(
    f"   one compile ({weighted.stats.compile_seconds * 1e3:.1f} ms) served "
    f"{weighted.stats.n_solves} solves with different lam\n"
)

# --------------------------------------------------------------------------- 5. timing
print("5. Re-solve a compiled problem vs rebuild it, ReLU argmin of a batch of rows")
osqp_options = SOLVER_SETTINGS["default"]["OSQP"]  # the same settings for both


def rebuild_and_solve(U):
    """What a training loop without DPP does: build, canonicalise and solve a new problem."""
    Z = cp.Variable(U.shape)
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(Z - U)), [Z >= 0])
    problem.solve(solver="OSQP", **osqp_options)
    return Z.value


def median_seconds(fn, shape, repeats):
    """Median wall time of ``fn(U)`` over fresh random inputs of the given shape."""
    times = []
    for _ in range(repeats):
        U = 3.0 * rng.standard_normal(shape)
        start = time.perf_counter()
        fn(U)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


batch_sizes = [1, 4, 16, 64, 256]
resolve, rebuild, compile_once = [], [], []
print(f"   {'batch':>5} {'compile ms':>10} {'re-solve ms':>11} {'rebuild ms':>10} {'ratio':>6}")
with threadpool_limits(1), warnings.catch_warnings():  # one BLAS thread: no oversubscription
    warnings.simplefilter("ignore", UserWarning)
    for batch in batch_sizes:
        shape = (batch, n)
        argmin = cl.CompiledArgmin("relu", n_features=n, batch_size=batch)  # compiled here, once
        argmin(3.0 * rng.standard_normal(shape))  # first solve: factorisation, warm-up
        resolve.append(median_seconds(argmin, shape, repeats=7))
        rebuild.append(median_seconds(rebuild_and_solve, shape, repeats=5))
        compile_once.append(argmin.stats.compile_seconds)
        print(
            f"   {batch:>5} {compile_once[-1] * 1e3:>10.1f} {resolve[-1] * 1e3:>11.2f} "
            f"{rebuild[-1] * 1e3:>10.2f} {rebuild[-1] / resolve[-1]:>5.1f}x"
        )
ratios = np.array(rebuild) / np.array(resolve)
print(
    f"rebuild / re-solve ratio: {ratios.min():.1f}x to {ratios.max():.1f}x "
    f"(median {np.median(ratios):.1f}x)"
)

try:
    from cvx_lifted.plot import plot_resolve_timing

    out = Path.cwd() / "dpp_compile_once.png"
    plot_resolve_timing(batch_sizes, resolve, rebuild, compile_seconds=compile_once, path=out)
    print(f"figure written to {out}")
except ImportError:  # matplotlib is optional
    print('(no figure: matplotlib is missing; pip install "cvx-lifted[plot]")')
