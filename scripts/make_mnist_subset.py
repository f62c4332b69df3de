"""Build fastnn/data/mnist_subset.npz, the small MNIST subset bundled with fastnn.

Usage:
    python scripts/make_mnist_subset.py /path/to/mnist [--out fastnn/data/mnist_subset.npz]

The directory must hold the four official MNIST IDX files (gzip or raw; see
``fastnn.datasets.load_mnist``).  Their sha256 is checked against the official files
(``--no-verify`` skips that).  The script draws, without replacement and with
``numpy.random.default_rng(seed)``, an equal number of images per digit (10,000 training
images from the 60,000, 2,000 test images from the 10,000, by default), shuffles each split,
and writes uint8 arrays with ``numpy.savez_compressed`` (no pickled objects):

    X_train (10000, 784) uint8, y_train (10000,) uint8, train_index (10000,) int32 (source rows)
    X_test  (2000, 784)  uint8, y_test  (2000,)  uint8, test_index  (2000,)  int32
    format_version ()    int64, source () fixed-width unicode note

Same inputs and seed give the same arrays.
"""
from __future__ import annotations

import argparse
import hashlib
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # use this checkout's fastnn even when it is not installed

from fastnn.datasets import (  # noqa: E402
    MNIST_SUBSET_FORMAT_VERSION,
    _find_mnist_files,
    read_idx,
)

#: sha256 of the official MNIST files, gzipped and uncompressed.
KNOWN_SHA256 = {
    "1a1a05eab793c14bb050b398624a11b0ffd1a2953baed553b1b9bd079e2a20be",  # t10k-images .gz
    "b91679a0acfe4ba0e50a2437a903084cba1f5f92592b016a25a7dfd00455798b",  # t10k-labels .gz
    "0b367032e93c5d0cea0925647cfdb18614af8ee15f83e6f2fc2ad904a6835971",  # train-images .gz
    "1787548bbe0bff1ec2ecdc0ef292b02df999e2d1a6002d27500982c652b17203",  # train-labels .gz
    "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",  # t10k-images
    "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",  # t10k-labels
    "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",  # train-images
    "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",  # train-labels
}


def stratified_indices(labels: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` row indices, as equal as possible per class (first classes get the remainder),
    drawn without replacement, in shuffled order."""
    classes = np.unique(labels)
    base, extra = divmod(n, len(classes))
    picks = []
    for i, c in enumerate(classes):
        rows = np.flatnonzero(labels == c)
        k = base + (1 if i < extra else 0)
        if k > len(rows):
            raise ValueError(f"class {c} has only {len(rows)} rows, cannot draw {k}")
        picks.append(rng.choice(rows, size=k, replace=False))
    return rng.permutation(np.concatenate(picks))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mnist_dir", help="directory with the four MNIST IDX files")
    ap.add_argument("--out", default=str(REPO / "fastnn" / "data" / "mnist_subset.npz"))
    ap.add_argument("--n-train", type=int, default=10_000)
    ap.add_argument("--n-test", type=int, default=2_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-verify", action="store_true", help="skip the sha256 check")
    args = ap.parse_args(argv)

    files = _find_mnist_files(args.mnist_dir)
    if not args.no_verify:
        for f in files.values():
            digest = hashlib.sha256(f.read_bytes()).hexdigest()
            if digest not in KNOWN_SHA256:
                ap.error(f"{f}: sha256 {digest} is not one of the official MNIST files; "
                         "use --no-verify to build from it anyway")

    rng = np.random.default_rng(args.seed)
    arrays: dict[str, np.ndarray] = {}
    for split, n in (("train", args.n_train), ("test", args.n_test)):
        images = read_idx(files[f"{split}_images"])
        labels = read_idx(files[f"{split}_labels"])
        idx = stratified_indices(labels, n, rng)
        arrays[f"X_{split}"] = np.ascontiguousarray(images[idx].reshape(n, 784), dtype=np.uint8)
        arrays[f"y_{split}"] = labels[idx].astype(np.uint8)
        arrays[f"{split}_index"] = idx.astype(np.int32)

    note = (f"MNIST subset (LeCun, Cortes, Burges; {Path(__file__).name}): "
            f"{args.n_train} of 60000 train and {args.n_test} of 10000 test images, "
            f"class-stratified, numpy default_rng(seed={args.seed}), numpy {np.__version__}")
    arrays["format_version"] = np.array(MNIST_SUBSET_FORMAT_VERSION, dtype=np.int64)
    arrays["source"] = np.array(note)  # dtype <U..., loads with allow_pickle=False

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    with np.load(out, allow_pickle=False) as z:  # check it reads back without pickle
        assert all(np.array_equal(z[k], v) for k, v in arrays.items())
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    for split in ("train", "test"):
        counts = np.bincount(arrays[f"y_{split}"], minlength=10)
        print(f"  {split}: {len(arrays[f'y_{split}'])} images, per class {counts.tolist()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
