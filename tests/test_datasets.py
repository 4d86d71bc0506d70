# SPDX-License-Identifier: Apache-2.0
"""Tests of cvx_lifted.datasets: IDX reader, look-up order, loaders, error messages."""

from __future__ import annotations

import gzip
import os
import re
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from cvx_lifted import datasets
from cvx_lifted.datasets import (
    DATASETS,
    DataFormatError,
    find_data_dir,
    load_dataset,
    load_digits,
    load_fashion_mnist,
    load_mnist,
    read_idx,
)
from cvx_lifted.exceptions import CvxLiftedError

STANDARD_NAMES = {
    "train-images": "train-images-idx3-ubyte.gz",
    "train-labels": "train-labels-idx1-ubyte.gz",
    "t10k-images": "t10k-images-idx3-ubyte.gz",
    "t10k-labels": "t10k-labels-idx1-ubyte.gz",
}
TYPE_CODES = {
    np.dtype(np.uint8): 0x08,
    np.dtype(np.int8): 0x09,
    np.dtype(np.int16): 0x0B,
    np.dtype(np.int32): 0x0C,
    np.dtype(np.float32): 0x0D,
    np.dtype(np.float64): 0x0E,
}

# Label histograms of the real files in shared/data/mnist-10k (checksum-like properties).
MNIST_10K_TRAIN_COUNTS = [801, 902, 793, 826, 784, 690, 811, 856, 755, 782]
MNIST_10K_TEST_COUNTS = [200, 225, 198, 206, 196, 173, 203, 214, 189, 196]
MNIST_10K_TEST_PIXEL_SUM = 52_405_544  # sum of the raw uint8 test pixels


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray, type_code: int | None = None) -> bytes:
    """Encode `array` in the IDX format (big-endian)."""
    array = np.asarray(array)
    code = TYPE_CODES[array.dtype] if type_code is None else type_code
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(array.dtype.newbyteorder(">")).tobytes()


def write_file(path: Path, data: bytes, *, gz: bool) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def file_names(style: str) -> dict[str, str]:
    """File names of a set in one of the accepted naming styles."""
    if style == "standard":
        return dict(STANDARD_NAMES)
    if style == "raw":
        return {role: name.removesuffix(".gz") for role, name in STANDARD_NAMES.items()}
    if style == "dotted":
        return {role: f"{role}.idx{3 if 'images' in role else 1}-ubyte" for role in STANDARD_NAMES}
    if style == "dotted-gz":
        return {
            role: f"{role}.idx{3 if 'images' in role else 1}-ubyte.gz" for role in STANDARD_NAMES
        }
    raise AssertionError(style)


def write_set(
    directory: Path,
    *,
    n_train: int = 6,
    n_test: int = 4,
    style: str = "standard",
    seed: int = 0,
) -> dict[str, np.ndarray]:
    """Write a small valid IDX set and return its raw arrays, keyed by role."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images": rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8),
        "train-labels": rng.integers(0, 10, size=n_train, dtype=np.uint8),
        "t10k-images": rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8),
        "t10k-labels": rng.integers(0, 10, size=n_test, dtype=np.uint8),
    }
    arrays["train-images"][0, 0, 0] = 0
    arrays["train-images"][0, 0, 1] = 255
    for role, name in file_names(style).items():
        write_file(directory / name, idx_bytes(arrays[role]), gz=name.endswith(".gz"))
    return arrays


@pytest.fixture
def no_sources(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No environment variable, and a Debian location that does not exist."""
    monkeypatch.delenv(datasets.ENV_VAR, raising=False)
    absent = tmp_path / "usr-share-datasets-fashion-mnist"
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", absent)
    return absent


@pytest.fixture
def data_env(no_sources: Path, monkeypatch: pytest.MonkeyPatch, shared_data_dir: Path) -> Path:
    """CVX_LIFTED_DATA pointing at the repository-relative shared/data folder."""
    monkeypatch.setenv(datasets.ENV_VAR, str(shared_data_dir))
    return shared_data_dir


@pytest.fixture(scope="module")
def fashion(shared_data_dir: Path) -> Iterator[datasets.Split]:
    """Full Fashion-MNIST, read once for the module (float32 to halve the memory)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(datasets.ENV_VAR, str(shared_data_dir))
        yield load_fashion_mnist(dtype=np.float32)


# --------------------------------------------------------------------------------------------
# real files
# --------------------------------------------------------------------------------------------


def test_mnist_10k_real_files(data_env: Path) -> None:
    X_train, y_train, X_test, y_test = load_dataset("mnist-10k")
    assert X_train.shape == (8000, 784) and X_test.shape == (2000, 784)
    assert y_train.shape == (8000,) and y_test.shape == (2000,)
    assert X_train.dtype == np.float64 and X_test.dtype == np.float64
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    for X in (X_train, X_test):
        assert X.min() == 0.0 and X.max() == 1.0
        np.testing.assert_allclose(X * 255, np.rint(X * 255), atol=1e-9)  # exact v/255
    assert np.bincount(y_train, minlength=10).tolist() == MNIST_10K_TRAIN_COUNTS
    assert np.bincount(y_test, minlength=10).tolist() == MNIST_10K_TEST_COUNTS
    assert np.bincount(y_test).sum() == 2000
    assert int(np.rint(X_test * 255).sum()) == MNIST_10K_TEST_PIXEL_SUM


def test_load_mnist_falls_back_to_mnist_10k(data_env: Path) -> None:
    assert not (data_env / "mnist").exists()
    assert find_data_dir("mnist") == data_env / "mnist-10k"
    X_train, y_train, X_test, y_test = load_mnist(dtype=np.float32)
    assert X_train.shape == (8000, 784) and X_test.shape == (2000, 784)
    assert X_train.dtype == np.float32 and X_test.dtype == np.float32
    assert np.bincount(y_test, minlength=10).tolist() == MNIST_10K_TEST_COUNTS


def test_fashion_mnist_real_files(fashion: datasets.Split) -> None:
    X_train, y_train, X_test, y_test = fashion
    assert X_train.shape == (60000, 784) and X_test.shape == (10000, 784)
    assert X_train.dtype == np.float32 and y_train.dtype == np.int64
    assert X_train.min() == 0.0 and X_train.max() == 1.0
    assert X_test.min() == 0.0 and X_test.max() == 1.0
    # the official split is balanced: 6,000 / 1,000 images of each of the 10 classes
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert np.bincount(y_test).tolist() == [1000] * 10


def test_find_data_dir_from_env(data_env: Path) -> None:
    assert find_data_dir("mnist-10k") == data_env / "mnist-10k"
    assert find_data_dir("fashion-mnist") == data_env / "fashion-mnist"
    assert find_data_dir("fashion_mnist") == data_env / "fashion-mnist"
    assert find_data_dir("FASHION_MNIST") == data_env / "fashion-mnist"


# --------------------------------------------------------------------------------------------
# look-up order
# --------------------------------------------------------------------------------------------


def test_path_argument_beats_env_var(data_env: Path, tmp_path: Path) -> None:
    arrays = write_set(tmp_path / "mine", n_train=5, n_test=3)
    X_train, y_train, X_test, y_test = load_mnist(tmp_path / "mine")
    assert X_train.shape == (5, 784) and X_test.shape == (3, 784)
    np.testing.assert_array_equal(X_train, arrays["train-images"].reshape(5, -1) / 255.0)
    np.testing.assert_array_equal(y_test, arrays["t10k-labels"])
    assert find_data_dir("fashion-mnist", tmp_path / "mine") == tmp_path / "mine"
    X_train, *_ = load_dataset("mnist-10k", path=str(tmp_path / "mine"))
    assert X_train.shape == (5, 784)


def test_explicit_path_is_the_only_place_looked_at(data_env: Path, tmp_path: Path) -> None:
    # the env var would find mnist-10k, but an explicit path without the files must fail
    empty = tmp_path / "empty"
    empty.mkdir()
    assert find_data_dir("mnist", empty) is None
    with pytest.raises(FileNotFoundError, match=re.escape(str(empty))) as info:
        load_mnist(empty)
    assert "path argument" in str(info.value)
    assert str(data_env) not in str(info.value)


def test_path_to_data_root_is_accepted_like_the_env_var(no_sources: Path, tmp_path: Path) -> None:
    # --data-dir / path= take the data set's own folder or, like CVX_LIFTED_DATA, its parent
    write_set(tmp_path / "root" / "mnist-10k", n_train=4, n_test=1, seed=2)
    assert find_data_dir("mnist-10k", tmp_path / "root") == tmp_path / "root" / "mnist-10k"
    assert find_data_dir("mnist", tmp_path / "root") == tmp_path / "root" / "mnist-10k"
    assert load_dataset("mnist-10k", path=tmp_path / "root")[0].shape == (4, 784)
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("fashion-mnist", path=tmp_path / "root")
    message = str(info.value)
    assert f"{tmp_path / 'root' / 'fashion-mnist'} (path argument, sub-folder)" in message
    assert "--data-dir (command line) or path= (Python)" in message
    assert "pass it as `path`" not in message


def test_full_mnist_preferred_over_10k(no_sources: Path, monkeypatch, tmp_path: Path) -> None:
    write_set(tmp_path / "root" / "mnist", n_train=7, n_test=2, seed=1)
    write_set(tmp_path / "root" / "mnist-10k", n_train=4, n_test=1, seed=2)
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "root"))
    assert find_data_dir("mnist") == tmp_path / "root" / "mnist"
    assert load_mnist()[0].shape == (7, 784)
    assert load_dataset("mnist")[0].shape == (7, 784)
    # "mnist-10k" uses only mnist-10k/
    assert find_data_dir("mnist-10k") == tmp_path / "root" / "mnist-10k"
    assert load_dataset("mnist-10k")[0].shape == (4, 784)


def test_mnist_10k_does_not_use_full_mnist(no_sources: Path, monkeypatch, tmp_path: Path) -> None:
    write_set(tmp_path / "root" / "mnist")
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "root"))
    assert find_data_dir("mnist-10k") is None
    with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "root" / "mnist-10k"))):
        load_dataset("mnist-10k")


def test_debian_fallback_for_fashion_only(no_sources: Path, tmp_path: Path, monkeypatch) -> None:
    debian = tmp_path / "debian"
    write_set(debian, n_train=3, n_test=2)
    monkeypatch.setattr(datasets, "DEBIAN_FASHION_MNIST_DIR", debian)
    assert find_data_dir("fashion-mnist") == debian
    assert load_dataset("fashion_mnist")[0].shape == (3, 784)
    assert find_data_dir("mnist") is None
    # the env var comes before the Debian location
    write_set(tmp_path / "root" / "fashion-mnist", n_train=4, n_test=2)
    monkeypatch.setenv(datasets.ENV_VAR, str(tmp_path / "root"))
    assert find_data_dir("fashion-mnist") == tmp_path / "root" / "fashion-mnist"
    assert load_fashion_mnist()[0].shape == (4, 784)


def test_nothing_found_message_env_unset(no_sources: Path) -> None:
    with pytest.raises(FileNotFoundError) as info:
        load_fashion_mnist()
    message = str(info.value)
    assert "CVX_LIFTED_DATA is not set" in message
    assert str(no_sources) in message  # the Debian location
    for name in STANDARD_NAMES.values():
        assert name in message
    assert "set CVX_LIFTED_DATA" in message
    with pytest.raises(FileNotFoundError, match="CVX_LIFTED_DATA is not set"):
        load_mnist()


def test_nothing_found_message_env_set(no_sources: Path, monkeypatch, tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "mnist-10k").mkdir(parents=True)
    monkeypatch.setenv(datasets.ENV_VAR, str(root))
    assert find_data_dir("mnist") is None
    with pytest.raises(FileNotFoundError) as info:
        load_mnist()
    message = str(info.value)
    assert f"{root / 'mnist'} ($CVX_LIFTED_DATA): does not exist" in message
    assert f"{root / 'mnist-10k'} ($CVX_LIFTED_DATA): missing" in message
    for name in STANDARD_NAMES.values():
        assert name in message
    assert "Nothing is downloaded" in message


def test_incomplete_folder_names_missing_file(no_sources: Path, tmp_path: Path) -> None:
    write_set(tmp_path / "set")
    (tmp_path / "set" / STANDARD_NAMES["t10k-labels"]).unlink()
    assert find_data_dir("mnist", tmp_path / "set") is None
    with pytest.raises(FileNotFoundError, match=r"missing t10k-labels-idx1-ubyte\.gz\n"):
        load_mnist(tmp_path / "set")


# --------------------------------------------------------------------------------------------
# file-name variants
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["standard", "raw", "dotted", "dotted-gz"])
def test_file_name_variants(no_sources: Path, tmp_path: Path, style: str) -> None:
    arrays = write_set(tmp_path / style, n_train=5, n_test=2, style=style)
    assert find_data_dir("mnist", tmp_path / style) == tmp_path / style
    X_train, y_train, X_test, y_test = load_mnist(tmp_path / style)
    np.testing.assert_array_equal(X_train, arrays["train-images"].reshape(5, 784) / 255.0)
    np.testing.assert_array_equal(X_test, arrays["t10k-images"].reshape(2, 784) / 255.0)
    np.testing.assert_array_equal(y_train, arrays["train-labels"].astype(np.int64))
    np.testing.assert_array_equal(y_test, arrays["t10k-labels"].astype(np.int64))
    assert X_train.min() == 0.0 and X_train.max() == 1.0


# --------------------------------------------------------------------------------------------
# read_idx
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", list(TYPE_CODES), ids=str)
def test_read_idx_round_trip(tmp_path: Path, dtype: np.dtype, gz: bool) -> None:
    rng = np.random.default_rng(3)
    array = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = write_file(tmp_path / "a.idx", idx_bytes(array), gz=gz)
    result = read_idx(path)
    assert result.dtype == dtype and result.dtype.isnative
    assert result.shape == (3, 4, 5)
    assert result.flags.writeable
    np.testing.assert_array_equal(result, array)


def test_read_idx_detects_gzip_by_content_not_name(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.uint8).reshape(3, 4)
    gz_without_suffix = write_file(tmp_path / "labels-idx1-ubyte", idx_bytes(array), gz=True)
    raw_with_suffix = write_file(tmp_path / "labels-idx1-ubyte.gz", idx_bytes(array), gz=False)
    np.testing.assert_array_equal(read_idx(gz_without_suffix), array)
    np.testing.assert_array_equal(read_idx(str(raw_with_suffix)), array)


def test_read_idx_real_labels(shared_data_dir: Path) -> None:
    labels = read_idx(shared_data_dir / "mnist-10k" / "t10k-labels-idx1-ubyte.gz")
    assert labels.dtype == np.uint8 and labels.shape == (2000,)
    assert np.bincount(labels).tolist() == MNIST_10K_TEST_COUNTS


GOOD = idx_bytes(np.arange(24, dtype=np.int16).reshape(2, 3, 4))


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize(
    ("data", "pattern"),
    [
        (b"\x01\x00" + GOOD[2:], "wrong magic number"),
        (b"\x00\x01" + GOOD[2:], "wrong magic number"),
        (GOOD[:2] + b"\x0a" + GOOD[3:], "unknown IDX type code 0x0A"),
        (b"\x00\x00\x08\x00", "zero dimensions"),
        (b"\x00\x00", "too short"),
        (b"", "too short"),
        (GOOD[:10], "truncated header"),
        (GOOD[:-1], "truncated payload"),
        (GOOD[:16], "truncated payload"),
        (GOOD + b"\x00", "1 trailing byte"),
        (GOOD + b"\x00" * 10, "10 trailing byte"),
    ],
    ids=[
        "magic0",
        "magic1",
        "type-code",
        "zero-dims",
        "short",
        "empty",
        "header",
        "payload-1",
        "payload-all",
        "trailing-1",
        "trailing-10",
    ],
)
def test_read_idx_malformed(tmp_path: Path, data: bytes, pattern: str, gz: bool) -> None:
    path = write_file(tmp_path / "broken-idx3-ubyte", data, gz=gz)
    with pytest.raises(DataFormatError, match=pattern) as info:
        read_idx(path)
    assert isinstance(info.value, ValueError)
    assert isinstance(info.value, CvxLiftedError)
    assert str(path) in str(info.value)


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0xFF]) + data[index + 1 :]


@pytest.mark.parametrize("damage", ["crc", "size", "deflate", "cut", "method"])
def test_read_idx_corrupted_gzip(tmp_path: Path, damage: str) -> None:
    rng = np.random.default_rng(5)
    compressed = gzip.compress(idx_bytes(rng.integers(0, 256, (20, 28, 28), dtype=np.uint8)))
    broken = {
        "crc": _flip(compressed, len(compressed) - 8),
        "size": _flip(compressed, len(compressed) - 1),
        "deflate": compressed[:20] + b"\xff" * 40 + compressed[60:],
        "cut": compressed[: len(compressed) // 2],
        "method": compressed[:2] + b"\x07" + compressed[3:],  # unknown compression method
    }[damage]
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(broken)
    with pytest.raises(DataFormatError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_read_idx_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_idx(tmp_path / "nope.gz")


# --------------------------------------------------------------------------------------------
# consistency checks of a set
# --------------------------------------------------------------------------------------------


def _replace(directory: Path, role: str, array: np.ndarray) -> Path:
    return write_file(directory / STANDARD_NAMES[role], idx_bytes(array), gz=True)


def test_image_label_count_mismatch(no_sources: Path, tmp_path: Path) -> None:
    write_set(tmp_path, n_train=6)
    labels = _replace(tmp_path, "train-labels", np.zeros(5, dtype=np.uint8))
    with pytest.raises(DataFormatError, match="6 images") as info:
        load_mnist(tmp_path)
    assert "5 labels" in str(info.value) and str(labels) in str(info.value)


def test_wrong_image_size(no_sources: Path, tmp_path: Path) -> None:
    write_set(tmp_path, n_test=4)
    images = _replace(tmp_path, "t10k-images", np.zeros((4, 27, 27), dtype=np.uint8))
    with pytest.raises(DataFormatError, match=r"\(n, 28, 28\)") as info:
        load_mnist(tmp_path)
    assert str(images) in str(info.value) and "(4, 27, 27)" in str(info.value)


def test_images_of_wrong_type(no_sources: Path, tmp_path: Path) -> None:
    write_set(tmp_path, n_test=4)
    _replace(tmp_path, "t10k-images", np.zeros((4, 28, 28), dtype=np.float32))
    with pytest.raises(DataFormatError, match="unsigned-byte images"):
        load_mnist(tmp_path)


def test_labels_out_of_range(no_sources: Path, tmp_path: Path) -> None:
    write_set(tmp_path, n_train=6)
    labels = _replace(tmp_path, "train-labels", np.array([0, 1, 2, 10, 3, 200], dtype=np.uint8))
    with pytest.raises(DataFormatError, match=r"0\.\.9, found \[10, 200\]") as info:
        load_mnist(tmp_path)
    assert str(labels) in str(info.value)


def test_labels_not_one_dimensional(no_sources: Path, tmp_path: Path) -> None:
    write_set(tmp_path, n_train=6)
    _replace(tmp_path, "train-labels", np.zeros((6, 1), dtype=np.uint8))
    with pytest.raises(DataFormatError, match="1-d array"):
        load_mnist(tmp_path)


def test_malformed_file_in_set_propagates(no_sources: Path, tmp_path: Path) -> None:
    write_set(tmp_path)
    bad = write_file(tmp_path / STANDARD_NAMES["train-images"], GOOD[:-3], gz=True)
    with pytest.raises(DataFormatError, match=re.escape(str(bad))):
        load_dataset("mnist", path=tmp_path)


def test_integer_dtype_rejected(no_sources: Path, tmp_path: Path) -> None:
    write_set(tmp_path)
    with pytest.raises(ValueError, match="floating-point"):
        load_mnist(tmp_path, dtype=np.int32)
    with pytest.raises(ValueError, match="floating-point"):
        load_digits(dtype=int)


# --------------------------------------------------------------------------------------------
# digits, names
# --------------------------------------------------------------------------------------------


def test_load_digits_shapes_and_range() -> None:
    X_train, y_train, X_test, y_test = load_digits()
    assert X_train.shape == (1347, 64) and X_test.shape == (450, 64)
    assert y_train.shape == (1347,) and y_test.shape == (450,)
    assert X_train.dtype == np.float64 and y_train.dtype == np.int64
    assert X_train.min() == 0.0 and X_train.max() == 1.0
    np.testing.assert_array_equal(X_train * 16, np.rint(X_train * 16))
    # stratified: every class is in both parts, in proportions close to the whole
    total = np.bincount(np.concatenate([y_train, y_test]))
    assert total.sum() == 1797
    assert np.all(np.abs(np.bincount(y_test, minlength=10) - 0.25 * total) <= 1)


def test_load_digits_deterministic() -> None:
    first = load_digits()
    second = load_dataset("digits")
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    other = load_digits(random_state=1)
    assert not np.array_equal(first[1], other[1])
    small = load_digits(test_size=100, random_state=3, dtype=np.float32)
    assert small[0].shape == (1697, 64) and small[2].shape == (100, 64)
    assert small[0].dtype == np.float32


def test_datasets_tuple() -> None:
    assert DATASETS == ("digits", "mnist", "mnist-10k", "fashion-mnist")


def test_unknown_dataset_name() -> None:
    with pytest.raises(ValueError, match="unknown dataset 'cifar10'") as info:
        load_dataset("cifar10")
    for name in DATASETS:
        assert name in str(info.value)
    with pytest.raises(ValueError, match="known datasets"):
        find_data_dir("cifar10")


def test_digits_takes_no_path(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no path"):
        load_dataset("digits", path=tmp_path)
    with pytest.raises(ValueError, match="needs no data folder"):
        find_data_dir("digits")


@pytest.mark.parametrize("with_env", [True, False])
def test_the_data_fixture_honours_cvx_lifted_data(tmp_path: Path, with_env: bool) -> None:
    """Run the suite's conftest from a folder with no ../shared/data next to it."""
    import shutil
    import subprocess
    import sys

    tests = tmp_path / "clone" / "tests"
    tests.mkdir(parents=True)
    shutil.copy(Path(__file__).with_name("conftest.py"), tests / "conftest.py")
    (tests / "test_probe.py").write_text(
        "def test_probe(shared_data_dir):\n    print('DATA', shared_data_dir)\n"
    )
    data = tmp_path / "elsewhere"
    (data / "mnist-10k").mkdir(parents=True)
    env = {k: v for k, v in os.environ.items() if k != datasets.ENV_VAR}
    if with_env:
        env[datasets.ENV_VAR] = str(data)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-rs", "-p", "no:cacheprovider", str(tests)],
        capture_output=True, text=True, env=env, cwd=tests, timeout=300,
    )  # fmt: skip
    if with_env:
        assert proc.returncode == 0, proc.stdout
        assert f"DATA {data}" in proc.stdout
    else:
        assert "1 skipped" in proc.stdout and "expected next to the repository" in proc.stdout
