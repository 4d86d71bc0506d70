# SPDX-License-Identifier: Apache-2.0
"""Fuzzing model files: every damaged file is refused cleanly or loads unchanged.

Byte flips anywhere in the archive, truncations, and edits of ``metadata.json`` (made with valid
zip CRCs, as an editor or a careless script would) must each end in a
:class:`~cvx_lifted.ModelFileError` -- never another exception -- or in a load that is identical
to the saved model (same architecture, weights, biases, history and extra). Never a different
model. Fixed seeds; the whole module runs in a few seconds.
"""

import copy
import json
import time
import zipfile

import numpy as np
import pytest

import cvx_lifted as cl
from cvx_lifted import ModelFileError
from cvx_lifted import io as clio
from cvx_lifted.network import LiftedNetwork


def _network(kind):
    rng = np.random.default_rng(7)
    if kind == "relu_fenchel-simplex":
        X = rng.standard_normal((24, 4))
        Y = np.eye(3)[rng.integers(0, 3, 24)]
        net = LiftedNetwork([4, 5, 3], output="simplex_xent")
        net.fit(X, Y, max_iter=2, random_state=0)
        return net, {"task": "classify", "classes": ["a", "b", "c"]}
    if kind == "deep-f32":
        net = LiftedNetwork(
            [3, 4, 4, 2], activation=["relu", "hard_tanh"], output="softmax_xent",
            dtype=np.float32, lam=[1.0, 2.0, 0.5], rho=[0.1, 0.0, 1e-3],
        ).initialize(1)  # fmt: skip
    else:
        net = LiftedNetwork([3, 2], output="squared", output_activation="relu").initialize(2)
    net.set_weights(net.weights, [rng.standard_normal(b.shape) for b in net.biases])
    return net, {"note": kind}


KINDS = ["relu_fenchel-simplex", "deep-f32", "no-hidden"]


@pytest.fixture(scope="module", params=KINDS)
def saved(request, tmp_path_factory):
    net, extra = _network(request.param)
    path = clio.save_network(net, tmp_path_factory.mktemp("fuzz") / "model.cvxl", extra=extra)
    return net, extra, path.read_bytes()


def _same(model, net, extra):
    loaded = model.network
    if loaded.describe() != net.describe() or loaded.dtype != net.dtype:
        return False
    for a, b in zip([*loaded.weights, *loaded.biases], [*net.weights, *net.biases], strict=True):
        if a.dtype != b.dtype or not np.array_equal(a, b):
            return False
    history = getattr(net.history, "objective", None)
    if history != getattr(loaded.history, "objective", None):
        return False
    return model.extra == extra


def _outcome(path, data, net, extra):
    """Load ``data``; return 'refused' or 'identical', fail on anything else."""
    path.write_bytes(data)
    try:
        model = clio.load_model(path)
    except ModelFileError:
        return "refused"
    assert _same(model, net, extra), "a damaged file loaded as a different model"
    return "identical"


def test_byte_flips(saved, tmp_path):
    net, extra, good = saved
    rng = np.random.default_rng(0)
    path = tmp_path / "m.cvxl"
    outcomes = []
    for _ in range(250):
        data = bytearray(good)
        for pos in rng.integers(0, len(data), rng.integers(1, 4)):
            data[pos] ^= 1 << int(rng.integers(0, 8))
        outcomes.append(_outcome(path, bytes(data), net, extra))
    assert outcomes.count("refused") > 100  # most flips hit data that matters


def test_truncations_and_appended_garbage(saved, tmp_path):
    net, extra, good = saved
    path = tmp_path / "m.cvxl"
    cuts = np.unique(np.linspace(0, len(good) - 1, 120).astype(int))
    for cut in cuts:
        assert _outcome(path, good[:cut], net, extra) == "refused"
    for tail in (b"\x00", b"PK\x05\x06" + b"\x00" * 18, bytes(range(256))):
        _outcome(path, good + tail, net, extra)


def _leaves(obj, prefix=()):
    """Yield the path of every leaf (and of every container) of a JSON document."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, (*prefix, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, (*prefix, i))


def _mutate(meta, where, rng):
    """Apply one random edit at ``where``; return False if nothing changed."""
    if not where:
        return False
    parent = meta
    for key in where[:-1]:
        parent = parent[key]
    key = where[-1]
    value = parent[key]
    choice = int(rng.integers(0, 6))
    if choice == 0 and isinstance(parent, dict):
        del parent[key]
    elif choice == 1 and isinstance(parent, list):
        parent.pop(key)
    elif isinstance(value, bool):
        parent[key] = not value
    elif isinstance(value, (int, float)):
        parent[key] = [value * 2 + 1, -value, value + 1e-9, 0, None][int(rng.integers(0, 5))]
    elif isinstance(value, str):
        parent[key] = ["relu", "sigmoid", "squared", "float32", "", value + "x"][
            int(rng.integers(0, 6))
        ]
    elif isinstance(value, list):
        parent[key] = value[::-1] if len(value) > 1 else [*value, 1]
    elif isinstance(value, dict):
        parent[key] = {**value, "injected": 1}
    else:
        parent[key] = 1
    return True


def test_metadata_edits_with_valid_zip_crcs(saved, tmp_path):
    net, extra, good = saved
    rng = np.random.default_rng(1)
    path = tmp_path / "m.cvxl"
    path.write_bytes(good)
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    meta = json.loads(members["metadata.json"])
    places = list(_leaves(meta))
    counts = {"refused": 0, "identical": 0}
    for _ in range(150):
        edited = copy.deepcopy(meta)
        if not _mutate(edited, places[int(rng.integers(0, len(places)))], rng):
            continue
        if json.dumps(edited, sort_keys=True) == json.dumps(meta, sort_keys=True):
            continue  # e.g. a list of equal values reversed: the same content
        text = json.dumps(edited, indent=int(rng.integers(0, 3)) or None).encode()
        with zipfile.ZipFile(path, "w") as zf:
            for name, data in members.items():
                zf.writestr(name, text if name == "metadata.json" else data)
        counts[_outcome(path, path.read_bytes(), net, extra)] += 1
    # every real edit changes the canonical metadata, so it is caught by the checksum
    assert counts["identical"] == 0 and counts["refused"] > 100


def test_reformatted_metadata_still_loads(saved, tmp_path):
    """Whitespace and key order are not part of the checksum: the same content loads."""
    net, extra, good = saved
    path = tmp_path / "m.cvxl"
    path.write_bytes(good)
    with zipfile.ZipFile(path) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    meta = json.loads(members["metadata.json"])
    text = json.dumps(dict(reversed(list(meta.items()))), indent=4, sort_keys=False).encode()
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in members.items():
            zf.writestr(name, text if name == "metadata.json" else data)
    assert _outcome(path, path.read_bytes(), net, extra) == "identical"


def test_the_fuzz_is_fast(tmp_path):
    """One load takes milliseconds, so the fuzz above stays far below 30 s."""
    net, extra = _network("deep-f32")
    path = clio.save_network(net, tmp_path / "m.cvxl", extra=extra)
    t0 = time.perf_counter()
    for _ in range(50):
        cl.load(path)
    assert (time.perf_counter() - t0) / 50 < 0.05
