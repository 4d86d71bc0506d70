# SPDX-License-Identifier: Apache-2.0
"""Every example script runs from a foreign directory, exits 0 and prints its key result."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"

# script -> (lines its output must contain, figures it writes into the working directory)
EXPECTED = {
    "relu_as_argmin.py": (
        [
            "relu: max |CVXPY - closed form|",
            "relu: max |kernel - closed form|",
            "max |kernel - CVXPY|",
            "relu_fenchel: max |CVXPY - closed form|",
        ],
        ["relu_as_argmin.png"],
    ),
    "custom_activation.py": (
        [
            "verify: soft_threshold: PASS",
            "objective never increased: True",
            "NonConvexError:",
        ],
        [],
    ),
    "dpp_compile_once.py": (
        ["cvx_lifted.NotDPPError:", "rebuild / re-solve ratio:"],
        ["dpp_compile_once.png"],
    ),
    "train_digits.py": (
        ["test accuracy, feed-forward rule", "test accuracy, lifted rule"],
        ["train_digits.png"],
    ),
    "lifted_init_torch.py": (["max |torch - feed-forward|", "after 5 epochs of SGD"], []),
    "dask_local_cluster.py": (
        ["cluster: 2 worker processes", "cost model:", "in memory: the same objectives to"],
        [],
    ),
    "sigmoid_fenchel.py": (
        ["status 'unbounded'", "SolverFailedError", "objective never increased: True"],
        [],
    ),
}


def _has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def test_every_example_is_listed():
    scripts = {p.name for p in EXAMPLES.glob("*.py")}
    assert scripts == set(EXPECTED)
    readme = (EXAMPLES / "README.md").read_text()
    for name in scripts:
        assert f"`{name}`" in readme, f"{name} is missing from examples/README.md"


@pytest.mark.slow  # 40 s (idle machine) to 90 s (busy) for all six; CI also runs each script
@pytest.mark.parametrize("script", sorted(EXPECTED))
def test_example_runs(script, tmp_path):
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["MPLBACKEND"] = "Agg"
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / script)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, f"{script} failed:\n{proc.stdout}\n{proc.stderr}"
    lines, figures = EXPECTED[script]
    if script == "lifted_init_torch.py" and not _has("torch"):
        lines = ["PyTorch is not installed"]
    for line in lines:
        assert line in proc.stdout, f"{script}: {line!r} not in output:\n{proc.stdout}"
    if _has("matplotlib"):
        for figure in figures:
            assert (tmp_path / figure).stat().st_size > 1000, f"{script} did not write {figure}"


_HIDE = """
import importlib.abc, runpy, sys

class Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == {module!r}:
            raise ImportError(f"No module named {{name!r}} (hidden by the test)")

sys.meta_path.insert(0, Hide())
runpy.run_path({script!r}, run_name="__main__")
"""


def _run_without(module: str, script: str, cwd: Path) -> subprocess.CompletedProcess:
    """Run an example as if ``module`` were not installed.

    An import hook, not ``sys.modules[module] = None``: SciPy looks ``torch`` up in
    ``sys.modules`` and would trip over the ``None``.
    """
    code = _HIDE.format(module=module, script=str(EXAMPLES / script))
    env = dict(os.environ, PYTHONPATH=str(ROOT), MPLBACKEND="Agg")
    return subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


@pytest.mark.slow
@pytest.mark.parametrize("script", ["relu_as_argmin.py", "dpp_compile_once.py"])
def test_example_without_matplotlib(script, tmp_path):
    proc = _run_without("matplotlib", script, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert '(no figure: matplotlib is missing; pip install "cvx-lifted[plot]")' in proc.stdout
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.slow
def test_torch_example_without_torch(tmp_path):
    proc = _run_without("torch", "lifted_init_torch.py", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "PyTorch is not installed" in proc.stdout
