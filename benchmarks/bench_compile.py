# SPDX-License-Identifier: Apache-2.0
"""Re-solving compiled problems vs rebuilding them: argmin problems and the ReLU state step.

**Part 1, argmin problems.** For every activation of ``cvx_lifted.ACTIVATIONS`` whose class has
a convex program (``has_program``) and every batch size B (default 1), three ways of computing
``phi(U)`` for a new ``(B, n)`` input are timed, interleaved round by round (the order rotates):

(a) **rebuild**: a fresh ``cp.Problem`` of the argmin, with ``U`` as constant data (no DPP), and
    one ``solve`` with the solver and settings the compiled problem uses: the cheapest way to
    solve it without compiling once;
(b) **rebuild, compiled**: a fresh ``CompiledArgmin(act, n, B)`` (build, DCP/DPP checks,
    canonicalisation) and its first solve (through CVXPY, plus setting up and checking the
    direct solver adapter);
(c) **re-solve**: ``inst(U)`` on one ``CompiledArgmin`` compiled and solved before the rounds
    (a direct solver call: parameter values mapped to solver data, no CVXPY work).

Reported: median seconds of (a), (b), (c); the compile part of (b) (``stats.compile_seconds``);
µs per row of (c); the ratios (a)/(c) and (b)/(c) (medians of per-round ratios) and the solver.
Target: re-solve >= 20x faster than (a) at B = 1.

**Part 2, the ReLU state step** (``state_step_problem(relu, relu, B, p, q, 1, 1)``, p = 100
hidden units, q = 10 next-layer units; inputs as in ``bench_state_step.py``), compiled once per
B in (1, 16) and re-solved on ``--rows`` rows (64) per round, padded like ``BCDSolver``:

* **direct, solve loop**: ``prob.solve(U=..., W=W, b=b, T=...)`` batch after batch;
* **direct, solve_many**: one ``prob.solve_many(batches, W=W, b=b)`` call for all the rows;
* **CVXPY path**: the same loop on an instance with ``fast_path=False`` (``Problem.solve`` on
  every batch: the cost before the direct path).

Reported: µs per row (medians over rounds), the ratio CVXPY path / direct loop (median of
per-round ratios) and the largest difference between the direct and the CVXPY answers. Target:
the direct loop at B = 1 takes <= 150 µs per row.

Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_compile.py --quick
    PYTHONPATH=. python benchmarks/bench_compile.py

Writes ``benchmarks/results/bench_compile.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import time
import warnings
from typing import Any

import numpy as np
from _common import fmt_table, machine_info, median, pin_threads, timed, verdict, write_json

TARGET = 20.0  # re-solve vs rebuild at B = 1
STATE_TARGET_US = 150.0  # direct state-step re-solve, µs per row at B = 1


def program_activations() -> list[str]:
    import cvx_lifted

    return [
        name for name, cls in cvx_lifted.ACTIVATIONS.items() if getattr(cls, "has_program", False)
    ]


# ---------------------------------------------------------------------------- part 1
def _plain_rebuild(act: Any, U: np.ndarray, solver: str) -> np.ndarray:
    """A fresh ``cp.Problem`` of the argmin with ``U`` as data, solved once."""
    import cvxpy as cp

    from cvx_lifted.compile import SOLVER_SETTINGS, drop_constant_terms

    z = cp.Variable((U.shape[0], act.output_size(U.shape[1])))
    problem = cp.Problem(cp.Minimize(drop_constant_terms(act.divergence(U, z))), act.domain(U, z))
    # OSQP prints "Polishing not needed" on every polished solve (osqp/osqp#785)
    with contextlib.redirect_stdout(io.StringIO()):
        problem.solve(solver=solver, **SOLVER_SETTINGS["default"].get(solver, {}))
    if z.value is None:
        raise RuntimeError(f"rebuild of {act.name!r} with {solver}: {problem.status}")
    return np.asarray(z.value)


def _compiled_rebuild(act: Any, n: int, batch: int, U: np.ndarray) -> Any:
    from cvx_lifted import CompiledArgmin

    fresh = CompiledArgmin(act, n, batch)
    fresh(U)
    return fresh


def bench_config(
    act_name: str,
    batch: int,
    n_features: int,
    *,
    rounds: int,
    min_rounds: int,
    budget: float,
    scale: float,
    rng: np.random.Generator,
) -> dict[str, Any]:
    from cvx_lifted import CompiledArgmin, get_activation

    act = get_activation(act_name)

    def draw() -> np.ndarray:
        return scale * rng.standard_normal((batch, n_features))

    # the instance that is re-solved: compile + first solve (CVXPY) + one direct solve, outside
    # the rounds
    t_build, inst = timed(lambda: CompiledArgmin(act, n_features, batch))
    t_cold, _ = timed(lambda: inst(draw()))
    inst(draw())
    solver = str(inst.stats.solver)
    # untimed first uses of this problem shape (CVXPY caches, imports)
    _compiled_rebuild(act, n_features, batch, draw())
    _plain_rebuild(act, draw(), solver)

    times: dict[str, list[float]] = {"plain": [], "compiled": [], "resolve": []}
    compile_part: list[float] = []
    diffs: list[float] = []
    t_start = time.perf_counter()
    for r in range(rounds):
        U = draw()
        out: dict[str, Any] = {}

        def run(task: str, U: np.ndarray = U, out: dict[str, Any] = out) -> None:
            if task == "plain":
                t, out["plain"] = timed(lambda: _plain_rebuild(act, U, solver))
            elif task == "compiled":
                t, fresh = timed(lambda: _compiled_rebuild(act, n_features, batch, U))
                compile_part.append(fresh.stats.compile_seconds)
            else:
                t, out["resolve"] = timed(lambda: inst(U))
            times[task].append(t)

        tasks = ["plain", "compiled", "resolve"]
        for task in tasks[r % 3 :] + tasks[: r % 3]:
            run(task)
        diffs.append(float(np.max(np.abs(out["plain"] - out["resolve"]))))
        if r + 1 >= min_rounds and time.perf_counter() - t_start > budget:
            break
    ratio_plain = [a / c for a, c in zip(times["plain"], times["resolve"], strict=True)]
    ratio_compiled = [b / c for b, c in zip(times["compiled"], times["resolve"], strict=True)]
    return {
        "activation": act_name,
        "batch_size": batch,
        "n_features": n_features,
        "output_size": int(act.output_size(n_features)),
        "solver": solver,
        "problem_class": inst.problem.problem_class,
        "direct_solves": inst.stats.n_direct,
        "cvxpy_path": dict(inst.stats.cvxpy_path),
        "first_build_seconds": t_build,
        "first_cold_solve_seconds": t_cold,
        "rounds": len(times["resolve"]),
        "rebuild_seconds": times["plain"],
        "rebuild_compiled_seconds": times["compiled"],
        "rebuild_compiled_compile_seconds": compile_part,
        "resolve_seconds": times["resolve"],
        "ratio_per_round": ratio_plain,
        "ratio_compiled_per_round": ratio_compiled,
        "median_rebuild": median(times["plain"]),
        "median_rebuild_compiled": median(times["compiled"]),
        "median_rebuild_compiled_compile": median(compile_part),
        "median_resolve": median(times["resolve"]),
        "median_ratio": median(ratio_plain),
        "median_ratio_compiled": median(ratio_compiled),
        "max_abs_diff_vs_rebuild": max(diffs),
        "fallbacks": [list(f) for f in inst.stats.fallbacks],
    }


# ---------------------------------------------------------------------------- part 2
def _state_inputs(rows: int, p: int, q: int, seed: int) -> dict[str, np.ndarray]:
    """Inputs of ``bench_state_step.py``: U ~ N(0, 1), W Xavier-uniform, T = max(N(0, 1), 0)."""
    rng = np.random.default_rng(seed)
    limit = np.sqrt(6.0 / (p + q))
    return {
        "U": rng.standard_normal((rows, p)),
        "W": rng.uniform(-limit, limit, (q, p)),
        "b": 0.1 * rng.standard_normal(q),
        "T": np.maximum(rng.standard_normal((rows, q)), 0.0),
    }


def _batches(d: dict[str, np.ndarray], rows: int, batch: int) -> list[dict[str, np.ndarray]]:
    """Row batches of U and T, the last one padded by repeating its last row (as BCDSolver)."""
    out = []
    for s in range(0, rows, batch):
        n = min(batch, rows - s)
        Ub, Tb = d["U"][s : s + n], d["T"][s : s + n]
        if n < batch:
            Ub = np.vstack([Ub, np.repeat(Ub[-1:], batch - n, axis=0)])
            Tb = np.vstack([Tb, np.repeat(Tb[-1:], batch - n, axis=0)])
        out.append({"U": Ub, "T": Tb})
    return out


def bench_state_step(
    batch: int, p: int, q: int, rows: int, rounds: int, seed: int
) -> dict[str, Any]:
    from cvx_lifted import get_activation
    from cvx_lifted.blocks import state_step_problem

    relu = get_activation("relu")
    d = _state_inputs(rows, p, q, seed)
    W, b = d["W"], d["b"]
    blocks = _batches(d, rows, batch)

    def build(fast: bool) -> Any:
        prob = state_step_problem(relu, relu, batch, p, q, 1.0, 1.0, what=f"state step B={batch}")
        prob.fast_path = fast
        return prob

    t_compile, fast = timed(lambda: build(True))
    slow = build(False)

    def loop(prob: Any) -> np.ndarray:
        return np.concatenate([prob.solve(W=W, b=b, **blk)["Z"] for blk in blocks])[:rows]

    def many(prob: Any) -> np.ndarray:
        return np.concatenate([s["Z"] for s in prob.solve_many(blocks, W=W, b=b)])[:rows]

    t_first, _ = timed(lambda: loop(fast))  # first pass: CVXPY once, then direct calls
    loop(slow)
    times: dict[str, list[float]] = {"direct": [], "direct_many": [], "cvxpy": []}
    answers: dict[str, np.ndarray] = {}
    tasks = list(times)
    funcs = {
        "direct": lambda: loop(fast),
        "direct_many": lambda: many(fast),
        "cvxpy": lambda: loop(slow),
    }
    for r in range(rounds):
        for task in tasks[r % 3 :] + tasks[: r % 3]:
            t, answers[task] = timed(funcs[task])
            times[task].append(t / rows)
    ratios = [c / a for c, a in zip(times["cvxpy"], times["direct"], strict=True)]
    return {
        "batch_size": batch,
        "width": p,
        "next_width": q,
        "rows_per_round": rows,
        "rounds": rounds,
        "compile_seconds": t_compile,
        "first_pass_us_per_row": t_first * 1e6 / rows,
        "solver": fast.stats.solver,
        "direct_solves": fast.stats.n_direct,
        "cvxpy_path": dict(fast.stats.cvxpy_path),
        "fallbacks": [list(f) for f in fast.stats.fallbacks],
        "us_per_row": {k: [t * 1e6 for t in v] for k, v in times.items()},
        "median_us_per_row": {k: median(v) * 1e6 for k, v in times.items()},
        "ratio_cvxpy_over_direct_per_round": ratios,
        "median_ratio_cvxpy_over_direct": median(ratios),
        "max_abs_diff_direct_vs_cvxpy": float(np.max(np.abs(answers["direct"] - answers["cvxpy"]))),
        "max_abs_diff_many_vs_loop": float(
            np.max(np.abs(answers["direct_many"] - answers["direct"]))
        ),
    }


# ---------------------------------------------------------------------------- main
def _relative_paths(machine: dict[str, Any]) -> dict[str, Any]:
    """Keep only the file names of the BLAS libraries (no absolute paths in the results)."""
    import os

    for pool in machine.get("threadpools") or []:
        if isinstance(pool, dict) and pool.get("filepath"):
            pool["filepath"] = os.path.basename(str(pool["filepath"]))
    return machine


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Full mode takes about a minute on an idle machine.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="3 rounds, 1 s budget per activation, 2 state-step rounds (< 1 min)",
    )
    p.add_argument(
        "--batches",
        type=int,
        nargs="+",
        default=[1],
        help="argmin batch sizes (default 1; the target is stated at B = 1)",
    )
    p.add_argument("--n-features", type=int, default=10, help="width n of the inputs (default 10)")
    p.add_argument(
        "--activations",
        nargs="+",
        default=None,
        help="activation names (default: every catalogue entry with has_program)",
    )
    p.add_argument(
        "--rounds",
        type=int,
        default=None,
        help="max interleaved rounds per argmin configuration (default 21; quick: 3)",
    )
    p.add_argument(
        "--min-rounds",
        type=int,
        default=None,
        help="rounds run even past the budget (default 5; quick: 3)",
    )
    p.add_argument(
        "--budget",
        type=float,
        default=None,
        help="seconds per argmin configuration after which no new round starts (default 10; "
        "quick: 1)",
    )
    p.add_argument("--scale", type=float, default=2.0, help="argmin inputs are scale * N(0, 1)")
    p.add_argument(
        "--state-batches",
        type=int,
        nargs="*",
        default=[1, 16],
        help="state-step batch sizes (default 1 16; none given skips part 2)",
    )
    p.add_argument("--state-rows", type=int, default=64, help="state-step rows per round (64)")
    p.add_argument(
        "--state-rounds", type=int, default=None, help="state-step rounds (default 7; quick: 3)"
    )
    p.add_argument("--width", type=int, default=100, help="state-step hidden width p (100)")
    p.add_argument("--next-width", type=int, default=10, help="state-step next width q (10)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    p.add_argument("--out", default=None, help="results JSON (default benchmarks/results/...)")
    args = p.parse_args(argv)

    rounds = args.rounds or (3 if args.quick else 21)
    min_rounds = args.min_rounds or (3 if args.quick else 5)
    budget = args.budget if args.budget is not None else (1.0 if args.quick else 10.0)
    state_rounds = args.state_rounds or (3 if args.quick else 7)
    acts = args.activations or program_activations()
    rng = np.random.default_rng(args.seed)

    machine = _relative_paths(machine_info())
    results: list[dict[str, Any]] = []
    state: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with pin_threads(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for batch in args.batches:
            for name in acts:
                res = bench_config(
                    name,
                    batch,
                    args.n_features,
                    rounds=rounds,
                    min_rounds=min_rounds,
                    budget=budget,
                    scale=args.scale,
                    rng=rng,
                )
                results.append(res)
                print(
                    f"  {name:>20s} B={batch:<4d} rebuild {res['median_rebuild'] * 1e3:7.2f} ms"
                    f"  re-solve {res['median_resolve'] * 1e6:7.0f} µs"
                    f"  ratio {res['median_ratio']:6.1f}  ({res['rounds']} rounds)",
                    flush=True,
                )
        for batch in args.state_batches:
            res = bench_state_step(
                batch, args.width, args.next_width, args.state_rows, state_rounds, args.seed
            )
            state.append(res)
            med = res["median_us_per_row"]
            print(
                f"  state step B={batch:<3d} direct {med['direct']:7.1f} µs/row, solve_many "
                f"{med['direct_many']:7.1f}, CVXPY path {med['cvxpy']:8.1f}",
                flush=True,
            )

    headers = [
        "activation",
        "B",
        "solver",
        "rebuild ms",
        "rebuild, compiled ms",
        "(compile ms)",
        "re-solve µs",
        "re-solve µs/row",
        "rebuild/re-solve",
        "compiled rebuild/re-solve",
        "rounds",
        f"≥{TARGET:g}x",
    ]
    rows = [
        [
            r["activation"],
            r["batch_size"],
            r["solver"],
            r["median_rebuild"] * 1e3,
            r["median_rebuild_compiled"] * 1e3,
            r["median_rebuild_compiled_compile"] * 1e3,
            r["median_resolve"] * 1e6,
            r["median_resolve"] * 1e6 / r["batch_size"],
            r["median_ratio"],
            r["median_ratio_compiled"],
            r["rounds"],
            verdict(r["median_ratio"] >= TARGET) if r["batch_size"] == 1 else "n/a",
        ]
        for r in results
    ]
    print()
    print(
        f"bench_compile part 1: argmin problems, n_features={args.n_features}; medians; ratios "
        f"are medians of per-round ratios; rebuild = fresh cp.Problem (data as constants) + solve"
    )
    print(fmt_table(headers, rows))
    summary: dict[str, Any] = {}
    for batch in args.batches:
        sub = [r["median_ratio"] for r in results if r["batch_size"] == batch]
        missed = [
            r["activation"]
            for r in results
            if r["batch_size"] == batch and r["median_ratio"] < TARGET
        ]
        summary[str(batch)] = {"min_ratio": min(sub), "median_ratio": median(sub), "missed": missed}
        print(
            f"B={batch}: min ratio {min(sub):.1f}, median {median(sub):.1f}; "
            f"below {TARGET:g}x: {missed or 'none'}"
        )
    if state:
        s_headers = [
            "B",
            "solver",
            "direct µs/row",
            "solve_many µs/row",
            "CVXPY path µs/row",
            "CVXPY/direct",
            "max |ΔZ|",
            f"≤{STATE_TARGET_US:g} µs/row",
        ]
        s_rows = [
            [
                r["batch_size"],
                r["solver"],
                r["median_us_per_row"]["direct"],
                r["median_us_per_row"]["direct_many"],
                r["median_us_per_row"]["cvxpy"],
                r["median_ratio_cvxpy_over_direct"],
                r["max_abs_diff_direct_vs_cvxpy"],
                verdict(r["median_us_per_row"]["direct"] <= STATE_TARGET_US)
                if r["batch_size"] == 1
                else "n/a",
            ]
            for r in state
        ]
        print()
        print(
            f"bench_compile part 2: ReLU state step, p={args.width}, q={args.next_width}, "
            f"{args.state_rows} rows per round, {state_rounds} rounds; medians"
        )
        print(fmt_table(s_headers, s_rows))
    payload = {
        "benchmark": "bench_compile",
        "mode": "quick" if args.quick else "full",
        "args": vars(args),
        "target": {
            "resolve_speedup_at_least": TARGET,
            "state_step_direct_us_per_row_at_most": STATE_TARGET_US,
        },
        "summary": summary,
        "results": results,
        "state_step": state,
        "total_seconds": time.perf_counter() - t0,
        "machine": machine,
    }
    path = write_json("bench_compile", payload, args.out)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
