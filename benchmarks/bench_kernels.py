# SPDX-License-Identifier: Apache-2.0
"""Time the NumPy kernels of ``cvx_lifted.kernels`` at MNIST scale, on one BLAS thread.

Each kernel is reported with the median wall time over repeats and its ratio to the GEMM it cannot
avoid:

* state step (m = 60,000, p = 300, q = 10): one ``(m, p) @ (p, q)`` product;
* state step, hidden to hidden (p = q = 300): one ``(m, p) @ (p, p)`` product;
* ridge solve (p = 784, q = 300): the GEMM ``X.T @ T``; ridge build: the SYRK ``X.T @ X``;
* Fenchel–Young ReLU W-step: one ridge solve with the same factor;
* softmax W-step (p = 784, q = 10): one ``(m, p) @ (p, q)`` product;
* simplex kernels (m = 60,000, p = 10): one ``(m, 300) @ (300, 10)`` product (the layer feeding
  them).

Data: Fashion-MNIST pixels in [0, 1] from ``../shared/data`` (or ``$CVX_LIFTED_DATA``); random
uniform pixels when the files are absent. Hidden features are ``relu(X W1^T + b1)`` with a random
``W1``. Usage::

    PYTHONPATH=. python benchmarks/bench_kernels.py            # full sizes (about 15 minutes)
    PYTHONPATH=. python benchmarks/bench_kernels.py --quick    # m / 10
"""

from __future__ import annotations

import argparse
import gzip
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from cvx_lifted.kernels import (
    L2Coupling,
    ReluFenchelCoupling,
    Ridge,
    SoftmaxCoupling,
    project_simplex,
    relu_fenchel_wstep,
    simplex_xent_prox,
    softmax_wstep,
    state_step,
)


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as f:
        data = f.read()
    nd = data[3]
    dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * nd).reshape(dims)


def load_pixels(m: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, str]:
    base = Path(os.environ.get("CVX_LIFTED_DATA", Path(__file__).parents[2] / "shared" / "data"))
    images = base / "fashion-mnist" / "train-images-idx3-ubyte.gz"
    labels = base / "fashion-mnist" / "train-labels-idx1-ubyte.gz"
    if images.exists() and labels.exists():
        X = read_idx(images)[:m].reshape(m, -1) / 255.0
        y = read_idx(labels)[:m].astype(np.int64)
        return X, y, f"Fashion-MNIST ({images.parent})"
    return rng.random((m, 784)), rng.integers(0, 10, m), "random pixels (data files not found)"


def timeit(fn: Callable[[], Any], repeats: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def row(name: str, seconds: float, ref_name: str, ref_seconds: float, extra: str = "") -> None:
    ratio = seconds / ref_seconds if ref_seconds > 0 else float("nan")
    print(f"{name:48s} {seconds:9.3f} s  {ratio:8.1f} x {ref_name:24s} {extra}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="divide every m by 10")
    parser.add_argument("--repeats", type=int, default=3, help="repeats for the fast kernels")
    parser.add_argument("--skip-slow", action="store_true", help="skip the m = 60,000 W-steps")
    args = parser.parse_args()
    div = 10 if args.quick else 1
    rng = np.random.default_rng(0)
    m_big, m_small = 60_000 // div, 10_000 // div
    X_all, y_all, source = load_pixels(m_big, rng)
    reps = args.repeats

    with threadpool_limits(1):
        blas = [
            f"{i['internal_api']} {i['version']} threads={i['num_threads']}"
            for i in threadpool_info()
        ]
        print(f"data: {source}; BLAS: {'; '.join(blas)}; medians over {reps} repeats")
        print(f"{'kernel':48s} {'time':>11s}  {'ratio':>10s} {'to':24s}")

        # ---------------- hidden features, p = 300 ----------------
        p, q = 300, 10
        W1 = rng.normal(size=(p, 784)) / np.sqrt(784) * 3.0
        b1 = 0.1 * rng.normal(size=p)
        P = X_all @ W1.T + b1
        H = np.maximum(P, 0.0)
        U = P + 0.1 * rng.normal(size=P.shape)
        Y = np.eye(q)[y_all]
        W, b = Ridge(H, 1.0).solve(Y)
        t_gemm, _ = timeit(lambda: H @ W.T, reps)
        print(
            f"-- state step, m={m_big}, p={p}, q={q} (||W||_2^2 = {np.linalg.norm(W, 2) ** 2:.2f})"
        )
        row("GEMM (m,p)@(p,q)", t_gemm, "itself", t_gemm)
        for label, cpl in (
            ("L2", L2Coupling(Y)),
            ("ReLU Fenchel-Young", ReluFenchelCoupling(Y)),
            ("softmax", SoftmaxCoupling(Y)),
        ):
            for a, c in ((1.0, 1.0), (1.0, 10.0)):
                for method in ("newton", "fista"):
                    if method == "fista" and (c > 1.0 or label != "L2"):
                        continue  # slow and not the default; one line shows the gap
                    t, result = timeit(
                        lambda cpl=cpl, a=a, c=c, method=method: state_step(
                            U, W, b, cpl, a, c, 0.0, np.inf, method=method
                        ),
                        reps if method == "newton" else 1,
                    )
                    info = result.info
                    extra = (
                        f"iters mean {info['n_iter'].mean():.1f} max {info['n_iter'].max()}, "
                        f"converged {info['converged'].mean():.4f}"
                    )
                    row(
                        f"state_step {label} a={a:g} c={c:g} {method}",
                        t,
                        "GEMM (m,p)@(p,q)",
                        t_gemm,
                        extra,
                    )

        # ---------------- simplex kernels on the q = 10 outputs ----------------
        V = H @ W.T + b
        print(f"-- simplex kernels, m={m_big}, p={q}")
        t, _ = timeit(lambda: project_simplex(V), reps)
        row("project_simplex", t, "GEMM (m,300)@(300,10)", t_gemm)
        for lam in (0.1, 1.0, 10.0):
            t, result = timeit(lambda lam=lam: simplex_xent_prox(V, Y, lam), reps)
            info = result.info
            extra = (
                f"newton iters mean {info['n_iter'].mean():.2f} max {info['n_iter'].max()}, "
                f"max |1'z-1| {info['residual'].max():.1e}"
            )
            row(f"simplex_xent_prox lam={lam:g}", t, "GEMM (m,300)@(300,10)", t_gemm, extra)

        # ---------------- hidden to hidden, p = q = 300 ----------------
        m_h = m_small
        W2 = rng.normal(size=(p, p)) / np.sqrt(p) * 2.0
        b2 = 0.1 * rng.normal(size=p)
        T2 = np.maximum(H[:m_h] @ W2.T + b2, 0.0)
        t_gemm2, _ = timeit(lambda: H[:m_h] @ W2.T, reps)
        print(
            f"-- state step hidden-to-hidden, m={m_h}, p=q={p} "
            f"(||W||_2^2 = {np.linalg.norm(W2, 2) ** 2:.1f})"
        )
        row("GEMM (m,p)@(p,p)", t_gemm2, "itself", t_gemm2)
        for label, cpl in (
            ("L2 (fista, shared H)", L2Coupling(T2)),
            ("ReLU Fenchel-Young (fista)", ReluFenchelCoupling(T2)),
        ):
            t, result = timeit(
                lambda cpl=cpl: state_step(U[:m_h], W2, b2, cpl, 1.0, 1.0, 0.0, np.inf), 1
            )
            info = result.info
            extra = (
                f"iters mean {info['n_iter'].mean():.1f} max {info['n_iter'].max()}, "
                f"method {info['method']}"
            )
            row(f"state_step {label}", t, "GEMM (m,p)@(p,p)", t_gemm2, extra)

        # ---------------- W-steps, p = 784 ----------------
        qh = 300
        Wt = rng.normal(size=(qh, 784)) / np.sqrt(784) * 3.0
        bt = 0.5 * rng.normal(size=qh)
        for m in (m_small, m_big):
            if m == m_big and args.skip_slow:
                continue
            X = X_all[:m]
            T = np.maximum(X @ Wt.T + bt + 0.3 * rng.normal(size=(m, qh)), 0.0)
            print(f"-- W-steps, m={m}, p=784, q={qh} (softmax: q=10)")
            t_xtt, _ = timeit(lambda X=X, T=T: X.T @ T, reps)
            t_syrk, _ = timeit(lambda X=X: X.T @ X, reps)
            t_build, ridge = timeit(lambda X=X: Ridge(X, 1.0), reps)
            t_solve, (W0, b0) = timeit(lambda ridge=ridge, T=T: ridge.solve(T), reps)
            row("GEMM X^T T", t_xtt, "itself", t_xtt)
            row("Ridge(X, alpha) (Gram + Cholesky)", t_build, "SYRK X^T X", t_syrk)
            row("Ridge.solve(T)", t_solve, "GEMM X^T T", t_xtt)
            for method, tol in (("lbfgs", 1e-3), ("lbfgs", 1e-4), ("amm", 1e-3), ("amm", 1e-4)):
                if m == m_big and (tol < 1e-3 or method == "amm"):
                    continue
                t, result = timeit(
                    lambda X=X, T=T, ridge=ridge, W0=W0, b0=b0, tol=tol, method=method: (
                        relu_fenchel_wstep(X, T, 1.0, W0, b0, ridge=ridge, tol=tol, method=method)
                    ),
                    1,
                )
                info = result.info
                extra = (
                    f"iters {info['n_iter']}, rel. grad {info['grad_norm']:.1e} (ridge warm start)"
                )
                row(f"relu_fenchel_wstep {method} tol={tol:g}", t, "Ridge.solve", t_solve, extra)
            Ys = np.eye(10)[y_all[:m]]
            t_g10, _ = timeit(lambda X=X: X @ np.ones((784, 10)), reps)
            t, result = timeit(
                lambda X=X, Ys=Ys, ridge=ridge: softmax_wstep(
                    X, Ys, 1.0, np.zeros((10, 784)), np.zeros(10), tol=1e-4, ridge=ridge
                ),
                1,
            )
            info = result.info
            extra = f"L-BFGS iters {info['n_iter']}, evals {info['n_eval']} (cold start, tol 1e-4)"
            row("softmax_wstep (preconditioned)", t, "GEMM (m,p)@(p,10)", t_g10, extra)


if __name__ == "__main__":
    main()
