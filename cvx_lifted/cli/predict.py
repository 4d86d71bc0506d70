# SPDX-License-Identifier: Apache-2.0
"""``cvx-lifted predict``: labels, probabilities or values of a saved model for new rows.

Classifiers print the original class labels: those stored in the model file's metadata
(``extra["classes"]``, written by ``cvx-lifted train`` from the estimator's ``classes_``).
"""

from __future__ import annotations

import argparse
import csv
import sys
from typing import Any

import numpy as np

from cvx_lifted.cli._common import EXIT_OK, SubParsers, UsageError, check_output_path, header_flag
from cvx_lifted.io import load_model, read_table

__all__ = ["add_predict", "run_predict"]


def add_predict(sub: SubParsers) -> None:
    """Add the ``predict`` subcommand."""
    p = sub.add_parser(
        "predict",
        help="predict with a saved model on a CSV/NPZ file",
        description="Predict with a model saved by 'train' (or LiftedNetwork.save). DATA is a CSV "
        "(features only, or any columns when it has a header naming the model's features) or "
        "an NPZ with an array X. Prints CSV with a header line: the original class labels for "
        "classifiers, values for regressors, or one probability column per class with --proba.",
    )
    p.add_argument("model", metavar="MODEL", help="model file (.cvxl)")
    p.add_argument("data", metavar="DATA", help="CSV or NPZ file with the rows to predict")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of stdout")
    p.add_argument(
        "--proba", action="store_true", help="class probabilities instead of labels (classifiers)"
    )
    p.add_argument(
        "--lifted",
        action="store_true",
        help="use the lifted prediction rule (minimise the penalties over the states, paper eq. "
        "12) instead of the feed-forward rule",
    )
    p.add_argument(
        "--backend",
        choices=("auto", "numpy", "cvxpy"),
        default="auto",
        help="block solvers of the lifted rule (default: auto)",
    )
    p.add_argument(
        "--header",
        choices=("auto", "yes", "no"),
        default="auto",
        help="whether the CSV has a header row (default: detected)",
    )


def _format_value(value: Any) -> str:
    """Format a label or a number for CSV output (floats in their shortest exact form)."""
    if isinstance(value, (float, np.floating)):
        return repr(float(value))
    if isinstance(value, np.generic):
        return str(value.item())
    return str(value)


def run_predict(args: argparse.Namespace) -> int:
    """Run ``cvx-lifted predict``: print (or write) one CSV row per input row."""
    if args.output:
        check_output_path(args.output, "-o/--output")
    model = load_model(args.model)
    net, extra = model.network, model.extra
    n_in, n_out = net.layer_sizes[0], net.layer_sizes[-1]
    if not net.is_fitted:
        raise UsageError(f"{model.path} holds an untrained network (no weights).")
    names = extra.get("feature_names")
    table = read_table(
        args.data,
        target=None,
        features=names if isinstance(names, list) and len(names) == n_in else None,
        header=header_flag(args.header),
    )
    named = table.feature_names
    if isinstance(names, list) and named is not None and not set(names) & set(named):
        print(
            f"note: the header of {args.data} names none of the model's features "
            f"({', '.join(map(str, names[:3]))}{', ...' if len(names) > 3 else ''}); its "
            "columns are taken in the order of the model's features.",
            file=sys.stderr,
        )
    if table.X.shape[1] != n_in:
        hint = " (drop the target column?)" if table.X.shape[1] == n_in + 1 else ""
        raise UsageError(
            f"{args.data} has {table.X.shape[1]} feature column(s), the model expects {n_in}{hint}."
        )
    task = extra.get("task") or ("classify" if net.head.classification else "regress")
    if args.proba and task != "classify":
        raise UsageError("--proba needs a classifier; this model is a regressor.")
    out = net.predict_lifted(table.X, backend=args.backend) if args.lifted else net.predict(table.X)
    out = np.asarray(out)
    classes = extra.get("classes")
    if not isinstance(classes, list) or len(classes) != n_out:
        classes = list(range(n_out))
    target = extra.get("target_name") or ("label" if task == "classify" else "prediction")
    if args.proba:
        header = [_format_value(c) for c in classes]
        rows = [[_format_value(v) for v in row] for row in out]
    elif task == "classify":
        header = [target]
        rows = [[_format_value(classes[k])] for k in out.argmax(axis=1)]
    else:
        header = [target] if n_out == 1 else [f"{target}_{k}" for k in range(n_out)]
        rows = [[_format_value(v) for v in row] for row in out]
    if args.output:
        with open(args.output, "w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh, lineterminator="\n")
            writer.writerow(header)
            writer.writerows(rows)
        print(f"wrote {len(rows)} prediction(s) to {args.output}")
    else:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return EXIT_OK
