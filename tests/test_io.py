# SPDX-License-Identifier: Apache-2.0
"""Model files (save/load, corruption, atomic writes) and tabular data files."""

import hashlib
import io
import json
import os
import stat
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import cvxpy as cp
import numpy as np
import pytest

import cvx_lifted as cl
from cvx_lifted import ModelFileError, modelfile
from cvx_lifted import io as clio
from cvx_lifted.activations import ACTIVATIONS
from cvx_lifted.network import LiftedNetwork

REPO = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ helpers
def _random_weights(net, seed=0):
    """Xavier weights plus non-zero biases, so every array matters."""
    rng = np.random.default_rng(seed)
    net.initialize(seed)
    net.set_weights(net.weights, [rng.standard_normal(b.shape) for b in net.biases])
    return net


def _inputs(net, m=7, seed=1):
    return np.random.default_rng(seed).standard_normal((m, net.layer_sizes[0]))


ARCHITECTURES = {
    "relu-simplex": dict(layer_sizes=[4, 6, 3], activation="relu", output="simplex_xent"),
    "deep-softmax-f32": dict(
        layer_sizes=[4, 5, 5, 3],
        activation=["relu", "hard_tanh"],
        output="softmax_xent",
        dtype=np.float32,
        lam=[1.0, 2.0, 0.5],
        rho=[0.1, 0.0, 1e-3],
    ),
    "leaky-relu-head": dict(
        layer_sizes=[3, 4, 2],
        activation=cl.get_activation("leaky_relu", alpha=0.2),
        output="squared",
        output_activation="relu",
    ),
    "no-hidden-clip-head": dict(
        layer_sizes=[3, 2],
        output="squared",
        output_activation=cl.get_activation("clip", lo=-1, hi=2),
    ),
    "sigmoid-squared": dict(layer_sizes=[3, 4, 2], activation="sigmoid", output="squared"),
    "leaky-fenchel-simplex": dict(
        layer_sizes=[5, 4, 3],
        activation=cl.get_activation("leaky_relu_fenchel", alpha=0.3),
        output="simplex_xent",
    ),
}


def _rewrite(path, *, drop=(), replace=None):
    """Copy the zip at ``path`` with members dropped or replaced (fresh, valid CRCs)."""
    replace = replace or {}
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            if name in drop:
                continue
            zf.writestr(name, replace.get(name, data))


def _edit_metadata(path, edit, *, rehash=True):
    """Edit metadata.json; by default recompute its checksum, as a deliberate forger would."""
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("metadata.json"))
    edit(meta)
    if rehash:
        meta["metadata_sha256"] = clio.metadata_digest(meta)
    _rewrite(path, replace={"metadata.json": json.dumps(meta).encode()})


def _npy(arr):
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


@pytest.fixture
def saved(tmp_path):
    net = _random_weights(LiftedNetwork([4, 6, 3], activation="relu", output="simplex_xent"))
    return net, net.save(tmp_path / "model.cvxl")


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_round_trip_predicts_bit_for_bit(tmp_path, name):
    net = _random_weights(LiftedNetwork(**ARCHITECTURES[name]), seed=3)
    path = clio.save_network(net, tmp_path / "net.cvxl")
    loaded = cl.load(path)
    X = _inputs(net)
    assert loaded.describe() == net.describe()
    assert loaded.dtype == net.dtype
    for W, W2 in zip(net.weights, loaded.weights, strict=True):
        assert W2.dtype == W.dtype and np.array_equal(W, W2)
    expected = net.predict(X)
    got = loaded.predict(X)
    assert got.dtype == expected.dtype
    assert np.array_equal(got, expected)  # bit for bit


@pytest.mark.parametrize("name", ["relu-simplex", "deep-softmax-f32", "sigmoid-squared"])
def test_round_trip_lifted_rule_is_identical(tmp_path, name):
    net = _random_weights(LiftedNetwork(**ARCHITECTURES[name]), seed=4)
    loaded = cl.load(net.save(tmp_path / "net"))
    X = _inputs(net, m=4)
    expected = net.predict_lifted(X, backend="cvxpy", max_iter=3)
    assert np.array_equal(loaded.predict_lifted(X, backend="cvxpy", max_iter=3), expected)


def test_trained_network_keeps_its_history(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.standard_normal((16, 3))
    Y = np.eye(2)[(X[:, 0] > 0).astype(int)]
    net = LiftedNetwork([3, 4, 2], activation="relu", output="simplex_xent", rho=1e-2)
    net.fit(X, Y, max_iter=2, backend="cvxpy", random_state=0, track_blocks=True)
    loaded = cl.load(net.save(tmp_path / "trained.cvxl"))
    assert loaded.history.objective == net.history.objective
    assert loaded.history.terms == net.history.terms
    assert loaded.history.blocks == net.history.blocks
    assert isinstance(loaded.history.blocks[0], tuple)
    assert loaded.history.paths == net.history.paths
    assert np.array_equal(loaded.predict(X), net.predict(X))


def test_extra_metadata_round_trips_and_numpy_values_become_plain(tmp_path):
    net = _random_weights(LiftedNetwork([2, 3, 2], output="simplex_xent"))
    extra = {"task": "classify", "classes": np.array(["cat", "dog"]), "n": np.int64(3)}
    path = clio.save_network(net, tmp_path / "m.cvxl", extra=extra)
    model = clio.load_model(path)
    assert model.extra == {"task": "classify", "classes": ["cat", "dog"], "n": 3}
    assert model.metadata["cvx_lifted_version"] == cl.__version__
    assert model.path == path
    with pytest.raises(ValueError, match="JSON"):
        clio.save_network(net, tmp_path / "bad.cvxl", extra={"f": object()})
    assert not (tmp_path / "bad.cvxl").exists()


def test_file_layout_is_json_plus_npy_and_no_pickle(saved):
    net, path = saved
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        meta = json.loads(zf.read("metadata.json"))
        assert names == ["metadata.json", "W0.npy", "b0.npy", "W1.npy", "b1.npy"]
        for entry in meta["arrays"]:
            data = zf.read(entry["file"])
            assert hashlib.sha256(data).hexdigest() == entry["sha256"]
            arr = np.load(io.BytesIO(data), allow_pickle=False)
            assert list(arr.shape) == entry["shape"] and arr.dtype.name == entry["dtype"]
    assert meta["format"] == clio.FORMAT_NAME
    assert meta["format_version"] == clio.FORMAT_VERSION
    assert meta["architecture"] == net.describe()
    assert meta["history"] is None and meta["extra"] == {}


def test_suffix_default_and_kept_and_deterministic_bytes(tmp_path):
    net = _random_weights(LiftedNetwork([3, 2]))
    assert net.save(tmp_path / "a") == tmp_path / "a.cvxl"
    assert net.save(tmp_path / "b.model") == tmp_path / "b.model"
    assert np.array_equal(
        cl.load(tmp_path / "a").predict(np.ones((1, 3))), net.predict(np.ones((1, 3)))
    )
    assert (tmp_path / "a.cvxl").read_bytes() == (tmp_path / "b.model").read_bytes()


def test_unfitted_network_round_trips_without_arrays(tmp_path):
    net = LiftedNetwork([3, 4, 2], activation="tanh", output="simplex_xent", lam=2.0)
    loaded = cl.load(net.save(tmp_path / "arch"))
    assert not loaded.is_fitted
    assert loaded.describe() == net.describe()


# ------------------------------------------------------------------ custom activations
@pytest.fixture
def soft_threshold():
    name = "io_test_soft"
    act = cl.custom_activation(
        name=name,
        divergence=lambda u, z: 0.5 * cp.sum_squares(z - u) + 0.1 * cp.norm1(z),
        closed_form=lambda u: np.sign(u) * np.maximum(np.abs(u) - 0.1, 0.0),
    )
    yield act
    ACTIVATIONS.pop(name, None)


def test_custom_activation_is_saved_by_name(tmp_path, soft_threshold):
    net = _random_weights(LiftedNetwork([3, 4, 2], activation=soft_threshold))
    path = net.save(tmp_path / "custom")
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("metadata.json"))
    assert meta["architecture"]["activations"] == [{"name": "io_test_soft", "params": {}}]
    # the module that declared it (this test module) is recorded, so the error can name it
    assert meta["architecture"]["modules"] == {"io_test_soft": __name__}
    X = _inputs(net)
    assert np.array_equal(cl.load(path).predict(X), net.predict(X))

    ACTIVATIONS.pop("io_test_soft")  # a fresh session that did not import the definition
    with pytest.raises(
        ModelFileError,
        match=rf"'io_test_soft'.*not registered.*module '{__name__}'.*--import {__name__}",
    ):
        cl.load(path)


def test_unregistered_output_activation_is_named(tmp_path, soft_threshold):
    net = _random_weights(LiftedNetwork([3, 2], output="squared", output_activation=soft_threshold))
    path = net.save(tmp_path / "head")
    ACTIVATIONS.pop("io_test_soft")
    with pytest.raises(ModelFileError, match=f"'io_test_soft'.*import {__name__}"):
        cl.load(path)


# ------------------------------------------------------------------ damaged files
def test_truncated_file(saved):
    _, path = saved
    data = path.read_bytes()
    for cut in (len(data) // 2, len(data) - 5, 10, 0):
        path.write_bytes(data[:cut])
        with pytest.raises(ModelFileError, match="not a zip archive.*truncated"):
            cl.load(path)


def test_not_a_zip(tmp_path):
    path = tmp_path / "junk.cvxl"
    path.write_text("hello, I am a CSV\n1,2,3\n")
    with pytest.raises(ModelFileError, match="not a cvx_lifted model file"):
        cl.load(path)


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no model file"):
        cl.load(tmp_path / "nope.cvxl")
    with pytest.raises(ModelFileError, match="folder"):
        cl.load(tmp_path)


@pytest.mark.parametrize("member", ["W1.npy", "b0.npy", "metadata.json"])
def test_missing_member(saved, member):
    _, path = saved
    _rewrite(path, drop={member})
    with pytest.raises(ModelFileError, match=f"'{member}' is missing"):
        cl.load(path)


def test_tampered_array_fails_its_checksum(saved):
    net, path = saved
    W = net.weights[0].copy()
    W[0, 0] += 1e-12
    _rewrite(path, replace={"W0.npy": _npy(W)})
    with pytest.raises(
        ModelFileError, match=r"checksum mismatch for 'W0.npy'.*modified or damaged"
    ):
        cl.load(path)


def test_flipped_byte_is_caught_by_the_zip_crc(saved):
    _, path = saved
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        info = zf.getinfo("W0.npy")
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="'W0.npy'"):
        cl.load(path)


def test_architecture_edited_so_shapes_disagree(saved):
    _, path = saved

    def widen(meta):
        meta["architecture"]["layer_sizes"] = [4, 7, 3]

    _edit_metadata(path, widen)
    with pytest.raises(ModelFileError, match=r"shape \[6, 4\].*needs \(7, 4\)"):
        cl.load(path)


def test_array_of_wrong_shape_with_matching_checksum(saved):
    net, path = saved
    data = _npy(np.zeros((6, 5)))

    def fix_sha(meta):
        meta["arrays"][0]["sha256"] = hashlib.sha256(data).hexdigest()

    _rewrite(path, replace={"W0.npy": data})
    _edit_metadata(path, fix_sha)
    with pytest.raises(ModelFileError, match=r"'W0.npy' has shape \(6, 5\).*needs \(6, 4\)"):
        cl.load(path)


def test_non_finite_weights_are_refused(saved):
    net, path = saved
    W = net.weights[1].copy()
    W[0, 0] = np.nan
    data = _npy(W)
    _rewrite(path, replace={"W1.npy": data})
    _edit_metadata(path, lambda m: m["arrays"][2].update(sha256=hashlib.sha256(data).hexdigest()))
    with pytest.raises(ModelFileError, match="unusable.*NaN"):
        cl.load(path)


def test_malformed_json(saved):
    _, path = saved
    _rewrite(path, replace={"metadata.json": b'{"format": "cvx_lifted.model", '})
    with pytest.raises(ModelFileError, match="metadata.json is not valid JSON"):
        cl.load(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda m: m.pop("architecture"), "malformed metadata.json: no 'architecture'"),
        (lambda m: m["architecture"].update(layer_sizes=[4]), "'layer_sizes'"),
        (lambda m: m["architecture"].update(dtype="float16"), "unsupported dtype"),
        (lambda m: m["architecture"].update(activations="relu"), "'activations'"),
        (lambda m: m["architecture"]["output"].update(name="hinge"), "unknown output head"),
        (lambda m: m["architecture"].update(lam=[1.0, -1.0]), "stored architecture is invalid"),
        (lambda m: m.update(format_version="1"), "invalid format_version"),
    ],
)
def test_malformed_metadata(saved, edit, message):
    _, path = saved
    _edit_metadata(path, edit)
    with pytest.raises(ModelFileError, match=message):
        cl.load(path)


def test_unknown_format(saved):
    _, path = saved
    _edit_metadata(path, lambda m: m.update(format="keras.model"))
    with pytest.raises(ModelFileError, match="not a cvx_lifted model file.*'keras.model'"):
        cl.load(path)


def test_future_format_version(saved):
    _, path = saved

    def future(meta):
        meta["format_version"] = clio.FORMAT_VERSION + 1
        meta["cvx_lifted_version"] = "9.0.0"

    _edit_metadata(path, future)
    future = clio.FORMAT_VERSION + 1
    with pytest.raises(ModelFileError, match=rf"version {future} \(by cvx_lifted 9.0.0\).*upgrade"):
        cl.load(path)
    with pytest.raises(ModelFileError, match="upgrade"):
        clio.read_metadata(path)


# ------------------------------------------------------------------ atomic save
@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_interrupted_save_keeps_the_old_file_and_leaves_no_temp(saved, monkeypatch, error):
    net, path = saved
    before = path.read_bytes()

    def fail(fd):
        raise error

    monkeypatch.setattr(modelfile.os, "fsync", fail)
    other = _random_weights(LiftedNetwork([4, 6, 3], output="simplex_xent"), seed=9)
    with pytest.raises(type(error)):
        clio.save_network(other, path)
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == ["model.cvxl"]
    monkeypatch.undo()
    assert np.array_equal(cl.load(path).predict(np.ones((1, 4))), net.predict(np.ones((1, 4))))


def test_failed_rename_and_first_save_leave_nothing(tmp_path, monkeypatch):
    def fail(src, dst):
        raise OSError("rename failed")

    monkeypatch.setattr(modelfile.os, "replace", fail)
    with pytest.raises(OSError, match="rename failed"):
        clio.save_network(_random_weights(LiftedNetwork([2, 2])), tmp_path / "new.cvxl")
    assert os.listdir(tmp_path) == []


def test_save_mode_and_destination_errors(tmp_path):
    net = _random_weights(LiftedNetwork([2, 2]))
    path = net.save(tmp_path / "m.cvxl")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~modelfile._current_umask()
    os.chmod(path, 0o600)
    net.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(FileNotFoundError, match="does not exist"):
        net.save(tmp_path / "no" / "such" / "m.cvxl")
    with pytest.raises(IsADirectoryError):
        net.save(tmp_path)


# ------------------------------------------------------------------ tabular data
def test_read_csv_with_header_and_string_target(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b,label\n1,2.5,cat\n3,-4,dog\n\n5,6e-1,cat\n")
    table = clio.read_table(path)
    np.testing.assert_array_equal(table.X, [[1, 2.5], [3, -4], [5, 0.6]])
    assert table.y.tolist() == ["cat", "dog", "cat"]
    assert table.feature_names == ["a", "b"] and table.target_name == "label"
    by_name = clio.read_table(path, target="a", features=["b"])
    assert by_name.y.tolist() == [1.0, 3.0, 5.0] and by_name.X.ravel().tolist() == [2.5, -4, 0.6]
    assert clio.infer_task(table.y) == "classify"


def test_read_csv_without_header_tabs_and_selection(tmp_path):
    path = tmp_path / "d.tsv"
    path.write_text("1\t2\t0.5\n3\t4\t1.5\n")
    table = clio.read_table(path)
    assert table.feature_names is None and table.X.shape == (2, 2)
    assert clio.infer_task(table.y) == "regress"
    sel = tmp_path / "s.csv"
    sel.write_text("c,extra,a\n1,x,2\n3,y,4\n")
    assert clio.read_table(sel, target=None, features=["a", "c"]).X.tolist() == [[2, 1], [4, 3]]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,y\n1,2,3\n4,5\n", "line 3 has 2 columns, expected 3"),
        ("a,b,y\n1,2,3\n4,x,5\n", r"line 3, column 'b': 'x' is not a number"),
        ("a,b,y\n1,nan,3\n", "NaN"),
        ("", "empty"),
        ("a,b,y\n", "no data rows"),
    ],
)
def test_read_csv_errors_name_the_line(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        clio.read_table(path)


def test_read_csv_unknown_target_column(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="no column named 'z'; columns: a, b"):
        clio.read_table(path, target="z")


def test_read_npz(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, X=np.arange(6.0).reshape(3, 2), y=np.array(["a", "b", "a"]))
    table = clio.read_table(path)
    assert table.X.shape == (3, 2) and table.y.tolist() == ["a", "b", "a"]
    assert clio.read_table(path, target=None).y is None
    np.savez(path, Z=np.ones(3))
    with pytest.raises(ValueError, match="must hold an array 'X'"):
        clio.read_table(path)
    np.savez(path, X=np.ones((2, 2)), y=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(ValueError, match="object arrays"):
        clio.read_table(path)


def test_infer_task_and_split():
    assert clio.infer_task(np.array([1.0, 2.0, 3.0])) == "classify"
    assert clio.infer_task(np.array([1.5, 2.0])) == "regress"
    assert clio.infer_task(np.ones((4, 2))) == "regress"
    X = np.arange(40.0).reshape(20, 2)
    y = np.repeat([0, 1], 10)
    X_tr, y_tr, X_val, y_val = clio.train_validation_split(X, y, 0.2, stratify=True)
    assert len(X_val) == 4 and sorted(y_val.tolist()) == [0, 0, 1, 1] and len(X_tr) == 16
    assert clio.train_validation_split(X, y, 0.0)[2] is None
    with pytest.raises(ValueError, match=r"\[0, 1\)"):
        clio.train_validation_split(X, y, 1.0)


def test_penalty_round_trips(tmp_path):
    import cvxpy as cp

    from cvx_lifted import LiftedNetwork, load

    rng = np.random.default_rng(0)
    X = rng.standard_normal((20, 3))
    for penalty, expected in (("l1", "l1"), (lambda W: cp.sum_squares(W), "l2")):
        net = LiftedNetwork([3, 4, 1], penalty=penalty).initialize(0)
        path = net.save(tmp_path / "p.cvxl")
        if callable(penalty):  # not stored: the loaded network says it has the l2 penalty
            with pytest.warns(UserWarning, match="custom weight penalty") as caught:
                loaded = load(path)
            assert caught[0].filename == __file__  # the line that loaded it
        else:
            loaded = load(path)
        assert loaded.penalty == expected
        np.testing.assert_array_equal(loaded.predict(X), net.predict(X))


def test_an_unregistered_activation_is_not_saved(tmp_path):
    import cvxpy as cp

    from cvx_lifted import LiftedNetwork, custom_activation

    act = custom_activation(
        name="test_unregistered",
        closed_form=lambda u: np.maximum(u, 0.0),
        divergence=lambda u, z: 0.5 * cp.sum_squares(z - u),
        domain=lambda u, z: [z >= 0],
        register=False,
    )
    net = LiftedNetwork([3, 4, 1], activation=act).initialize(0)
    with pytest.raises(ValueError, match=r"\['test_unregistered'\] are not registered"):
        net.save(tmp_path / "u.cvxl")
    assert not (tmp_path / "u.cvxl").exists()


# ------------------------------------------------------------------ integrity of the metadata
@pytest.mark.parametrize(
    "edit",
    [
        lambda m: m["architecture"]["activations"][0].update(name="sigmoid"),
        lambda m: m["architecture"]["output"].update(name="softmax_xent"),
        lambda m: m["architecture"].update(lam=[2.0, 1.0]),
        lambda m: m["extra"].update(classes=["dog", "cat", "bird"]),
        lambda m: m.update(arrays=[], fitted=False),
        lambda m: m.update(arrays=[]),
        lambda m: m.pop("metadata_sha256"),
    ],
    ids=["relu->sigmoid", "head", "lam", "classes", "unfitted", "arrays-dropped", "no-digest"],
)
def test_edited_metadata_fails_its_checksum(saved, edit):
    _, path = saved
    _edit_metadata(path, edit, rehash=False)
    with pytest.raises(ModelFileError, match="metadata.json|metadata_sha256"):
        cl.load(path)


def test_forged_metadata_is_still_checked_for_consistency(saved):
    _, path = saved
    # a forger who recomputes the checksum still cannot drop the arrays of a fitted model
    _edit_metadata(path, lambda m: m.update(arrays=[]))
    with pytest.raises(ModelFileError, match="marked fitted but lacks the arrays W0, b0, W1, b1"):
        cl.load(path)
    _edit_metadata(path, lambda m: m.update(fitted=False))
    assert not cl.load(path).is_fitted  # consistent: an architecture-only file


def test_old_format_without_checksum_is_refused(saved):
    _, path = saved
    _edit_metadata(path, lambda m: m.update(format_version=1))
    with pytest.raises(ModelFileError, match="format version 1.*before metadata checksums"):
        cl.load(path)


# ------------------------------------------------------------------ crafted files
def _metadata_text(path):
    with zipfile.ZipFile(path) as zf:
        return zf.read("metadata.json").decode()


def test_deeply_nested_json(saved):
    _, path = saved
    _rewrite(path, replace={"metadata.json": b"[" * 100_000 + b"]" * 100_000})
    with pytest.raises(ModelFileError, match="nested 100000 levels deep"):
        cl.load(path)
    # nesting inside an otherwise valid, checksummed file
    _, path2 = saved[0], path.with_name("nested.cvxl")
    saved[0].save(path2)
    _edit_metadata(path2, lambda m: m["extra"].update(deep=json.loads("[" * 200 + "]" * 200)))
    with pytest.raises(ModelFileError, match="nested 202 levels deep"):
        cl.load(path2)


def test_a_5000_digit_layer_size(saved):
    _, path = saved
    text = _metadata_text(path).replace(
        '"layer_sizes": [\n   4,', '"layer_sizes": [\n   4' + "0" * 5000 + ","
    )
    assert "0" * 5000 in text
    _rewrite(path, replace={"metadata.json": text.encode()})
    with pytest.raises(ModelFileError, match="not valid JSON.*digits"):
        cl.load(path)


def test_absurd_layer_sizes_are_refused_before_allocation(saved):
    _, path = saved
    _edit_metadata(path, lambda m: m["architecture"].update(layer_sizes=[4, 2**40, 3]))
    with pytest.raises(ModelFileError, match="integers from 1 to 16777216"):
        cl.load(path)
    _edit_metadata(path, lambda m: m["architecture"].update(layer_sizes=[4, 2**24, 2**24]))
    with pytest.raises(ModelFileError, match="weights, more than the 2147483648"):
        cl.load(path)


def _set_flag(data, name, bit):
    """Set a general-purpose flag bit of a member in both its local and its central header."""
    data = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(bytes(data))) as zf:
        local = zf.getinfo(name).header_offset
    assert data[local : local + 4] == b"PK\x03\x04"
    data[local + 6] |= bit  # local header: flags at offset 6
    central = data.find(b"PK\x01\x02")
    while central >= 0:
        name_len = int.from_bytes(data[central + 28 : central + 30], "little")
        if data[central + 46 : central + 46 + name_len] == name.encode():
            data[central + 8] |= bit  # central header: flags at offset 8
            return bytes(data)
        central = data.find(b"PK\x01\x02", central + 4)
    raise AssertionError(f"no central header for {name}")


@pytest.mark.parametrize("member", ["metadata.json", "W0.npy"])
def test_encrypted_flag(saved, member):
    _, path = saved
    path.write_bytes(_set_flag(path.read_bytes(), member, 0x1))
    with pytest.raises(ModelFileError, match=f"'{member}' is marked as encrypted"):
        cl.load(path)


def test_unusual_compression_method(saved):
    net, path = saved
    with zipfile.ZipFile(path) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            method = zipfile.ZIP_BZIP2 if name == "b0.npy" else zipfile.ZIP_DEFLATED
            zf.writestr(name, data, compress_type=method)
    with pytest.raises(ModelFileError, match="'b0.npy' uses zip compression method 12"):
        cl.load(path)


def _forged_npy(shape, body=b"\x00" * 64):
    header = {"descr": "<f8", "fortran_order": False, "shape": shape}
    text = repr(header).encode("latin1")
    text += b" " * (118 - len(text)) + b"\n"
    return b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text + body


def test_forged_npy_header_claiming_238_gib(saved):
    _, path = saved
    data = _forged_npy((400_000, 80_000))  # 400,000 x 80,000 float64 = 238 GiB
    digest = hashlib.sha256(data).hexdigest()
    _rewrite(path, replace={"W0.npy": data})
    _edit_metadata(path, lambda m: m["arrays"][0].update(sha256=digest))
    with pytest.raises(ModelFileError, match=r"'W0.npy' has shape \(400000, 80000\).*\(6, 4\)"):
        cl.load(path)


def test_npy_with_the_right_header_but_short_data(saved):
    net, path = saved
    data = _forged_npy((6, 4), body=b"\x00" * 8)
    digest = hashlib.sha256(data).hexdigest()
    _rewrite(path, replace={"W0.npy": data})
    _edit_metadata(path, lambda m: m["arrays"][0].update(sha256=digest))
    with pytest.raises(ModelFileError, match="'W0.npy' holds 8 bytes of data, 192 expected"):
        cl.load(path)


def test_only_regular_files_are_opened(tmp_path):
    import signal

    fifo = tmp_path / "pipe.cvxl"
    os.mkfifo(fifo)
    previous = signal.signal(signal.SIGALRM, lambda *a: pytest.fail("load() blocked on a FIFO"))
    signal.alarm(20)
    try:
        with pytest.raises(ModelFileError, match="FIFO"):
            cl.load(fifo)
        with pytest.raises(ModelFileError, match="FIFO"):
            clio.read_metadata(fifo)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    with pytest.raises(ModelFileError, match="character device"):
        cl.load("/dev/null")


def test_unexpected_errors_become_model_file_errors(saved, monkeypatch):
    _, path = saved

    def boom(*args, **kwargs):
        raise MemoryError("no room")

    monkeypatch.setattr(modelfile, "_decode_npy", boom)
    with pytest.raises(ModelFileError, match="could not be loaded.*MemoryError: no room"):
        cl.load(path)


# ------------------------------------------------------------------ temporary files
def test_temporaries_of_dead_processes_are_removed_on_the_next_save(saved):
    net, path = saved
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    dead = int(done.stdout)
    orphan = path.parent / f".{path.name}.{dead}.abc123.tmp"
    orphan.write_bytes(b"x" * 1000)
    alive = path.parent / f".{path.name}.{os.getppid()}.def456.tmp"  # a live writer's
    alive.write_bytes(b"y")
    unrelated = path.parent / f".other.cvxl.{dead}.abc.tmp"
    unrelated.write_bytes(b"z")
    net.save(path)
    assert not orphan.exists()
    assert alive.exists() and unrelated.exists()


def test_sigterm_during_a_save_leaves_no_temporary_file(tmp_path):
    code = textwrap.dedent(
        f"""
        import os, signal
        import cvx_lifted as cl
        from cvx_lifted import modelfile

        net = cl.LiftedNetwork([3, 4, 2]).initialize(0)
        real_fsync = os.fsync

        def fsync_then_terminate(fd):
            real_fsync(fd)
            os.kill(os.getpid(), signal.SIGTERM)  # as if the process were killed mid-save
            signal.pause()  # pragma: no cover - never reached

        modelfile.os.fsync = fsync_then_terminate
        net.save({str(tmp_path / "m.cvxl")!r})
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env=dict(os.environ, PYTHONPATH=str(REPO)))  # fmt: skip
    assert proc.returncode == -15, proc.stderr  # died of SIGTERM, as without the handler
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------ CSV parsing
def test_quoted_cells_follow_the_csv_rules(tmp_path):
    path = tmp_path / "q.csv"
    path.write_text('a,b,label\n1,"2.5",x\n3,4,"y, or z"\n5,6,"say ""hi"""\n')
    table = clio.read_table(path)
    assert table.X.tolist() == [[1, 2.5], [3, 4], [5, 6]]
    assert table.y.tolist() == ["x", "y, or z", 'say "hi"']


def test_a_quoted_cell_spanning_lines_is_refused_not_merged(tmp_path):
    path = tmp_path / "multi.csv"
    path.write_text('1,"2\n3",0\n4,5,1\n')
    with pytest.raises(ValueError, match=r"line 1, column 1: '2\\n3' is not a number.*spans lines"):
        clio.read_table(path)
    path.write_text('a,b,y\n1,2,0\n3,"4\n5",1\n6,7,0\n')
    with pytest.raises(ValueError, match=r"line 3, column 'b'"):
        clio.read_table(path)


def test_malformed_quoting_is_refused_with_its_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text('a,b,y\n1,2,0\n3,"4"5,1\n')
    with pytest.raises(ValueError, match="line 3: malformed CSV"):
        clio.read_table(path)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "a,b,y\n1,1e300,0\n2,3,1\n",
            r"column 'b' of the features holds values as large as 1e\+300",
        ),
        ("a,b,y\n1,2,1e200\n2,3,1\n", r"column 'y' of the target holds values as large as 1e\+200"),
        ("1,-1e160,0\n2,3,1\n", "column 1 of the features"),
    ],
)
def test_overflow_prone_magnitudes_are_refused(tmp_path, text, message):
    path = tmp_path / "big.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=message) as info:
        clio.read_table(path)
    assert "Rescale that column" in str(info.value)


def test_many_distinct_whole_numbers_are_regressed():
    """A quantity recorded in whole units (diabetes: 214 values in 442 rows) is not 214 classes."""
    from sklearn.datasets import load_diabetes

    _, y = load_diabetes(return_X_y=True)
    assert np.all(y == np.round(y)) and clio.infer_task(y) == "regress"
    assert clio.infer_task(y.astype(np.int64)) == "regress"
    assert clio.infer_task(np.arange(30) % 20) == "classify"  # 20 labels: classes at any size
    assert clio.infer_task(np.arange(1000) % 50) == "classify"  # 50 labels, 5 % of the rows
    assert clio.infer_task(np.arange(1000) % 51) == "regress"


def test_task_inference_does_not_overflow():
    assert clio.infer_task(np.array([9.3e18, 1e19, 2e19])) == "regress"
    assert clio.infer_task(np.array([2.0**53, 3.0, 4.0])) == "classify"
    assert clio.infer_task(np.array([2.0**53 + 2, 3.0])) == "regress"
    assert clio.infer_task(np.array([np.iinfo(np.int64).max, 0])) == "classify"  # exact ints
