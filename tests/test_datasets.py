"""Tests for fastnn.datasets: IDX parsing, MNIST (real and bundled subset), CIFAR-10, toy sets,
one_hot and standardize."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from fastnn import datasets as ds
from fastnn.datasets import (
    Standardizer,
    cifar_to_images,
    linear_line,
    load_cifar10,
    load_mnist,
    load_mnist_subset,
    one_hot,
    read_idx,
    standardize,
    two_spirals,
    xor,
)

MNIST_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist"
TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]

IDX_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C,
             np.float32: 0x0D, np.float64: 0x0E}


# ------------------------------------------------------------------------------------------
# helpers that write files
# ------------------------------------------------------------------------------------------

def idx_bytes(arr: np.ndarray) -> bytes:
    """Encode ``arr`` as an IDX file."""
    arr = np.asarray(arr)
    code = IDX_CODES[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def write_mnist(d: Path, n_train: int = 6, n_test: int = 4, gz: bool = True, dotted: bool = False,
                seed: int = 0) -> dict[str, np.ndarray]:
    """A tiny fake MNIST in ``d``; returns the arrays written."""
    rng = np.random.default_rng(seed)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": rng.integers(0, 10, n_train, dtype=np.uint8),
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": rng.integers(0, 10, n_test, dtype=np.uint8),
    }
    for name, arr in arrays.items():
        fname = name.replace("-idx", ".idx") if dotted else name
        write(d / (fname + (".gz" if gz else "")), idx_bytes(arr), gz=gz)
    return arrays


def cifar_records(labels, seed: int = 0) -> tuple[bytes, np.ndarray]:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (len(labels), 3072), dtype=np.uint8)
    rec = np.column_stack([np.asarray(labels, dtype=np.uint8), pixels])
    return rec.tobytes(), pixels


def write_cifar(d: Path, n_per_batch=(3, 2), n_test: int = 2) -> dict[str, tuple]:
    d.mkdir(parents=True, exist_ok=True)
    out = {}
    for i, n in enumerate(n_per_batch, start=1):
        labels = np.arange(n) % 10
        data, pixels = cifar_records(labels, seed=i)
        write(d / f"data_batch_{i}.bin", data)
        out[f"data_batch_{i}"] = (pixels, labels)
    labels = (np.arange(n_test) + 7) % 10
    data, pixels = cifar_records(labels, seed=99)
    write(d / "test_batch.bin", data)
    out["test_batch"] = (pixels, labels)
    return out


# ------------------------------------------------------------------------------------------
# read_idx
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("dtype", list(IDX_CODES), ids=lambda t: np.dtype(t).name)
def test_read_idx_round_trip(tmp_path, dtype, gz):
    arr = (np.arange(2 * 3 * 4) - 5).astype(dtype).reshape(2, 3, 4)
    if dtype is np.uint8:
        arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4) * 10
    f = write(tmp_path / "a.idx", idx_bytes(arr), gz=gz)  # no .gz suffix: detected by magic
    got = read_idx(f)
    assert got.dtype == np.dtype(dtype) and got.dtype.isnative
    assert got.shape == (2, 3, 4) and got.flags.writeable
    np.testing.assert_array_equal(got, arr)


def test_read_idx_accepts_str_and_file_object(tmp_path):
    arr = np.arange(5, dtype=np.int32)
    f = write(tmp_path / "v.idx", idx_bytes(arr))
    np.testing.assert_array_equal(read_idx(str(f)), arr)
    with open(f, "rb") as fh:
        np.testing.assert_array_equal(read_idx(fh), arr)


@pytest.mark.parametrize("gz", [False, True], ids=["raw", "gzip"])
@pytest.mark.parametrize("mutate, match", [
    (lambda b: b"\x01\x00" + b[2:], "bad IDX magic"),
    (lambda b: b[:2] + b"\x07" + b[3:], "unknown IDX type code 0x07"),
    (lambda b: b[:-1], r"truncated.*need 24 bytes.*found 23"),
    (lambda b: b + b"\x00\x00", r"trailing bytes.*need 24 bytes.*found 26"),
    (lambda b: b[:6], "truncated IDX header"),
    (lambda b: b[:3], "too short"),
], ids=["magic", "type-code", "truncated", "trailing", "header", "tiny"])
def test_read_idx_bad_files(tmp_path, mutate, match, gz):
    good = idx_bytes(np.zeros((2, 3, 4), np.uint8))
    f = write(tmp_path / "bad-file", mutate(good), gz=gz)
    with pytest.raises(ValueError, match=match) as exc:
        read_idx(f)
    assert "bad-file" in str(exc.value)


def test_read_idx_corrupt_gzip(tmp_path):
    data = gzip.compress(idx_bytes(np.zeros(100, np.uint8)))
    f = write(tmp_path / "x.gz", data[:-12])  # cut off: gzip magic but broken stream
    with pytest.raises(ValueError, match=r"x\.gz.*corrupt gzip"):
        read_idx(f)
    f2 = write(tmp_path / "y.gz", data[:10] + b"\xff" * 20 + data[30:])
    with pytest.raises(ValueError, match=r"y\.gz.*corrupt gzip"):
        read_idx(f2)


def test_read_idx_missing_and_wrong_type(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.idx"):
        read_idx(tmp_path / "nope.idx")
    with pytest.raises(TypeError, match="path"):
        read_idx(123)


# ------------------------------------------------------------------------------------------
# load_mnist on files the test writes
# ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("gz, dotted", [(True, False), (False, False), (True, True),
                                        (False, True)], ids=["gz", "raw", "dotted-gz", "dotted"])
def test_load_mnist_round_trip(tmp_path, gz, dotted):
    arrays = write_mnist(tmp_path, gz=gz, dotted=dotted)
    (Xtr, ytr), (Xte, yte) = load_mnist(tmp_path)
    for X, y, img, lbl in ((Xtr, ytr, "train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
                           (Xte, yte, "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")):
        assert X.dtype == np.float32 and X.flags.c_contiguous and X.shape == (len(y), 784)
        assert y.dtype == np.int64
        np.testing.assert_array_equal(X, arrays[img].reshape(len(y), 784) / np.float32(255))
        np.testing.assert_array_equal(y, arrays[lbl])
        assert 0.0 <= X.min() and X.max() <= 1.0


def test_load_mnist_subset_argument(tmp_path):
    write_mnist(tmp_path, n_train=6, n_test=4)
    (Xtr, ytr), (Xte, yte) = load_mnist(tmp_path, subset="test")
    assert Xtr.shape == (0, 784) and ytr.shape == (0,) and Xte.shape == (4, 784)
    with pytest.raises(ValueError, match="subset='small'"):
        load_mnist(tmp_path, subset="small")


def test_load_mnist_missing_files(tmp_path):
    write_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as exc:
        load_mnist(tmp_path)
    msg = str(exc.value)
    assert "t10k-labels-idx1-ubyte" in msg and "t10k-labels.idx1-ubyte.gz" in msg
    assert str(tmp_path) in msg and "train-images" not in msg
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_mnist(tmp_path / "absent")


def test_load_mnist_default_locations(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTNN_MNIST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(FileNotFoundError) as exc:
        load_mnist()
    msg = str(exc.value)
    assert "FASTNN_MNIST" in msg and "load_mnist_subset()" in msg and "path=" in msg
    assert str(tmp_path / ".cache" / "fastnn" / "mnist") in msg and "yann.lecun.com" in msg
    # ~/.cache/fastnn/mnist is used when it holds the files
    cache = tmp_path / ".cache" / "fastnn" / "mnist"
    cache.mkdir(parents=True)
    write_mnist(cache, n_train=3)
    assert load_mnist()[0][0].shape == (3, 784)
    # $FASTNN_MNIST wins
    other = tmp_path / "other"
    other.mkdir()
    write_mnist(other, n_train=5)
    monkeypatch.setenv("FASTNN_MNIST", str(other))
    assert load_mnist()[0][0].shape == (5, 784)


def _replace(d: Path, name: str, arr: np.ndarray) -> None:
    write(d / (name + ".gz"), idx_bytes(arr), gz=True)


def test_load_mnist_count_mismatch(tmp_path):
    write_mnist(tmp_path, n_train=6)
    _replace(tmp_path, "train-labels-idx1-ubyte", np.zeros(5, np.uint8))
    with pytest.raises(ValueError, match="count mismatch") as exc:
        load_mnist(tmp_path)
    msg = str(exc.value)
    assert "train-images-idx3-ubyte.gz" in msg and "train-labels-idx1-ubyte.gz" in msg
    assert "6 images" in msg and "5 labels" in msg


def test_load_mnist_labels_out_of_range(tmp_path):
    write_mnist(tmp_path, n_test=4)
    _replace(tmp_path, "t10k-labels-idx1-ubyte", np.array([1, 2, 10, 3], np.uint8))
    with pytest.raises(ValueError, match=r"t10k-labels.*label 10 at index 2"):
        load_mnist(tmp_path)


@pytest.mark.parametrize("name, arr, match", [
    ("train-images-idx3-ubyte", np.zeros((6, 28, 27), np.uint8), r"\(n, 28, 28\)"),
    ("train-images-idx3-ubyte", np.zeros((6, 784), np.uint8), r"\(n, 28, 28\)"),
    ("train-images-idx3-ubyte", np.zeros((6, 28, 28), np.int32), "uint8 images"),
    ("train-labels-idx1-ubyte", np.zeros((6, 1), np.uint8), "1-D uint8 labels"),
], ids=["width", "2d", "dtype", "labels-2d"])
def test_load_mnist_wrong_dims(tmp_path, name, arr, match):
    write_mnist(tmp_path, n_train=6)
    _replace(tmp_path, name, arr)
    with pytest.raises(ValueError, match=match) as exc:
        load_mnist(tmp_path)
    assert name in str(exc.value)


# ------------------------------------------------------------------------------------------
# real MNIST and the bundled subset
# ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def real_mnist():
    if not all((MNIST_DIR / f"{n}.gz").is_file() for n in ds.MNIST_FILES.values()):
        pytest.skip(f"real MNIST not found at {MNIST_DIR}")
    return load_mnist(MNIST_DIR)


def test_real_mnist_shapes_and_counts(real_mnist):
    (Xtr, ytr), (Xte, yte) = real_mnist
    assert Xtr.shape == (60000, 784) and Xte.shape == (10000, 784)
    assert Xtr.dtype == Xte.dtype == np.float32 and ytr.dtype == yte.dtype == np.int64
    assert Xtr.flags.c_contiguous and Xte.flags.c_contiguous
    assert np.bincount(ytr, minlength=10).tolist() == TRAIN_COUNTS
    assert np.bincount(yte, minlength=10).tolist() == TEST_COUNTS
    assert Xtr.min() == 0.0 and Xtr.max() == 1.0


def test_real_mnist_pixel_statistics(real_mnist):
    Xtr = real_mnist[0][0]
    assert round(float(Xtr.mean()), 4) == 0.1307  # float32 pairwise sums: ample accuracy
    assert round(float(Xtr.std()), 4) == 0.3081


def test_bundled_subset_is_drawn_from_real_mnist(real_mnist):
    with np.load(Path(ds.__file__).parent / "data" / ds.MNIST_SUBSET_FILE,
                 allow_pickle=False) as z:
        idx_tr, idx_te = z["train_index"], z["test_index"]
    (Xs, ys), (Xst, yst) = load_mnist_subset()
    (Xtr, ytr), (Xte, yte) = real_mnist
    assert len(np.unique(idx_tr)) == 10000 and len(np.unique(idx_te)) == 2000
    np.testing.assert_array_equal(Xs, Xtr[idx_tr])
    np.testing.assert_array_equal(ys, ytr[idx_tr])
    np.testing.assert_array_equal(Xst, Xte[idx_te])
    np.testing.assert_array_equal(yst, yte[idx_te])


def test_bundled_subset():
    (Xtr, ytr), (Xte, yte) = load_mnist_subset()
    assert Xtr.shape == (10000, 784) and Xte.shape == (2000, 784)
    assert ytr.shape == (10000,) and yte.shape == (2000,)
    assert Xtr.dtype == Xte.dtype == np.float32 and ytr.dtype == yte.dtype == np.int64
    assert Xtr.flags.c_contiguous and Xte.flags.c_contiguous
    for X in (Xtr, Xte):
        assert X.min() == 0.0 and X.max() == 1.0
    assert np.bincount(ytr, minlength=10).tolist() == [1000] * 10
    assert np.bincount(yte, minlength=10).tolist() == [200] * 10
    assert not np.all(np.diff(ytr) >= 0)  # shuffled, not sorted by class


def test_bundled_subset_file_metadata():
    path = Path(ds.__file__).parent / "data" / ds.MNIST_SUBSET_FILE
    assert path.stat().st_size < 3_000_000
    with np.load(path, allow_pickle=False) as z:
        assert int(z["format_version"]) == ds.MNIST_SUBSET_FORMAT_VERSION
        assert z["source"].dtype.kind == "U" and "MNIST" in str(z["source"])
        assert z["X_train"].dtype == np.uint8 and z["y_train"].dtype == np.uint8


# ------------------------------------------------------------------------------------------
# CIFAR-10
# ------------------------------------------------------------------------------------------

def _check_cifar(result, written, batches=(1, 2)):
    (Xtr, ytr), (Xte, yte) = result
    pix = np.concatenate([written[f"data_batch_{b}"][0] for b in batches])
    lab = np.concatenate([written[f"data_batch_{b}"][1] for b in batches])
    assert Xtr.dtype == Xte.dtype == np.float32 and ytr.dtype == yte.dtype == np.int64
    assert Xtr.shape == (len(lab), 3072) and Xtr.flags.c_contiguous and Xte.flags.c_contiguous
    np.testing.assert_array_equal(Xtr, pix / np.float32(255))
    np.testing.assert_array_equal(ytr, lab)
    np.testing.assert_array_equal(Xte, written["test_batch"][0] / np.float32(255))
    np.testing.assert_array_equal(yte, written["test_batch"][1])


def test_cifar_round_trip(tmp_path):
    written = write_cifar(tmp_path)
    _check_cifar(load_cifar10(tmp_path), written)
    _check_cifar(load_cifar10(str(tmp_path), batches=[2]), written, batches=(2,))
    _check_cifar(load_cifar10(tmp_path, batches=(2, 1)), written, batches=(2, 1))


def test_cifar_subdirectory_form(tmp_path):
    written = write_cifar(tmp_path / "cifar-10-batches-bin")
    _check_cifar(load_cifar10(tmp_path), written)


def test_cifar_bad_size(tmp_path):
    write_cifar(tmp_path)
    f = tmp_path / "data_batch_2.bin"
    f.write_bytes(f.read_bytes()[:-1])
    with pytest.raises(ValueError, match=r"data_batch_2\.bin.*size 6145 bytes"):
        load_cifar10(tmp_path)
    f.write_bytes(b"")
    with pytest.raises(ValueError, match=r"data_batch_2\.bin.*size 0"):
        load_cifar10(tmp_path)


def test_cifar_bad_label(tmp_path):
    write_cifar(tmp_path)
    data, _ = cifar_records([3, 12])
    write(tmp_path / "test_batch.bin", data)
    with pytest.raises(ValueError, match=r"test_batch\.bin.*label 12 in record 1"):
        load_cifar10(tmp_path)


def test_cifar_missing_and_bad_batches(tmp_path):
    write_cifar(tmp_path)
    with pytest.raises(FileNotFoundError, match=r"data_batch_3\.bin"):
        load_cifar10(tmp_path, batches=[1, 3])
    for bad in ([], [0], [6], [1, 1], [True], [1.0]):
        with pytest.raises(ValueError, match="batches="):
            load_cifar10(tmp_path, batches=bad)
    with pytest.raises(TypeError, match="batches"):
        load_cifar10(tmp_path, batches=3)
    (tmp_path / "test_batch.bin").unlink()
    with pytest.raises(FileNotFoundError, match=r"test_batch\.bin"):
        load_cifar10(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="data_batch_1.bin"):
        load_cifar10(empty)
    with pytest.raises(FileNotFoundError, match="not a directory"):
        load_cifar10(tmp_path / "absent")


def test_cifar_to_images():
    X = np.zeros((2, 3072), np.float32)
    X[1, 0] = 1.0            # red plane, pixel (0, 0)
    X[1, 1024 + 33] = 2.0    # green plane, pixel (1, 1)
    X[1, 2048 + 32 * 31 + 5] = 3.0  # blue plane, pixel (31, 5)
    img = cifar_to_images(X)
    assert img.shape == (2, 32, 32, 3)
    assert img[1, 0, 0, 0] == 1.0 and img[1, 1, 1, 1] == 2.0 and img[1, 31, 5, 2] == 3.0
    assert img.sum() == 6.0
    assert cifar_to_images(X[1]).shape == (32, 32, 3)
    with pytest.raises(ValueError, match=r"\(n, 3072\)"):
        cifar_to_images(np.zeros((2, 784)))


# ------------------------------------------------------------------------------------------
# toy sets
# ------------------------------------------------------------------------------------------

def test_xor_truth_table():
    X, y = xor()
    np.testing.assert_array_equal(X, [[0, 0], [0, 1], [1, 0], [1, 1]])
    np.testing.assert_array_equal(y, [0, 1, 1, 0])
    assert X.dtype == np.float64 and y.dtype == np.int64


def test_xor_noisy():
    X, y = xor(n=101, noise=0.05, seed=3)
    assert X.shape == (101, 2) and y.shape == (101,)
    assert set(np.bincount(y).tolist()) <= {50, 51}
    np.testing.assert_array_equal(y, (np.round(X[:, 0]) != np.round(X[:, 1])).astype(int))
    X2, y2 = xor(n=101, noise=0.05, seed=3)
    np.testing.assert_array_equal(X, X2)
    np.testing.assert_array_equal(y, y2)
    assert not np.array_equal(X, xor(n=101, noise=0.05, seed=4)[0])
    X0, y0 = xor(n=8, noise=0.0, seed=0)
    assert set(map(tuple, X0)) == {(0, 0), (0, 1), (1, 0), (1, 1)}


def test_two_spirals():
    X, y = two_spirals()
    assert X.shape == (200, 2) and X.dtype == np.float64 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [100, 100]
    np.testing.assert_allclose(X[y == 1], -X[y == 0])  # rotated by 180 degrees
    assert len(np.unique(X, axis=0)) == 200
    Xa, _ = two_spirals(51, noise=0.1, seed=1)
    Xb, yb = two_spirals(51, noise=0.1, seed=1)
    np.testing.assert_array_equal(Xa, Xb)
    assert np.bincount(yb).tolist() == [26, 25]
    assert not np.array_equal(Xa, two_spirals(51, noise=0.1, seed=2)[0])


def test_linear_line():
    X, y = linear_line(n=50, slope=-3.0, intercept=0.5, noise=0.0)
    assert X.shape == y.shape == (50, 1) and X.dtype == y.dtype == np.float64
    np.testing.assert_allclose(y, -3.0 * X + 0.5)
    Xa, ya = linear_line(seed=7)
    Xb, yb = linear_line(seed=7)
    np.testing.assert_array_equal(ya, yb)
    assert Xa.shape == (100, 1)
    slope, intercept = np.polyfit(Xa.ravel(), ya.ravel(), 1)
    assert abs(slope - 2.0) < 0.1 and abs(intercept - 1.0) < 0.1


@pytest.mark.parametrize("call, exc, match", [
    (lambda: xor(n=0), ValueError, "n=0"),
    (lambda: xor(n=2.5), TypeError, "n must be an int"),
    (lambda: two_spirals(n=1), ValueError, "n=1"),
    (lambda: two_spirals(noise=-1), ValueError, "noise=-1"),
    (lambda: two_spirals(seed=1.5), TypeError, "seed"),
    (lambda: linear_line(noise=float("nan")), ValueError, "noise=nan"),
    (lambda: linear_line(slope="2"), TypeError, "slope"),
    (lambda: linear_line(n=True), TypeError, "n must be an int"),
])
def test_toy_bad_arguments(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


# ------------------------------------------------------------------------------------------
# one_hot
# ------------------------------------------------------------------------------------------

def test_one_hot():
    Y = one_hot([2, 0, 1, 2])
    assert Y.dtype == np.float32 and Y.shape == (4, 3)
    np.testing.assert_array_equal(Y, [[0, 0, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]])
    assert one_hot(np.array([1, 0], np.uint8), n_classes=5, dtype=np.float64).shape == (2, 5)
    np.testing.assert_array_equal(one_hot(np.array([1.0, 0.0])), [[0, 1], [1, 0]])
    assert one_hot(np.array([], np.int64), n_classes=3).shape == (0, 3)


@pytest.mark.parametrize("y, kw, exc, match", [
    ([[0], [1]], {}, ValueError, "1-D"),
    ([0.5, 1.0], {}, ValueError, r"y\[0\] = 0.5"),
    ([0.0, np.nan], {}, ValueError, "integral"),
    ([0, -1], {}, ValueError, r"y\[1\] = -1"),
    ([0, 3], {"n_classes": 3}, ValueError, r"y\[1\] = 3.*n_classes=3"),
    ([0, 1], {"n_classes": 0}, ValueError, "n_classes=0"),
    ([0, 1], {"n_classes": 2.0}, TypeError, "n_classes"),
    (np.array(["a", "b"]), {}, TypeError, "dtype <U1"),
    (np.array([True, False]), {}, TypeError, "bool"),
    (np.array([], np.int64), {}, ValueError, "empty"),
])
def test_one_hot_errors(y, kw, exc, match):
    with pytest.raises(exc, match=match):
        one_hot(y, **kw)


# ------------------------------------------------------------------------------------------
# standardize / Standardizer
# ------------------------------------------------------------------------------------------

def test_standardize():
    rng = np.random.default_rng(0)
    Xtr = rng.normal(5.0, 3.0, (200, 3))
    Xtr[:, 2] = 7.0  # constant feature
    Xte = rng.normal(5.0, 3.0, (50, 3))
    Xtr_copy, Xte_copy = Xtr.copy(), Xte.copy()
    Xs_tr, Xs_te, (mean, std) = standardize(Xtr, Xte)
    np.testing.assert_array_equal(Xtr, Xtr_copy)  # inputs untouched
    np.testing.assert_array_equal(Xte, Xte_copy)
    np.testing.assert_allclose(Xs_tr.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(Xs_tr.std(axis=0), [1.0, 1.0, 0.0], atol=1e-12)
    assert std[2] == 1.0 and mean[2] == 7.0 and np.all(Xs_tr[:, 2] == 0.0)
    np.testing.assert_allclose(Xs_te, (Xte - mean) / std)
    assert np.isfinite(Xs_tr).all()
    only, (mean1, std1) = standardize(Xtr)  # no others: (Xs_train, (mean, std))
    np.testing.assert_array_equal(only, Xs_tr)
    np.testing.assert_array_equal(mean1, mean)


def test_standardize_dtypes():
    X32 = np.arange(12, dtype=np.float32).reshape(4, 3)
    Xs, (mean, std) = standardize(X32)
    assert Xs.dtype == np.float32 and mean.dtype == np.float64
    Xi, _ = standardize(np.arange(12).reshape(4, 3))
    assert Xi.dtype == np.float64
    np.testing.assert_allclose(Xi, Xs, rtol=1e-6)


def test_standardizer_class():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30, 4))
    s = Standardizer()
    Xs = s.fit_transform(X)
    np.testing.assert_allclose(s.inverse_transform(Xs), X)
    np.testing.assert_allclose(Xs, standardize(X)[0])
    with pytest.raises(ValueError, match="2 features.*fitted on 4"):
        s.transform(np.zeros((3, 2)))
    with pytest.raises(ValueError, match="not fitted"):
        Standardizer().transform(X)


@pytest.mark.parametrize("args, kw, exc, match", [
    ((np.zeros(5),), {}, ValueError, r"reshape\(-1, 1\)"),
    ((np.zeros((0, 3)),), {}, ValueError, "0 samples"),
    ((np.array([[1.0, np.nan]]),), {}, ValueError, "NaN"),
    ((np.array([["a"]]),), {}, TypeError, "numeric"),
    ((np.zeros((4, 3)), np.zeros((2, 2))), {}, ValueError, r"others\[0\].*2 features"),
    ((np.zeros((4, 3)),), {"eps": -1.0}, ValueError, "eps=-1.0"),
])
def test_standardize_errors(args, kw, exc, match):
    with pytest.raises(exc, match=match):
        standardize(*args, **kw)
