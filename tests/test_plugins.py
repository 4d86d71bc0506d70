# SPDX-License-Identifier: Apache-2.0
"""Custom activations across processes: ``--import MODULE`` and the entry-point group.

A tiny plugin package is built and installed with pip into a temporary folder (``--target``,
offline, no build isolation), which only the subprocesses of these tests see on ``PYTHONPATH``:
nothing is installed into the test environment.
"""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import cvx_lifted as cl
from cvx_lifted import plugins
from cvx_lifted.activations import ACTIVATIONS

REPO = Path(__file__).resolve().parents[1]

DEFINITION = """
import cvxpy as cp
import numpy as np

import cvx_lifted as cl

soft = cl.custom_activation(
    name="{name}",
    divergence=lambda u, z: 0.5 * cp.sum_squares(z - u) + 0.1 * cp.norm1(z),
    closed_form=lambda u: np.sign(u) * np.maximum(np.abs(u) - 0.1, 0.0),
)
"""


def _cli(*args, cwd, pythonpath=()):
    env = dict(os.environ, MPLBACKEND="Agg")
    env["PYTHONPATH"] = os.pathsep.join([*map(str, pythonpath), str(REPO)])
    return subprocess.run(
        [sys.executable, "-m", "cvx_lifted", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=300,
    )


def _data(path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((30, 3))
    y = (X[:, 0] + 0.5 * X[:, 1] > 0).astype(int)
    lines = ["a,b,c,label"] + [
        ",".join([*(repr(float(v)) for v in row), str(t)]) for row, t in zip(X, y, strict=True)
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


TRAIN = ["--hidden", "4", "--sweeps", "2", "--progress", "none"]


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory):
    """Build and install a plugin package providing 'plugin_soft' into a private folder."""
    root = tmp_path_factory.mktemp("plugin")
    pkg = root / "pkg"
    (pkg / "h2_soft_plugin").mkdir(parents=True)
    (pkg / "pyproject.toml").write_text(
        textwrap.dedent(
            """
            [build-system]
            requires = ["setuptools>=68"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "cvx-lifted-test-plugin"
            version = "0.0.1"

            [project.entry-points."cvx_lifted.activations"]
            plugin_soft = "h2_soft_plugin:soft"
            """
        )
    )
    (pkg / "h2_soft_plugin" / "__init__.py").write_text(DEFINITION.format(name="plugin_soft"))
    site = root / "site"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-index",
            "--no-build-isolation",
            "--target",
            str(site),
            str(pkg),
        ],  # fmt: skip
        capture_output=True,
        text=True,
        timeout=300,
        cwd=root,
    )
    if proc.returncode != 0:
        pytest.skip(f"could not build the plugin package offline: {proc.stderr[-500:]}")
    return site


def test_predict_through_an_entry_point(plugin_site, tmp_path):
    data = _data(tmp_path / "d.csv")
    proc = _cli("train", data, "-o", "m", "--activation", "plugin_soft", *TRAIN, cwd=tmp_path,
                pythonpath=[plugin_site])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "training [3, 4, 2] (plugin_soft" in proc.stdout
    # a fresh process with the package installed: no --import needed
    proc = _cli("predict", "m.cvxl", data, cwd=tmp_path, pythonpath=[plugin_site])
    assert proc.returncode == 0, proc.stderr
    labels = proc.stdout.split()
    assert labels[0] == "label" and len(labels) == 31 and set(labels[1:]) <= {"0", "1"}
    # 'list' shows what installed packages provide, 'verify' checks it by name
    proc = _cli("list", cwd=tmp_path, pythonpath=[plugin_site])
    assert proc.returncode == 0 and "plugin_soft" in proc.stdout
    proc = _cli("verify", "plugin_soft", cwd=tmp_path, pythonpath=[plugin_site])
    assert proc.returncode == 0, proc.stderr
    assert "plugin_soft" in proc.stdout and "1/1 activations within tolerance" in proc.stdout
    # without the package: a clean error that names the module to import
    proc = _cli("predict", "m.cvxl", data, cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert "'plugin_soft'" in proc.stderr and "--import h2_soft_plugin" in proc.stderr


def test_predict_with_import_of_a_local_module(tmp_path):
    (tmp_path / "my_acts.py").write_text(DEFINITION.format(name="local_soft"))
    data = _data(tmp_path / "d.csv")
    # --import before or after the subcommand; the current folder is searched
    proc = _cli("--import", "my_acts", "train", data, "-o", "m", "--activation", "local_soft",
                *TRAIN, cwd=tmp_path)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    proc = _cli("predict", "m.cvxl", data, "--import", "my_acts", "--proba", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    rows = [list(map(float, line.split(","))) for line in proc.stdout.split()[1:]]
    assert len(rows) == 30 and np.allclose(np.sum(rows, axis=1), 1.0)
    proc = _cli("predict", "m.cvxl", data, cwd=tmp_path)
    assert proc.returncode == 2
    assert "defined in the module 'my_acts'" in proc.stderr
    assert "cvx-lifted --import my_acts" in proc.stderr
    proc = _cli("predict", "m.cvxl", data, "--import", "no_such_module", cwd=tmp_path)
    assert proc.returncode == 2
    assert "cannot import the module 'no_such_module'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_definition_in_a_script_is_named_as_such(tmp_path):
    script = tmp_path / "train_here.py"
    script.write_text(
        DEFINITION.format(name="script_soft")
        + textwrap.dedent(
            """
            net = cl.LiftedNetwork([3, 4, 2], activation="script_soft").initialize(0)
            net.save("m.cvxl")
            """
        )
    )
    env = dict(os.environ, PYTHONPATH=str(REPO))
    subprocess.run([sys.executable, str(script)], check=True, cwd=tmp_path, env=env, timeout=300)
    proc = _cli("predict", "m.cvxl", _data(tmp_path / "d.csv"), cwd=tmp_path)
    assert proc.returncode == 2
    assert "script run as __main__" in proc.stderr and "move the custom_activation" in proc.stderr


def test_entry_point_objects_are_registered_by_name(monkeypatch):
    """Instances and classes are accepted; anything else is refused clearly."""
    import cvxpy as cp

    def make(name):
        return cl.custom_activation(
            name=name,
            divergence=lambda u, z: 0.5 * cp.sum_squares(z - u),
            closed_form=lambda u: u,
            register=False,
        )

    instance, other = make("ep_instance"), make("ep_class")
    loaded = {"ep_instance": instance, "ep_class": type(other), "ep_bad": 42}

    class FakeEntryPoint:
        def __init__(self, name):
            self.name, self.value = name, f"fake_module:{name}"

        def load(self):
            return loaded[self.name]

    def entry_points(group):
        return [FakeEntryPoint(n) for n in loaded] if group == plugins.ENTRY_POINT_GROUP else []

    monkeypatch.setattr(plugins.metadata, "entry_points", entry_points)
    try:
        assert "ep_instance" not in ACTIVATIONS
        # LiftedNetwork resolves unknown names through the entry points, on demand
        net = cl.LiftedNetwork([2, 3, 1], activation="ep_instance")
        assert ACTIVATIONS["ep_instance"] is type(instance)
        assert net.activations[0].name == "ep_instance"
        assert plugins.load_activation_plugin("ep_class")
        assert ACTIVATIONS["ep_class"] is type(other)
        assert not plugins.load_activation_plugin("no_such_plugin")
        with pytest.raises(ValueError, match="must point to an Activation instance"):
            plugins.load_activation_plugin("ep_bad")
        with pytest.raises(ValueError, match="unknown activation 'nothing_anywhere'"):
            cl.LiftedNetwork([2, 3, 1], activation="nothing_anywhere")
    finally:
        for name in loaded:
            ACTIVATIONS.pop(name, None)


def test_import_modules_refuses_file_names():
    with pytest.raises(ValueError, match="module name"):
        plugins.import_modules(["my_acts.py"])
