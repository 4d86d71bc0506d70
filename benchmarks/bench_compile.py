# SPDX-License-Identifier: Apache-2.0
"""Re-solving a compiled argmin problem vs rebuilding it, per catalogue activation.

For every activation of ``cvx_lifted.ACTIVATIONS`` whose class has a convex program
(``has_program``) and every batch size, two ways of computing ``phi(U)`` for a new ``(B, n)``
input are timed, interleaved round by round (the order alternates between rounds):

(a) **rebuild**: construct a fresh ``CompiledArgmin(act, n, B)`` (build + DCP/DPP checks +
    canonicalisation) and solve it once (a cold solve);
(b) **re-solve**: write the new input into one ``CompiledArgmin`` compiled before the rounds
    and solve again (warm start, no canonicalisation).

Each round draws new standard-normal inputs (times ``--scale``) used by both (a) and (b).
Reported: median seconds per solve of (a) and (b), the compile part of (a) (``stats``), per
row, the ratio rebuild / re-solve (ratio of the medians and median of the per-round ratios),
and the solver used. Issue target: re-solve >= 5x faster than rebuild.

Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_compile.py --quick
    PYTHONPATH=. python benchmarks/bench_compile.py            # full: batches 1, 32, 256

Writes ``benchmarks/results/bench_compile.json`` (or ``--out``).
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any

import numpy as np
from _common import fmt_table, machine_info, median, pin_threads, timed, verdict, write_json

TARGET = 5.0


def program_activations() -> list[str]:
    import cvx_lifted

    return [
        name for name, cls in cvx_lifted.ACTIVATIONS.items() if getattr(cls, "has_program", False)
    ]


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

    # the instance that is re-solved: compile + first (cold) solve, outside the rounds
    t_build, inst = timed(lambda: CompiledArgmin(act, n_features, batch))
    t_cold, _ = timed(lambda: inst(draw()))
    # one untimed rebuild: first-use costs of this problem shape (CVXPY caches, imports)
    CompiledArgmin(act, n_features, batch)(draw())

    rebuild, resolve, compile_part, ratios = [], [], [], []
    t_start = time.perf_counter()
    for r in range(rounds):
        U = draw()

        def do_rebuild(U: np.ndarray = U) -> tuple[float, float]:
            t, fresh = timed(lambda: _build_and_solve(act, n_features, batch, U))
            return t, fresh.stats.compile_seconds

        def do_resolve(U: np.ndarray = U) -> float:
            return timed(lambda: inst(U))[0]

        if r % 2 == 0:
            (ta, tc), tb = do_rebuild(), do_resolve()
        else:
            tb = do_resolve()
            ta, tc = do_rebuild()
        rebuild.append(ta)
        compile_part.append(tc)
        resolve.append(tb)
        ratios.append(ta / tb)
        if r + 1 >= min_rounds and time.perf_counter() - t_start > budget:
            break
    med_a, med_b = median(rebuild), median(resolve)
    return {
        "activation": act_name,
        "batch_size": batch,
        "n_features": n_features,
        "output_size": int(act.output_size(n_features)),
        "solver": inst.stats.solver,
        "problem_class": _problem_class(inst),
        "first_build_seconds": t_build,
        "first_cold_solve_seconds": t_cold,
        "rounds": len(rebuild),
        "rebuild_seconds": rebuild,
        "rebuild_compile_seconds": compile_part,
        "resolve_seconds": resolve,
        "ratio_per_round": ratios,
        "median_rebuild": med_a,
        "median_rebuild_compile": median(compile_part),
        "median_resolve": med_b,
        "ratio_of_medians": med_a / med_b,
        "median_ratio": median(ratios),
        "fallbacks": [list(f) for f in inst.stats.fallbacks],
    }


def _build_and_solve(act: Any, n: int, batch: int, U: np.ndarray) -> Any:
    from cvx_lifted import CompiledArgmin

    fresh = CompiledArgmin(act, n, batch)
    fresh(U)
    return fresh


def _problem_class(inst: Any) -> str:
    from cvx_lifted.compile import problem_class

    return problem_class(inst.problem.problem)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog="Full mode takes several minutes (exp-cone problems at batch 256 compile in ~1 s).",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="batches 1 and 32, 3 rounds, 1 s budget per configuration (< 1 min)",
    )
    p.add_argument(
        "--batches",
        type=int,
        nargs="+",
        default=None,
        help="batch sizes (default 1 32 256; quick: 1 32)",
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
        help="max interleaved rounds per configuration (default 21; quick: 3)",
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
        help="seconds per configuration after which no new round starts (default 20; quick: 1)",
    )
    p.add_argument("--scale", type=float, default=2.0, help="inputs are scale * N(0, 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="BLAS threads (default 1)")
    p.add_argument("--out", default=None, help="results JSON (default benchmarks/results/...)")
    args = p.parse_args(argv)

    batches = args.batches or ([1, 32] if args.quick else [1, 32, 256])
    rounds = args.rounds or (3 if args.quick else 21)
    min_rounds = args.min_rounds or (3 if args.quick else 5)
    budget = args.budget if args.budget is not None else (1.0 if args.quick else 20.0)
    acts = args.activations or program_activations()
    rng = np.random.default_rng(args.seed)

    machine = machine_info()
    results: list[dict[str, Any]] = []
    t0 = time.perf_counter()
    with pin_threads(args.threads), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        for batch in batches:
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
                    f"  {name:>20s} B={batch:<4d} rebuild {res['median_rebuild'] * 1e3:8.2f} ms"
                    f"  re-solve {res['median_resolve'] * 1e3:8.2f} ms"
                    f"  ratio {res['ratio_of_medians']:6.1f}  ({res['rounds']} rounds)",
                    flush=True,
                )

    headers = [
        "activation",
        "B",
        "solver",
        "rebuild ms",
        "(compile ms)",
        "re-solve ms",
        "re-solve µs/row",
        "rebuild/re-solve",
        "median ratio",
        "rounds",
        f"≥{TARGET:g}x",
    ]
    rows = [
        [
            r["activation"],
            r["batch_size"],
            r["solver"],
            r["median_rebuild"] * 1e3,
            r["median_rebuild_compile"] * 1e3,
            r["median_resolve"] * 1e3,
            r["median_resolve"] * 1e6 / r["batch_size"],
            r["ratio_of_medians"],
            r["median_ratio"],
            r["rounds"],
            verdict(r["median_ratio"] >= TARGET),
        ]
        for r in results
    ]
    print()
    print(
        f"bench_compile: n_features={args.n_features}, seconds per solve of a (B, n) batch, "
        f"medians; ratio = rebuild / re-solve, same rounds"
    )
    print(fmt_table(headers, rows))
    summary = {}
    for batch in batches:
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
    payload = {
        "benchmark": "bench_compile",
        "mode": "quick" if args.quick else "full",
        "args": vars(args),
        "target": {"resolve_speedup_at_least": TARGET},
        "summary": summary,
        "results": results,
        "total_seconds": time.perf_counter() - t0,
        "machine": machine,
    }
    path = write_json("bench_compile", payload, args.out)
    print(f"wrote {path}")
    return payload


if __name__ == "__main__":
    main()
