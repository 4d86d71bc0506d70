# SPDX-License-Identifier: Apache-2.0
"""Does every activation train at real scale?

**Part 1, digits** (scikit-learn's, 1,347 training rows after a 75/25 split, 64-100-10,
``simplex_xent`` head, lam = 1, rho = 1e-3, default backend ``"auto"``): for every catalogue
activation with a convex program, a user-declared Fenchel-Young sigmoid
(``custom_activation(fenchel_young=...)``) and a user-declared soft threshold (a plain CVXPY
divergence, compiled path only), each in a fresh process: seconds per sweep (median over
sweeps), peak resident memory of the process, test accuracy of the feed-forward rule after the
sweeps, and which blocks took the compiled path. Targets: at most 5 s per sweep (20 s for
activations trained only through compiled problems), peak memory under 1 GB.

**Part 2, 60,000 Fashion-MNIST rows** (784-300-10, ``simplex_xent``, float64): one sweep of
``sigmoid``, ``tanh`` and ``leaky_relu_fenchel`` against one of ``relu_fenchel``, interleaved round
by round in one process (warm-started single sweeps, order rotating); the ratio is the median of
per-round ratios. Target: at most 2x.

**Part 3, accuracy** (``--accuracy``): ``LiftedMLPClassifier(hidden_layer_sizes=(300,),
activation=...)`` with package defaults on MNIST-10k and Fashion-MNIST, test split.

Run from the repository root::

    PYTHONPATH=. python benchmarks/bench_activations.py [--quick] [--accuracy]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np
from _common import REPO, fmt_table, machine_info, median, pin_threads, verdict, write_json

DIGITS_ACTIVATIONS = [
    "relu",
    "relu_fenchel",
    "sigmoid",
    "tanh",
    "leaky_relu_fenchel",
    "leaky_relu",
    "relu_l1",
    "sign",
    "hard_tanh",
    "sparsemax",
    "custom_fy_sigmoid",
    "custom_soft_threshold",
]
LARGE = ["sigmoid", "tanh", "leaky_relu_fenchel"]

_CHILD = r"""
import json, resource, sys, time
import numpy as np, cvxpy as cp
from scipy.special import expit, logit, xlogy
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
import cvx_lifted as cl

name, sweeps = sys.argv[1], int(sys.argv[2])
if name == "custom_fy_sigmoid":
    act = cl.custom_activation(
        name=name, closed_form=expit, register=False,
        fenchel_young=cl.FenchelYoungForm(
            phi=lambda z: -cp.sum(cp.entr(z)) - cp.sum(cp.entr(1 - z)),
            phi_conj=lambda u: cp.sum(cp.logistic(u)),
            phi_value=lambda z: xlogy(z, z) + xlogy(1 - z, 1 - z),
            phi_grad=logit, phi_hess=lambda z: 1 / (z * (1 - z)),
            conj_value=lambda u: np.logaddexp(0, u),
            conj_hess=lambda u: expit(u) * (1 - expit(u)),
            lo=0.0, hi=1.0, curvature=0.25,
        ),
    )
elif name == "custom_soft_threshold":
    act = cl.custom_activation(
        name=name, register=False,
        divergence=lambda u, z: 0.5 * cp.sum_squares(z - u) + 0.1 * cp.norm1(z),
        closed_form=lambda u: np.sign(u) * np.maximum(np.abs(u) - 0.1, 0.0),
    )
else:
    act = name
X, y = load_digits(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(X / 16, y, random_state=0)
net = cl.LiftedNetwork([64, 100, 10], activation=act, output="simplex_xent", lam=1.0, rho=1e-3)
res = net.fit(Xtr, np.eye(10)[ytr], max_iter=sweeps, tol=0, random_state=0)
h = res.history
print(json.dumps({
    "sweep_seconds": [s["sweep"] for s in h.seconds[1:]],
    "accuracy": float((net.predict(Xte).argmax(1) == yte).mean()),
    "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    "paths": h.paths,
    "objective": h.objective,
    "rejected": len(h.rejected),
    "retried": len(h.retried),
    "increases": h.increases,
}))
"""


def digits_part(args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    for name in args.activations:
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", _CHILD, name, str(args.sweeps)],
            capture_output=True,
            text=True,
            env=env,
            check=False,
        )
        if out.returncode != 0:
            rows.append({"activation": name, "error": out.stderr.strip().splitlines()[-1]})
            print(f"{name}: FAILED {rows[-1]['error']}", flush=True)
            continue
        rec = json.loads(out.stdout.strip().splitlines()[-1])
        rec["activation"] = name
        rec["wall_seconds"] = time.perf_counter() - t0
        compiled_only = all(v == "cvxpy" for k, v in rec["paths"].items() if k.startswith("X"))
        rec["target_seconds"] = 20.0 if compiled_only else 5.0
        rec["median_sweep"] = median(rec["sweep_seconds"])
        rec["ok"] = rec["median_sweep"] <= rec["target_seconds"] and rec["peak_mib"] < 1024
        rows.append(rec)
        print(
            f"{name}: {rec['median_sweep']:.2f} s/sweep, acc {rec['accuracy']:.3f}, "
            f"{rec['peak_mib']:.0f} MiB",
            flush=True,
        )
    return rows


def _fashion(rows: int, data: str | None) -> tuple[np.ndarray, ...]:
    from cvx_lifted.datasets import load_dataset

    X, y, Xte, yte = load_dataset("fashion-mnist", path=data)
    return X[:rows], np.eye(10)[y[:rows]], Xte, yte


def large_part(args: argparse.Namespace) -> dict[str, Any]:
    from cvx_lifted import LiftedNetwork

    X, Y, _, _ = _fashion(args.rows, args.data)
    acts = ["relu_fenchel", *LARGE]
    nets = {}
    for act in acts:  # one sweep each, untimed: every network starts from a trained point
        net = LiftedNetwork([X.shape[1], 300, 10], activation=act, output="simplex_xent")
        net.fit(X, Y, max_iter=1, tol=0, random_state=0, blas_threads=args.threads)
        nets[act] = net
    times: dict[str, list[float]] = {a: [] for a in acts}
    for r in range(args.rounds):
        order = acts[r % len(acts) :] + acts[: r % len(acts)]
        for act in order:
            res = nets[act].fit(X, Y, max_iter=1, tol=0, warm_start=True, blas_threads=args.threads)
            times[act].append(res.history.seconds[-1]["sweep"])
    out: dict[str, Any] = {"rows": int(X.shape[0]), "seconds": times, "ratios": {}}
    for act in LARGE:
        per_round = [a / b for a, b in zip(times[act], times["relu_fenchel"], strict=True)]
        out["ratios"][act] = median(per_round)
    return out


def accuracy_part(args: argparse.Namespace) -> list[dict[str, Any]]:
    from cvx_lifted.datasets import load_dataset
    from cvx_lifted.estimator import LiftedMLPClassifier

    rows = []
    for dataset in ("mnist-10k", "fashion-mnist"):
        X, y, Xte, yte = load_dataset(dataset, path=args.data)
        for act in ["relu_fenchel", *LARGE]:
            t0 = time.perf_counter()
            clf = LiftedMLPClassifier(hidden_layer_sizes=(300,), activation=act, random_state=0)
            clf.fit(X, y)
            rows.append(
                {
                    "dataset": dataset,
                    "activation": act,
                    "accuracy": float(clf.score(Xte, yte)),
                    "sweeps": int(clf.n_iter_),
                    "seconds": time.perf_counter() - t0,
                }
            )
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 sweeps, 10,000 rows, 2 rounds")
    ap.add_argument("--accuracy", action="store_true", help="also run part 3 (about 30 min)")
    ap.add_argument("--activations", nargs="*", default=DIGITS_ACTIVATIONS)
    ap.add_argument("--sweeps", type=int, default=5)
    ap.add_argument("--rows", type=int, default=60_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default=None, help="Fashion-MNIST folder (else CVX_LIFTED_DATA)")
    ap.add_argument("--skip-large", action="store_true")
    args = ap.parse_args(argv)
    if args.quick:
        args.sweeps, args.rows, args.rounds = 3, 10_000, 2
    result: dict[str, Any] = {"machine": machine_info(), "args": vars(args)}
    with pin_threads(args.threads):
        result["digits"] = digits_part(args)
        if not args.skip_large:
            result["large"] = large_part(args)
        if args.accuracy:
            result["accuracy"] = accuracy_part(args)
    result["machine"]["loadavg_at_end"] = list(os.getloadavg())

    table = []
    for rec in result["digits"]:
        if "error" in rec:
            table.append([rec["activation"], "error", "", "", "", rec["error"][:60]])
            continue
        compiled = sorted(k for k, v in rec["paths"].items() if v == "cvxpy")
        table.append(
            [
                rec["activation"],
                f"{rec['median_sweep']:.2f} (≤ {rec['target_seconds']:.0f})",
                f"{rec['peak_mib']:.0f}",
                f"{rec['accuracy']:.3f}",
                ", ".join(compiled) or "-",
                verdict(rec["ok"]),
            ]
        )
    print(f"\n### Digits, 64-100-10, {args.sweeps} sweeps, one BLAS thread\n")
    print(
        fmt_table(
            ["activation", "s / sweep", "peak MiB", "test acc.", "compiled blocks", "target"],
            table,
        )
    )
    if "large" in result:
        large = result["large"]
        print(f"\n### {large['rows']:,} Fashion-MNIST rows, 784-300-10, one sweep\n")
        rows = [
            [a, f"{median(large['seconds'][a]):.2f}", f"{large['ratios'].get(a, 1.0):.2f}"]
            for a in ["relu_fenchel", *LARGE]
        ]
        print(fmt_table(["activation", "s / sweep (median)", "÷ relu_fenchel"], rows))
    if "accuracy" in result:
        rows = [
            [r["dataset"], r["activation"], f"{r['accuracy']:.4f}", r["sweeps"]]
            for r in result["accuracy"]
        ]
        print("\n### Test accuracy, LiftedMLPClassifier((300,)), package defaults\n")
        print(fmt_table(["data", "activation", "accuracy", "sweeps"], rows))
    write_json("bench_activations", result)
    return result


if __name__ == "__main__":
    main()
