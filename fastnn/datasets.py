"""Datasets for fastnn: MNIST, CIFAR-10, a bundled MNIST subset, toy sets, and small helpers.

Everything here is pure numpy + the standard library; nothing is downloaded.

Real data
    ``read_idx``          parse any IDX file (the MNIST format), gzip or raw.
    ``load_mnist``        the full MNIST from a directory of the four IDX files.
    ``load_mnist_subset`` a 10,000 / 2,000 class-balanced MNIST subset shipped inside the package.
    ``load_cifar10``      CIFAR-10, binary version, from a directory of ``*.bin`` batches.
    ``cifar_to_images``   reshape CIFAR rows (channel-major) into ``(n, 32, 32, 3)`` images.

Image loaders return ``((X_train, y_train), (X_test, y_test))`` with ``X`` float32 in
``[0, 1]``, shape ``(n, n_features)``, C-contiguous, and ``y`` int64 class labels.

Toy sets (float64 ``X`` of shape ``(n, d)``)
    ``xor``, ``two_spirals`` (classification, int64 labels 0/1) and ``linear_line``
    (regression, ``y`` of shape ``(n, 1)``).

Helpers
    ``one_hot``      integer labels -> one-hot matrix.
    ``standardize``  zero-mean / unit-variance features using training statistics;
    ``Standardizer`` the same as a fit/transform object.
"""
from __future__ import annotations

import gzip
import importlib.resources
import math
import os
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO, Union

import numpy as np
import numpy.typing as npt

from fastnn.kernels import config

__all__ = [
    "read_idx",
    "load_mnist",
    "load_mnist_subset",
    "load_cifar10",
    "cifar_to_images",
    "xor",
    "two_spirals",
    "linear_line",
    "one_hot",
    "standardize",
    "Standardizer",
]

PathLike = Union[str, "os.PathLike[str]"]
Split = tuple[np.ndarray, np.ndarray]

# --------------------------------------------------------------------------------------------
# IDX files
# --------------------------------------------------------------------------------------------

#: IDX type code byte -> big-endian numpy dtype of the payload.
IDX_DTYPES: dict[int, np.dtype] = {
    0x08: np.dtype("u1"),
    0x09: np.dtype("i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

_GZIP_MAGIC = b"\x1f\x8b"


def _read_bytes(file: PathLike | BinaryIO) -> tuple[bytes, str]:
    """Return the bytes of ``file`` (a path or a binary file object) and a name for messages."""
    if hasattr(file, "read"):
        data = file.read()
        name = str(getattr(file, "name", repr(file)))
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"file object {name} returned {type(data).__name__}, not bytes; "
                            "open it in binary mode ('rb')")
        return bytes(data), name
    if not isinstance(file, (str, os.PathLike)):
        raise TypeError(f"file must be a path (str or os.PathLike) or a binary file object, "
                        f"got {type(file).__name__}")
    p = Path(file)
    if not p.is_file():
        raise FileNotFoundError(f"IDX file {str(p)!r} does not exist (or is not a file); "
                                "check the path")
    return p.read_bytes(), str(p)


def read_idx(file: PathLike | BinaryIO) -> np.ndarray:
    """Parse an IDX file (gzip-compressed or raw) into a native-endian, writable numpy array.

    Layout: two zero bytes, a type code byte (0x08 uint8, 0x09 int8, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), a byte giving the number of dimensions, one big-endian uint32
    per dimension, then the payload in C order.  Gzip is recognised by the first two bytes
    (0x1f 0x8b), not by the file name.

    Raises ``ValueError`` (naming the file) for corrupt gzip, a bad magic number, an unknown
    type code, a truncated header, or a payload whose size is not exactly the product of the
    dimensions times the item size.
    """
    data, name = _read_bytes(file)
    if data[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise ValueError(f"{name}: corrupt gzip data ({exc}); re-download or re-extract "
                             "the file") from exc
    if len(data) < 4:
        raise ValueError(f"{name}: only {len(data)} bytes, too short for an IDX header "
                         "(needs at least 4); the file is truncated or not an IDX file")
    if data[0] != 0 or data[1] != 0:
        raise ValueError(f"{name}: bad IDX magic number 0x{data[:4].hex()}; an IDX file starts "
                         "with two zero bytes (e.g. 0x00000803 for images) - is this an IDX file?")
    code, ndim = data[2], data[3]
    if code not in IDX_DTYPES:
        allowed = ", ".join(f"0x{c:02X}" for c in IDX_DTYPES)
        raise ValueError(f"{name}: unknown IDX type code 0x{code:02X}; expected one of {allowed}")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{name}: truncated IDX header: {ndim} dimensions need {header} header "
                         f"bytes but the file has {len(data)}")
    dims = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    dtype = IDX_DTYPES[code]
    expected = math.prod(dims) * dtype.itemsize
    actual = len(data) - header
    if actual != expected:
        what = "truncated" if actual < expected else "has trailing bytes"
        raise ValueError(f"{name}: IDX payload {what}: dimensions {dims} of {dtype.name} need "
                         f"{expected} bytes after the {header}-byte header, found {actual}")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(dims)
    return arr.astype(dtype.newbyteorder("="))  # copy: native byte order, writable


# --------------------------------------------------------------------------------------------
# MNIST
# --------------------------------------------------------------------------------------------

#: The four MNIST files, by role, with their standard names.
MNIST_FILES: dict[str, str] = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
MNIST_ENV_VAR = "FASTNN_MNIST"
MNIST_URL = "http://yann.lecun.com/exdb/mnist/"


def _default_mnist_dir() -> Path:
    return Path.home() / ".cache" / "fastnn" / "mnist"


def _mnist_candidates(name: str) -> list[str]:
    """File names accepted for one MNIST file: standard and dotted forms, raw or ``.gz``."""
    dotted = name.replace("-idx", ".idx")  # train-images-idx3-ubyte -> train-images.idx3-ubyte
    return [name, name + ".gz", dotted, dotted + ".gz"]


def _find_mnist_files(directory: PathLike) -> dict[str, Path]:
    """Locate the four MNIST files in ``directory``; ``FileNotFoundError`` lists what is missing."""
    d = Path(directory).expanduser()
    if not d.is_dir():
        raise FileNotFoundError(f"MNIST directory {str(d)!r} does not exist or is not a "
                                "directory; pass path= a directory holding the four IDX files")
    found: dict[str, Path] = {}
    missing: list[str] = []
    for role, name in MNIST_FILES.items():
        for cand in _mnist_candidates(name):
            if (d / cand).is_file():
                found[role] = d / cand
                break
        else:
            missing.append(" or ".join(_mnist_candidates(name)))
    if missing:
        raise FileNotFoundError(f"MNIST files missing from {str(d)!r}: looked for "
                                + "; ".join(missing)
                                + f". Put the four IDX files (from {MNIST_URL} or any mirror) "
                                "there")
    return found


def _resolve_mnist_dir(path: PathLike | None) -> Path:
    if path is not None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str, os.PathLike or None, got {type(path).__name__}")
        return Path(path).expanduser()
    env = config.get(MNIST_ENV_VAR)
    if env:
        return Path(env)
    default = _default_mnist_dir()
    try:
        _find_mnist_files(default)
    except FileNotFoundError:
        names = ", ".join(MNIST_FILES.values())
        raise FileNotFoundError(
            f"MNIST not found: no path given, ${MNIST_ENV_VAR} is not set, and {str(default)!r} "
            f"does not hold the four files ({names}; .gz or raw). Download them from {MNIST_URL} "
            f"(or any mirror) into {str(default)!r}, or pass path=<directory>, or set "
            f"{MNIST_ENV_VAR}=<directory>; or use load_mnist_subset() for the 10,000-image "
            "subset bundled with fastnn") from None
    return default


def _check_mnist_pair(images: np.ndarray, labels: np.ndarray,
                      img_file: Path, lbl_file: Path) -> Split:
    """Validate one images/labels pair and convert to (float32 [0,1] (n, 784), int64 (n,))."""
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"{img_file}: expected uint8 images of shape (n, 28, 28), got "
                         f"{images.dtype} {images.shape}; is this an MNIST image file?")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise ValueError(f"{lbl_file}: expected 1-D uint8 labels, got {labels.dtype} "
                         f"{labels.shape}; is this an MNIST label file?")
    if len(images) != len(labels):
        raise ValueError(f"MNIST image/label count mismatch: {img_file} holds {len(images)} "
                         f"images but {lbl_file} holds {len(labels)} labels; the files do not "
                         "belong together")
    if labels.size and labels.max() > 9:
        bad = int(np.flatnonzero(labels > 9)[0])
        raise ValueError(f"{lbl_file}: label {int(labels[bad])} at index {bad} is outside 0..9; "
                         "the label file is corrupt or not MNIST")
    return _to_unit_float(images.reshape(len(images), -1)), labels.astype(np.int64)


def _to_unit_float(pixels: np.ndarray) -> np.ndarray:
    """uint8 (n, d) -> new C-contiguous float32 array in [0, 1] (x / 255)."""
    X = np.array(pixels, dtype=np.float32, order="C")
    np.divide(X, np.float32(255), out=X)
    return X


def load_mnist(path: PathLike | None = None, *,
               subset: str | None = None) -> tuple[Split, Split]:
    """Load MNIST from IDX files: ``((X_train, y_train), (X_test, y_test))``.

    ``X`` is float32 in [0, 1] of shape ``(n, 784)`` (row-major 28x28 pixels, C-contiguous);
    ``y`` is int64 in 0..9.  60,000 training and 10,000 test images.

    path: directory holding ``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
        ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each raw or gzipped (``.gz``);
        the dotted names (``train-images.idx3-ubyte``) are accepted too.  If None: the
        directory in ``$FASTNN_MNIST`` if set, else ``~/.cache/fastnn/mnist``.
    subset: None or ``"train"`` / ``"test"`` to read only that split (the other split is
        returned as empty arrays of the right shape and dtype).
    """
    if subset not in (None, "train", "test"):
        raise ValueError(f"subset={subset!r} is not supported; use None (both splits), "
                         "'train' or 'test' (for the bundled small subset see load_mnist_subset())")
    files = _find_mnist_files(_resolve_mnist_dir(path))
    out: list[Split] = []
    for split in ("train", "test"):
        if subset is not None and split != subset:
            out.append((np.zeros((0, 784), np.float32), np.zeros(0, np.int64)))
            continue
        img_file, lbl_file = files[f"{split}_images"], files[f"{split}_labels"]
        out.append(_check_mnist_pair(read_idx(img_file), read_idx(lbl_file), img_file, lbl_file))
    return out[0], out[1]


# --------------------------------------------------------------------------------------------
# Bundled MNIST subset
# --------------------------------------------------------------------------------------------

MNIST_SUBSET_FILE = "mnist_subset.npz"
MNIST_SUBSET_FORMAT_VERSION = 1
_SUBSET_KEYS = ("X_train", "y_train", "X_test", "y_test", "format_version")


def load_mnist_subset() -> tuple[Split, Split]:
    """Load the MNIST subset bundled with fastnn: ``((X_train, y_train), (X_test, y_test))``.

    10,000 training images (1,000 per digit) and 2,000 test images (200 per digit), ``X``
    float32 in [0, 1] of shape ``(n, 784)``, ``y`` int64 in 0..9 - the same format as
    ``load_mnist``.  Needs no download.

    How it was built: ``scripts/make_mnist_subset.py`` read the official MNIST IDX files
    (sha256-checked), drew the images class-stratified without replacement with
    ``numpy.random.default_rng(seed)`` (seed 0) from the 60,000 training and 10,000 test
    images, shuffled each split with the same generator, and saved uint8 pixels/labels with
    ``numpy.savez_compressed`` to ``fastnn/data/mnist_subset.npz`` (also storing the source row
    indices ``train_index`` / ``test_index``, a ``format_version`` and a ``source`` note).
    It is read with ``allow_pickle=False`` via ``importlib.resources``.
    """
    resource = importlib.resources.files("fastnn") / "data" / MNIST_SUBSET_FILE
    if not resource.is_file():
        raise FileNotFoundError(f"bundled MNIST subset fastnn/data/{MNIST_SUBSET_FILE} is missing "
                                "from the installed package; reinstall fastnn or regenerate it "
                                "with scripts/make_mnist_subset.py <mnist-dir>")
    with resource.open("rb") as fh, np.load(fh, allow_pickle=False) as z:
        missing = [k for k in _SUBSET_KEYS if k not in z.files]
        version = int(z["format_version"]) if "format_version" in z.files else None
        if missing or version != MNIST_SUBSET_FORMAT_VERSION:
            raise ValueError(f"bundled {MNIST_SUBSET_FILE} is not format version "
                             f"{MNIST_SUBSET_FORMAT_VERSION} (version {version}, missing keys "
                             f"{missing}); regenerate it with scripts/make_mnist_subset.py")
        arrays = {k: z[k] for k in _SUBSET_KEYS[:4]}
    return ((_to_unit_float(arrays["X_train"]), arrays["y_train"].astype(np.int64)),
            (_to_unit_float(arrays["X_test"]), arrays["y_test"].astype(np.int64)))


# --------------------------------------------------------------------------------------------
# CIFAR-10 (binary version)
# --------------------------------------------------------------------------------------------

CIFAR_RECORD_BYTES = 1 + 3 * 32 * 32  # label byte, then R, G, B planes of 32x32
CIFAR_SUBDIR = "cifar-10-batches-bin"
CIFAR_N_TRAIN_BATCHES = 5


def _cifar_dir(path: PathLike) -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__}")
    d = Path(path).expanduser()
    if not d.is_dir():
        raise FileNotFoundError(f"CIFAR-10 directory {str(d)!r} does not exist or is not a "
                                "directory; pass the directory holding data_batch_*.bin and "
                                f"test_batch.bin (or its parent containing {CIFAR_SUBDIR}/)")
    names = [f"data_batch_{i}.bin" for i in range(1, CIFAR_N_TRAIN_BATCHES + 1)]
    has_batches = any((d / name).is_file() for name in names + ["test_batch.bin"])
    if not has_batches and (d / CIFAR_SUBDIR).is_dir():
        return d / CIFAR_SUBDIR
    return d


def _read_cifar_batch(file: Path) -> Split:
    """One CIFAR-10 binary batch -> (float32 [0,1] (n, 3072), int64 (n,))."""
    size = file.stat().st_size
    if size == 0 or size % CIFAR_RECORD_BYTES:
        raise ValueError(f"{file}: size {size} bytes is not a positive multiple of the "
                         f"{CIFAR_RECORD_BYTES}-byte CIFAR-10 record (1 label + 3072 pixels); "
                         "the file is truncated or not a CIFAR-10 binary batch "
                         "(the Python-pickle version is not supported)")
    records = np.fromfile(file, dtype=np.uint8).reshape(-1, CIFAR_RECORD_BYTES)
    labels = records[:, 0]
    if labels.max() > 9:
        bad = int(np.flatnonzero(labels > 9)[0])
        raise ValueError(f"{file}: label {int(labels[bad])} in record {bad} is outside 0..9; "
                         "is this CIFAR-100 or a corrupt file? Only CIFAR-10 is supported")
    return _to_unit_float(records[:, 1:]), labels.astype(np.int64)


CIFAR_ENV_VAR = "FASTNN_CIFAR10"
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


def load_cifar10(path: PathLike | None = None, *,
                 batches: Sequence[int] | None = None) -> tuple[Split, Split]:
    """Load CIFAR-10 (binary version): ``((X_train, y_train), (X_test, y_test))``.

    path: directory with ``data_batch_1.bin`` .. ``data_batch_5.bin`` and ``test_batch.bin``,
        or its parent that contains ``cifar-10-batches-bin/`` (as the archive extracts); default:
        the directory in ``$FASTNN_CIFAR10`` (CIFAR-10 is not bundled with fastnn).

    batches: training batch numbers (1..5) to load, in that order; default every one present.

    ``X`` is float32 in [0, 1] of shape ``(n, 3072)``, C-contiguous, in the file's
    channel-major order: 1024 red, then 1024 green, then 1024 blue values, each plane a
    row-major 32x32 image (``cifar_to_images`` gives ``(n, 32, 32, 3)``).  ``y`` is int64 0..9.
    """
    if path is None:
        path = config.get(CIFAR_ENV_VAR)
        if not path:
            raise FileNotFoundError(
                f"CIFAR-10 is not bundled with fastnn: no path given and ${CIFAR_ENV_VAR} is not set. Download "
                f"the binary version (cifar-10-binary.tar.gz) from {CIFAR_URL}, extract it (tar xzf "
                f"cifar-10-binary.tar.gz) and pass path='cifar-10-batches-bin' or set {CIFAR_ENV_VAR} to that folder")
    d = _cifar_dir(path)
    if batches is None:
        numbers = [i for i in range(1, CIFAR_N_TRAIN_BATCHES + 1)
                   if (d / f"data_batch_{i}.bin").is_file()]
        if not numbers:
            raise FileNotFoundError(f"no CIFAR-10 training batches (data_batch_1.bin .. "
                                    f"data_batch_5.bin) in {str(d)!r}; download and extract the "
                                    "binary version (cifar-10-binary.tar.gz) there")
    else:
        if isinstance(batches, (str, bytes)) or not isinstance(batches, Sequence):
            raise TypeError(f"batches must be a sequence of ints 1..5 or None, got {batches!r}")
        numbers = list(batches)
        bad = [b for b in numbers if isinstance(b, bool) or not isinstance(b, (int, np.integer))
               or not 1 <= b <= CIFAR_N_TRAIN_BATCHES]
        if bad or not numbers or len(set(numbers)) != len(numbers):
            raise ValueError(f"batches={list(batches)!r} is invalid; give distinct training batch "
                             "numbers from 1..5, e.g. batches=[1, 2], or None for all")
        absent = [f"data_batch_{b}.bin" for b in numbers
                  if not (d / f"data_batch_{b}.bin").is_file()]
        if absent:
            raise FileNotFoundError(f"requested CIFAR-10 batches missing from {str(d)!r}: "
                                    f"{', '.join(absent)}; pass batches= the ones you have")
    test_file = d / "test_batch.bin"
    if not test_file.is_file():
        raise FileNotFoundError(f"test_batch.bin is missing from {str(d)!r}; extract the full "
                                "CIFAR-10 binary archive there")
    parts = [_read_cifar_batch(d / f"data_batch_{b}.bin") for b in numbers]
    X_train = parts[0][0] if len(parts) == 1 else np.concatenate([p[0] for p in parts])
    y_train = parts[0][1] if len(parts) == 1 else np.concatenate([p[1] for p in parts])
    return (X_train, y_train), _read_cifar_batch(test_file)


def cifar_to_images(X: np.ndarray) -> np.ndarray:
    """Channel-major CIFAR rows ``(n, 3072)`` -> images ``(n, 32, 32, 3)`` (height, width, RGB).

    A single row ``(3072,)`` gives one image ``(32, 32, 3)``.  Returns a view (no copy), so it
    is not C-contiguous; use ``np.ascontiguousarray`` if you need that.
    """
    X = np.asarray(X)
    if X.shape[-1:] != (3072,) or X.ndim not in (1, 2):
        raise ValueError(f"expected CIFAR rows of shape (n, 3072) or (3072,), got {X.shape}")
    return np.moveaxis(X.reshape(X.shape[:-1] + (3, 32, 32)), -3, -1)


# --------------------------------------------------------------------------------------------
# Toy sets
# --------------------------------------------------------------------------------------------

def _check_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"{name}={value} is too small; it must be >= {minimum}")
    return int(value)


def _check_nonneg_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}={value} is invalid; it must be a finite number >= 0")
    return float(value)


def _rng(seed: int | None) -> np.random.Generator:
    if seed is not None:
        _check_int("seed", seed, 0)
    return np.random.default_rng(seed)


def xor(n: int | None = None, *, noise: float = 0.1,
        seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The XOR problem: ``X`` float64 ``(n, 2)``, ``y`` int64 ``(n,)`` with ``y = x1 XOR x2``.

    With ``n=None`` (default): exactly the truth table, points (0,0), (0,1), (1,0), (1,1) with
    labels 0, 1, 1, 0 (``noise`` and ``seed`` are ignored).  With an int ``n``: ``n`` samples,
    the four corners used in turn (balanced) and shuffled, plus Gaussian noise of std ``noise``.
    """
    corners = np.array([[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]])
    labels = np.array([0, 1, 1, 0], dtype=np.int64)
    if n is None:
        return corners, labels
    n = _check_int("n", n, 1)
    noise = _check_nonneg_float("noise", noise)
    rng = _rng(seed)
    which = rng.permutation(np.arange(n) % 4)
    X = corners[which] + noise * rng.standard_normal((n, 2))
    return X, labels[which]


def two_spirals(n: int = 200, noise: float = 0.0,
                seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals: ``X`` float64 ``(n, 2)``, ``y`` int64 ``(n,)`` in {0, 1}.

    Class 0 is the spiral ``r (cos t, sin t)`` with the angle ``t`` running over 1.5 turns and
    the radius ``r`` from 0.1 to 1; class 1 is the same spiral rotated by 180 degrees.  The
    first ``ceil(n/2)`` rows are class 0, the rest class 1 (shuffle before minibatching).
    Gaussian noise of std ``noise`` is added to the coordinates; ``seed`` only matters when
    ``noise > 0``.  Not linearly separable: needs a hidden layer.
    """
    n = _check_int("n", n, 2)
    noise = _check_nonneg_float("noise", noise)
    rng = _rng(seed)
    X_parts, y_parts = [], []
    for label, m in ((0, n - n // 2), (1, n // 2)):
        s = np.linspace(0.0, 1.0, m)
        t = s * 3.0 * np.pi  # 1.5 turns
        r = 0.1 + 0.9 * s
        sign = 1.0 if label == 0 else -1.0
        X_parts.append(sign * np.column_stack([r * np.cos(t), r * np.sin(t)]))
        y_parts.append(np.full(m, label, dtype=np.int64))
    X = np.concatenate(X_parts)
    if noise > 0:
        X += noise * rng.standard_normal(X.shape)
    return X, np.concatenate(y_parts)


def linear_line(n: int = 100, slope: float = 2.0, intercept: float = 1.0, noise: float = 0.1,
                seed: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A noisy line for regression: ``X`` float64 ``(n, 1)`` evenly spaced on [-1, 1] and
    ``y = slope * X + intercept + noise * N(0, 1)``, float64 ``(n, 1)``."""
    n = _check_int("n", n, 1)
    noise = _check_nonneg_float("noise", noise)
    for name, v in (("slope", slope), ("intercept", intercept)):
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not math.isfinite(v):
            raise TypeError(f"{name} must be a finite number, got {v!r}")
    rng = _rng(seed)
    X = np.linspace(-1.0, 1.0, n).reshape(n, 1)
    y = slope * X + intercept + noise * rng.standard_normal((n, 1))
    return X, y


# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------

def one_hot(y: np.ndarray | Sequence[int], n_classes: int | None = None,
            dtype: npt.DTypeLike = np.float32) -> np.ndarray:
    """Integer class labels ``(n,)`` -> one-hot matrix ``(n, n_classes)`` of ``dtype``.

    ``n_classes`` defaults to ``max(y) + 1``.  Labels must be 1-D, non-negative integers
    ``< n_classes``; float arrays holding integral values (e.g. ``[0., 2.]``) are accepted.
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"labels must be 1-D (n,), got shape {y.shape}; for (n, 1) labels pass "
                         "y.ravel()")
    if y.dtype == np.bool_ or not (np.issubdtype(y.dtype, np.integer)
                                   or np.issubdtype(y.dtype, np.floating)):
        raise TypeError(f"labels must be integers, got dtype {y.dtype}; convert with "
                        "y.astype(int)")
    if np.issubdtype(y.dtype, np.floating):
        bad = ~np.isfinite(y) | (y != np.round(y))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(f"labels must be integral; y[{i}] = {y[i].item()!r} is not")
    if y.size and y.min() < 0:
        i = int(np.argmin(y))
        raise ValueError(f"labels must be >= 0; y[{i}] = {y[i].item()!r}")
    if n_classes is None:
        if y.size == 0:
            raise ValueError("cannot infer n_classes from empty labels; pass n_classes=")
        n_classes = int(y.max()) + 1
    else:
        n_classes = _check_int("n_classes", n_classes, 1)
        if y.size and y.max() >= n_classes:
            i = int(np.argmax(y))
            raise ValueError(f"label y[{i}] = {y[i].item()!r} is out of range for "
                             f"n_classes={n_classes}; labels must be in 0..{n_classes - 1} "
                             "(raise n_classes?)")
    out = np.zeros((y.size, n_classes), dtype=dtype)
    out[np.arange(y.size), y.astype(np.intp)] = 1
    return out


def _as_2d_float(name: str, X: object) -> np.ndarray:
    X = np.asarray(X)
    if X.dtype == np.bool_ or not (np.issubdtype(X.dtype, np.integer)
                                   or np.issubdtype(X.dtype, np.floating)):
        raise TypeError(f"{name} must be a numeric array, got dtype {X.dtype}")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (n_samples, n_features), got shape {X.shape}; "
                         "for a single feature use X.reshape(-1, 1)")
    if not np.issubdtype(X.dtype, np.floating):
        X = X.astype(np.float64)
    if not np.isfinite(X).all():
        raise ValueError(f"{name} contains NaN or infinity; clean or impute it first")
    return X


class Standardizer:
    """Per-feature standardization ``(X - mean) / std`` with statistics from training data.

    ``fit(X_train)`` stores ``mean`` and ``std`` (each ``(n_features,)``, float64; features
    whose std is <= ``eps`` get std 1, so they are only centred).  ``transform`` applies them
    to any array with the same number of features, keeping float32/float64 input dtype
    (integers become float64).  ``inverse_transform`` undoes it.
    """

    def __init__(self, eps: float = 1e-8) -> None:
        self.eps = _check_nonneg_float("eps", eps)
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> Standardizer:
        """Compute per-feature mean and std of ``X`` (n_samples, n_features); returns self."""
        X = _as_2d_float("X", X)
        if X.shape[0] == 0:
            raise ValueError("cannot fit a Standardizer on 0 samples")
        self.mean = X.mean(axis=0, dtype=np.float64)
        std = X.std(axis=0, dtype=np.float64)
        self.std = np.where(std > self.eps, std, 1.0)
        return self

    def _check_fitted(self, X: np.ndarray, name: str) -> np.ndarray:
        if self.mean is None or self.std is None:
            raise ValueError("this Standardizer is not fitted yet; call fit(X_train) first")
        X = _as_2d_float(name, X)
        if X.shape[1] != self.mean.shape[0]:
            raise ValueError(f"{name} has {X.shape[1]} features but the Standardizer was fitted "
                             f"on {self.mean.shape[0]}")
        return X

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Return ``(X - mean) / std`` as a new array (the input is not modified)."""
        X = self._check_fitted(X, "X")
        return ((X - self.mean) / self.std).astype(X.dtype, copy=False)

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """``fit(X)`` then ``transform(X)``."""
        return self.fit(X).transform(X)

    def inverse_transform(self, Xs: np.ndarray) -> np.ndarray:
        """Undo ``transform``: return ``Xs * std + mean``."""
        Xs = self._check_fitted(Xs, "Xs")
        return (Xs * self.std + self.mean).astype(Xs.dtype, copy=False)


def standardize(X_train: np.ndarray, *others: np.ndarray,
                eps: float = 1e-8) -> tuple[np.ndarray, ...]:
    """Standardize ``X_train`` and any ``others`` with the training mean/std per feature.

    Returns ``(Xs_train, *Xs_others, (mean, std))``, e.g.::

        X_train, X_test, (mean, std) = standardize(X_train, X_test)
        X_new = (X_new - mean) / std        # the same transform for later data

    ``mean`` and ``std`` are float64 ``(n_features,)``; features with std <= ``eps`` have std
    set to 1 (centred, never divided by 0).  Inputs are not modified.  See ``Standardizer``
    for the fit/transform form.
    """
    scaler = Standardizer(eps=eps).fit(X_train)
    outs = [scaler.transform(X_train)]
    for i, X in enumerate(others):
        try:
            outs.append(scaler.transform(X))
        except (ValueError, TypeError) as exc:
            raise type(exc)(f"others[{i}]: {exc}") from None
    return (*outs, (scaler.mean, scaler.std))
