# SPDX-License-Identifier: Apache-2.0
r"""Per-sample cost of the ReLU state (X-) step: NumPy kernel vs compiled CVXPY problem.

The block, for every row :math:`i` (rows are samples),

.. math::

    \min_{z \ge 0}\ \tfrac{\lambda_p}{2}\|z - u_i\|^2
        + \tfrac{\lambda_n}{2}\|W z + b - t_i\|^2,

with :math:`p` = ``--width`` (100) hidden units and :math:`q` = ``--next-width`` (10) next units
(ReLU layer followed by an :math:`\ell_2`-coupled layer: ``L2Coupling``), solved

* by the fast kernel ``cvx_lifted.kernels.state_step`` on ``--rows`` rows (60,000), in chunks
  of ``--chunk-size`` rows as ``BCDSolver`` does, warm started from ``relu(U)``;
* by ``cvx_lifted.blocks.state_step_problem`` compiled once per batch size (1, 16 and 64) and
  re-solved batch after batch on the first ``--cvxpy-rows`` rows (512) of the same inputs, as
  ``BCDSolver``'s generic path does (one warm-up pass is not timed; compile time is reported
  apart).

Interleaved rounds (order rotated); reported: µs per row (medians), the ratio CVXPY / kernel
per row (median of per-round ratios; target >= 100), the max absolute difference between
the two answers on the shared rows and the objective gap (positive: the kernel is lower).

Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_state_step.py --quick
    PYTHONPATH=. python benchmarks/bench_state_step.py

Writes ``benchmarks/results/bench_state_step.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
from _common import (
    fmt_table,
    machine_info,
    median,
    pin_threads,
    timed,
    verdict,
    write_json,
)

TARGET = 100.0


def make_inputs(
    rows: int, p: int, q: int, seed: int, w_scale: float, dtype: Any = np.float64
) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    limit = w_scale * np.sqrt(6.0 / (p + q))
    return {
        "U": rng.standard_normal((rows, p)).astype(dtype),
        "W": rng.uniform(-limit, limit, (q, p)).astype(dtype),
        "b": (0.1 * rng.standard_normal(q)).astype(dtype),
        "T": np.maximum(rng.standard_normal((rows, q)), 0.0).astype(dtype),
    }


def objective(
    Z: np.ndarray, d: dict[str, np.ndarray], lam_prev: float, lam_next: float, rows: slice
) -> np.ndarray:
    """Per-row objective of the block."""
    U, T = d["U"][rows], d["T"][rows]
    R = Z @ d["W"].T + d["b"] - T
    return 0.5 * lam_prev * np.sum((Z - U) ** 2, axis=1) + 0.5 * lam_next * np.sum(R**2, axis=1)


def run_kernel(
    d: dict[str, np.ndarray], lam_prev: float, lam_next: float, chunk: int, tol: float
) -> tuple[np.ndarray, dict[str, float]]:
    """The fast state step over all rows, chunked like ``BCDSolver._state_step``."""
    from cvx_lifted import kernels

    U, W, b, T = d["U"], d["W"], d["b"], d["T"]
    out = np.empty_like(U)
    iters, resid, method = 0.0, 0.0, None
    for s in range(0, U.shape[0], chunk):
        rows = slice(s, s + chunk)
        Z0 = np.maximum(U[rows], 0)
        result = kernels.state_step(
            U[rows], W, b, kernels.L2Coupling(T[rows]), lam_prev, lam_next, 0.0, np.inf, Z0=Z0,
            tol=tol,
        )  # fmt: skip
        out[rows] = result.value
        info = _numeric(result.info)
        iters = max(iters, info.get("n_iter", info.get("iterations", 0.0)))
        resid = max(resid, info.get("residual", 0.0))
        method = info.get("method", method)
    return out, {"iterations": iters, "residual": resid, "method": method}


def _numeric(info: Any) -> dict[str, Any]:
    """Max over rows of the numeric entries of a kernel's info (strings kept as they are)."""
    if info is None:
        return {}
    items = info._asdict().items() if hasattr(info, "_asdict") else dict(info).items()
    out: dict[str, Any] = {}
    for k, v in items:
        if isinstance(v, str):
            out[k] = v
            continue
        a = np.asarray(v)
        if a.dtype.kind in "biuf" and a.size:
            out[k] = float(np.max(a))
    return out


def build_cvxpy(batch: int, p: int, q: int, lam_prev: float, lam_next: float) -> Any:
    from cvx_lifted import get_activation
    from cvx_lifted.blocks import state_step_problem

    relu = get_activation("relu")
    return state_step_problem(
        relu, relu, batch, p, q, lam_prev, lam_next, what=f"bench state step B={batch}"
    )


def run_cvxpy(prob: Any, d: dict[str, np.ndarray], rows: int, batch: int) -> np.ndarray:
    """Batch after batch, as ``BCDSolver._state_step`` does on the generic path."""
    from cvx_lifted import get_activation

    U, W, b, T = d["U"][:rows], d["W"], d["b"], d["T"][:rows]
    out = np.empty_like(U)
    for s in range(0, rows, batch):
        n = min(batch, rows - s)
        Ub, Tb = U[s : s + n], T[s : s + n]
        if n < batch:
            Ub = np.vstack([Ub, np.repeat(Ub[-1:], batch - n, axis=0)])
            Tb = np.vstack([Tb, np.repeat(Tb[-1:], batch - n, axis=0)])
        out[s : s + n] = prob.solve(U=Ub, W=W, b=b, T=Tb)["Z"][:n]
    return get_activation("relu").repair(U, out)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--quick",
        action="store_true",
        help="kernel on 10,000 rows, CVXPY on 64 rows, 2 rounds (< 1 min)",
    )
    p.add_argument("--rows", type=int, default=None, help="kernel rows (default 60000)")
    p.add_argument("--cvxpy-rows", type=int, default=None, help="CVXPY rows (default 512)")
    p.add_argument(
        "--batches", type=int, nargs="+", default=[1, 16, 64], help="CVXPY batch sizes (1 16 64)"
    )
    p.add_argument("--width", type=int, default=100, help="hidden width p (default 100)")
    p.add_argument("--next-width", type=int, default=10, help="next width q (default 10)")
    p.add_argument("--lam-prev", type=float, default=1.0)
    p.add_argument("--lam-next", type=float, default=1.0)
    p.add_argument(
        "--w-scale",
        type=float,
        default=1.0,
        help="W is w_scale times Xavier-uniform (conditioning of the block)",
    )
    p.add_argument("--tol", type=float, default=1e-8, help="kernel tolerance (BCD default 1e-8)")
    p.add_argument("--chunk-size", type=int, default=8192, help="kernel rows per call")
    p.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    p.add_argument("--out", default=None, help="results JSON (default benchmarks/results/...)")
    args = p.parse_args(argv)
    rows = args.rows or (10_000 if args.quick else 60_000)
    crows = args.cvxpy_rows or (64 if args.quick else 512)
    rounds = args.rounds or (2 if args.quick else 5)
    if crows > rows:
        raise SystemExit("--cvxpy-rows must not exceed --rows (the rows are shared).")
    pw, qw, lp, ln = args.width, args.next_width, args.lam_prev, args.lam_next
    machine = machine_info()
    t_total = time.perf_counter()
    d = make_inputs(rows, pw, qw, args.seed, args.w_scale)

    with pin_threads(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        compiled: dict[int, Any] = {}
        compile_seconds: dict[int, float] = {}
        first_pass: dict[int, float] = {}
        answers: dict[int, np.ndarray] = {}
        for B in args.batches:
            compile_seconds[B], compiled[B] = timed(lambda B=B: build_cvxpy(B, pw, qw, lp, ln))
            first_pass[B], answers[B] = timed(lambda B=B: run_cvxpy(compiled[B], d, crows, B))
            print(
                f"  CVXPY B={B}: compile {compile_seconds[B]:.2f}s, first pass "
                f"{first_pass[B] * 1e6 / crows:.0f} µs/row, solver {compiled[B].stats.solver}",
                flush=True,
            )
        run_kernel(d, lp, ln, args.chunk_size, args.tol)  # warm-up (imports, allocations)

        times: dict[str, list[float]] = {"kernel": [], **{f"cvxpy_B{B}": [] for B in args.batches}}
        kinfo: dict[str, float] = {}
        Zk = None
        tasks = ["kernel", *[f"cvxpy_B{B}" for B in args.batches]]
        for r in range(rounds):
            order = tasks[r % len(tasks) :] + tasks[: r % len(tasks)]
            for task in order:
                if task == "kernel":
                    t, (Zk, kinfo) = timed(lambda: run_kernel(d, lp, ln, args.chunk_size, args.tol))
                    times[task].append(t / rows)
                else:
                    B = int(task.split("B")[1])
                    t, answers[B] = timed(lambda B=B: run_cvxpy(compiled[B], d, crows, B))
                    times[task].append(t / crows)
            print(
                f"  round {r}: "
                + ", ".join(f"{k} {v[-1] * 1e6:.1f} µs/row" for k, v in times.items()),
                flush=True,
            )

    assert Zk is not None
    shared = slice(0, crows)
    f_kernel = objective(Zk[shared], d, lp, ln, shared)
    results = []
    for B in args.batches:
        key = f"cvxpy_B{B}"
        ratios = [c / k for c, k in zip(times[key], times["kernel"], strict=True)]
        f_cvx = objective(answers[B], d, lp, ln, shared)
        results.append(
            {
                "batch_size": B,
                "compile_seconds": compile_seconds[B],
                "first_pass_us_per_row": first_pass[B] * 1e6 / crows,
                "solver": compiled[B].stats.solver,
                "fallbacks": [list(f) for f in compiled[B].stats.fallbacks],
                "cvxpy_us_per_row": [t * 1e6 for t in times[key]],
                "median_cvxpy_us_per_row": median(times[key]) * 1e6,
                "ratio_per_round": ratios,
                "median_ratio": median(ratios),
                "max_abs_diff": float(np.max(np.abs(Zk[shared] - answers[B]))),
                "max_rel_diff": float(
                    np.max(np.abs(Zk[shared] - answers[B]))
                    / max(1.0, float(np.max(np.abs(Zk[shared]))))
                ),
                "objective_gap_max": float(np.max(f_cvx - f_kernel)),
                "objective_gap_min": float(np.min(f_cvx - f_kernel)),
                "objective_rel_gap_max": float(
                    np.max((f_cvx - f_kernel) / np.maximum(f_kernel, 1e-300))
                ),
            }
        )
    kernel_us = median(times["kernel"]) * 1e6

    print()
    print(
        f"bench_state_step: ReLU state step, p={pw}, q={qw}, lam=({lp}, {ln}), "
        f"kernel on {rows} rows (chunks of {args.chunk_size}, tol {args.tol:g}), CVXPY on "
        f"{crows} rows, {args.threads} thread(s), medians over {rounds} rounds"
    )
    headers = [
        "CVXPY batch",
        "solver",
        "compile s",
        "CVXPY µs/row",
        "kernel µs/row",
        "CVXPY/kernel",
        f"≥{TARGET:g}x",
        "max |ΔZ|",
        "obj gap max (cvx-kern)",
        "obj gap min",
    ]
    print(
        fmt_table(
            headers,
            [
                [
                    r["batch_size"],
                    r["solver"],
                    r["compile_seconds"],
                    r["median_cvxpy_us_per_row"],
                    kernel_us,
                    r["median_ratio"],
                    verdict(r["median_ratio"] >= TARGET),
                    r["max_abs_diff"],
                    r["objective_gap_max"],
                    r["objective_gap_min"],
                ]
                for r in results
            ],
        )
    )
    print(
        f"kernel: method {kinfo.get('method')}, max iterations over rows "
        f"{kinfo.get('iterations', float('nan')):.0f}, max residual "
        f"{kinfo.get('residual', float('nan')):.2e}"
    )

    payload = {
        "benchmark": "bench_state_step",
        "mode": "quick" if args.quick else "full",
        "args": vars(args),
        "rows": rows,
        "cvxpy_rows": crows,
        "rounds": rounds,
        "target": {"kernel_speedup_per_row_at_least": TARGET},
        "kernel_us_per_row": [t * 1e6 for t in times["kernel"]],
        "median_kernel_us_per_row": kernel_us,
        "kernel_info": kinfo,
        "results": results,
        "total_seconds": time.perf_counter() - t_total,
        "machine": machine,
    }
    path = write_json("bench_state_step", payload, args.out)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
