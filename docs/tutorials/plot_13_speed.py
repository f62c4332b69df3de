r"""
Speed: reading a benchmark
==========================

fastnn's compiled backends exist to be fast, and ``fastnn bench`` measures how fast: every kernel
and a whole training epoch, on every backend available, against the NumPy reference. This page
runs the benchmark machinery in-process on a deliberately tiny configuration (a few kernels at
one size, and a short epoch), explains how to read what it prints, and shows how to run the real
thing, against PyTorch too and on a GPU.

The numbers on this page were measured on the machine that built it, while it built it: treat
them as an illustration of the method, not as fastnn's performance. The measurements worth
quoting come from the full ``fastnn bench`` on a quiet machine.
"""

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt

import fastnn
from fastnn import backends, bench
from fastnn.datasets import load_mnist_subset

OUT = Path(tempfile.mkdtemp())

# %%
# The machine
# -----------
#
# A benchmark is only meaningful with its context: the CPU (and its widest vector instructions),
# the number of cores and threads, which BLAS library the compiled backends call and how many
# threads its pool has. ``bench.machine_info()`` collects it; ``fastnn info`` prints the same.

info = bench.machine_info()
for key in ("cpu", "cpu_count", "threads", "compiled_blas", "cython_isa", "backends", "pools"):
    print(f"{key:14s} {info[key]}")

# %%
# Kernels, one by one
# -------------------
#
# ``bench.cases()`` lists everything ``fastnn bench`` would time; we keep four kernels at the
# first MNIST layer's size (a batch of 128 rows, 784 inputs, 256 outputs, float32). For each one,
# ``bench.run_suite`` first checks every backend's result against NumPy's on the same inputs,
# then times the backends round-robin (one run of each in turn, so that a machine that slows
# down part-way biases none of them), at least 3 runs each.

wanted = ("linear_forward", "activate relu", "propagate_delta relu", "sgd_update momentum")
kernel_cases = [c for c in bench.cases(quick=True, epochs=False) if c.group.startswith(wanted)]
for case in kernel_cases:  # load the compiled code first (fastnn bench reports this first call apart)
    case.run()
records = bench.run_suite(kernel_cases, min_time=0.05)
print(bench.markdown(records))

# %%
# How to read a row:
#
# * **median** and **IQR**: the median time of the repeated runs, and the spread of the middle
#   half of them. A large IQR relative to the median means a noisy measurement.
# * **speed-up vs numpy**: NumPy's median over this backend's median, *from the same run*.
#   Ratios measured side by side are far more reliable than absolute times compared across days.
# * **max rel. error vs numpy**: how far the result is from the reference, relative to its size.
#   A fast kernel with a large error is a bug, not a win; float32 rounding shows up as about
#   :math:`10^{-7}`.
#
# Kernels dominated by a matrix product (``linear_forward``, ``propagate_delta``) call the same
# BLAS library on every backend, so they can only differ in what happens around the product;
# elementwise kernels (the ReLU, the SGD step) are plain loops over memory, which compiled code
# can fuse into one pass where NumPy makes several. At these sizes each kernel takes well under
# a millisecond, so differences of tens of percent between runs are common: compare the rows of
# one run, never numbers from different runs. ``bench.plot_speedups`` draws the speed-ups (log
# scale; 1 is NumPy's speed):

png = bench.plot_speedups(records, OUT / "bench.png")
image = plt.imread(png)
fig, ax = plt.subplots(figsize=(image.shape[1] / 100, image.shape[0] / 100))  # the PNG at its own size
ax.imshow(image)
ax.set_axis_off()
fig.subplots_adjust(0, 0, 1, 1)
plt.show()

# %%
# A whole epoch
# -------------
#
# Per-kernel speed is not the whole story: with small mini-batches, the time spent in Python
# between kernel calls adds up. The compiled backends run a whole epoch in one call (the fused
# epoch of :doc:`plot_12_kernels`). The full benchmark times an epoch of a 784-256-128-10 network
# over 60,000 images; here, a ``bench.Case`` per backend times one epoch over 5,000 images of the
# bundled subset, with ``bench.measure_group`` (round-robin again).

(X, y), _ = load_mnist_subset()
X, y = X[:5000], y[:5000]
epoch_cases = []
for name in backends.available():
    model = fastnn.MLP([784, 256, 128, 10], seed=0, backend=name)

    def one_epoch(m=model):
        m.fit(X, y, epochs=1, batch_size=32, lr=0.05, verbose=0)

    epoch_cases.append(bench.Case("epoch 784-256-128-10, 5,000 images, batch 32", name, one_epoch))
epoch_records = bench.measure_group(epoch_cases, min_time=0.3)
numpy_time = next(r.median_s for r in epoch_records if r.backend == "numpy")
for r in epoch_records:
    print(f"{r.backend:7s} median {r.median_s * 1e3:7.1f} ms over {r.rounds} epochs (IQR {r.iqr_s * 1e3:5.1f} ms), "
          f"first call {r.first_call_s * 1e3:7.1f} ms, speed-up vs numpy {numpy_time / r.median_s:4.1f}x")

fig, ax = plt.subplots(figsize=(6, 2.6))
names = [r.backend for r in epoch_records]
ax.barh(names, [r.median_s * 1e3 for r in epoch_records],
        xerr=[r.iqr_s * 1e3 / 2 for r in epoch_records], color=[f"C{i}" for i in range(len(names))])
ax.set(xlabel="median time of one epoch (ms)", title="784-256-128-10, 5,000 images, batch 32")
ax.invert_yaxis()
fig.tight_layout()
plt.show()

# %%
# The "first call" column is the first run, apart: it includes one-time costs (for Numba,
# loading or compiling the machine code) and is never part of the median. Before each timed
# epoch the benchmark pauses 0.3 s (``bench.SETTLE_S``), so that the threads of a BLAS library
# used by the previous backend have stopped spinning and do not slow the next one down.
#
# The full benchmark, PyTorch and the GPU
# ---------------------------------------
#
# From a shell, on a machine doing nothing else:
#
# .. code-block:: bash
#
#    fastnn bench --quick        # float32 kernels and a batch-128 epoch, about a minute
#    fastnn bench                # float32 and float64 kernels, epochs at batch 32, 128 and 512
#    fastnn bench --no-kernels   # only the epochs, with the peers below when installed
#    fastnn bench --compare old/bench.json   # flag every case > 25% slower than a saved run
#
# It prints the table above for every case, saves ``bench.json``, ``bench.md`` and ``bench.png``,
# and gives each epoch row its fraction of the machine's matrix-product speed (the "floor": an
# epoch cannot be faster than its floating-point work at the BLAS's rate).
#
# **Peers.** The epoch rows include PyTorch (the same network, loop and optimiser, step by step)
# and scikit-learn's ``MLPClassifier`` when they are installed. PyTorch is not a dependency of
# fastnn; install it by hand to compare (``pip install torch==2.13.0``). On this machine:

missing = bench.missing_peers()
for peer in ("torch", "sklearn"):
    print(f"{peer:8s}", f"not installed ({missing[peer]})" if peer in missing else "installed: fastnn bench times it")

# %%
# **CPU against CUDA.** On a machine with an NVIDIA GPU and ``pip install 'fastnn[cuda]'``, the
# ``cuda`` backend joins every kernel and epoch row, timed with the GPU synchronised inside the
# timed region (so the time is the work, not the launch). Those rows are the CPU-versus-GPU
# comparison: small kernels are dominated by launch latency and lose to the CPU, large batches
# and wide layers favour the GPU, and the training set stays on the device for the whole epoch.

if "cuda" in backends.available():
    print("a CUDA GPU is available here: fastnn bench includes the cuda backend")
else:
    reason = backends.unavailable_reasons().get("cuda", "")
    print(f"no CUDA GPU on the machine that built this page, so no CPU-vs-CUDA numbers here ({reason})")
