r"""
Inside the kernels: one formula, four implementations
=====================================================

Every formula of backpropagation is a small named *kernel* in fastnn, and each kernel exists
four times: in plain NumPy (the reference, the definition every other version is tested
against), compiled with Numba for the CPU, in Cython with OpenMP, and as a numba.cuda kernel for
NVIDIA GPUs. This page puts two of them side by side, straight from the source files (nothing
below is a copy: the code is read from the installed package when the page is built), runs them
on every backend available here and compares the results. Then it looks at the fused epoch and
at what it takes to add a backend.

The two formulas, in the code's notation (rows are samples):

.. math::

   \delta = f'(z) \odot (\delta_{next} W_{next}^\top)
   \qquad \text{(propagate\_delta)}

.. math::

   v \leftarrow \mu v - \eta\, dW, \qquad W \leftarrow W + v
   \qquad \text{(sgd\_update; plain SGD when } \mu = 0\text{)}
"""

import inspect
from pathlib import Path

import numpy as np

import fastnn
from fastnn import backends, codes
from fastnn.datasets import load_mnist_subset
from fastnn.kernels import contract, numba_cpu, numpy_ref

KERNELS = Path(numpy_ref.__file__).parent  # the kernels/ folder of the source tree


def show(title, text, origin):
    """Print a piece of source with where it came from."""
    print(f"----- {title}   [{origin}]")
    print(text.rstrip())
    print()


def python_source(fn):
    """The source of a Python function (of the plain function behind a Numba dispatcher)."""
    fn = getattr(fn, "py_func", fn)
    lines, start = inspect.getsourcelines(fn)
    path = Path(inspect.getsourcefile(fn)).relative_to(KERNELS.parent)
    return "".join(lines), f"{path}, line {start}"


def file_block(relpath, first_line):
    """The block of a source file that starts with the line beginning ``first_line`` (decorators
    included), up to the next line indented no deeper than that one."""
    path = KERNELS / relpath
    lines = path.read_text().splitlines()
    i = next(k for k, line in enumerate(lines) if line.lstrip().startswith(first_line))
    indent = len(lines[i]) - len(lines[i].lstrip())
    start = i
    while start > 0 and lines[start - 1].lstrip().startswith("@"):
        start -= 1
    end = i + 1
    while end < len(lines) and (not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > indent):
        end += 1
    while not lines[end - 1].strip():
        end -= 1
    return "\n".join(lines[start:end]), f"kernels/{relpath}, line {start + 1}"


# %%
# Delta propagation
# -----------------
#
# **NumPy, the reference.** Two array expressions: the product :math:`g = \delta_{next}
# W_{next}^\top` (the error arriving at this layer's outputs, :math:`\partial J / \partial a`),
# then the elementwise product with :math:`f'(z)`. PReLU's learnable slopes also get their
# gradient here.

for fn in (numpy_ref.propagate_delta, numpy_ref.activation_backward):
    show(fn.__name__, *python_source(fn))

# %%
# **Numba (CPU).** The same two steps, compiled: the product goes to BLAS (``gemm``) straight
# into ``delta``, then a loop multiplies every element by :math:`f'(z)` in place. The loop over
# the activation code is unrolled into one specialised loop per activation
# (``_times_derivative``), and the per-element formula :math:`f'(z)` lives in
# ``kernels/formulas.py``, which the Numba and the CUDA backends both compile.

for fn in (numba_cpu._propagate_delta, numba_cpu._activation_backward, numba_cpu._times_derivative,
           numba_cpu._map_df):
    show(getattr(fn, "py_func", fn).__name__, *python_source(fn))
show("df, the per-element derivative", *file_block("formulas.py", "def df("))

# %%
# **Cython.** C-level functions over raw pointers, in ``kernels/cython/_core.pxd``, compiled
# three times (for any x86-64 CPU, for AVX2 + FMA and for AVX-512): the same specialised loops, and the derivative
# written once as an inline C function.

for first in ("cdef inline void activation_backward(", "cdef inline void times_derivative(",
              "cdef inline void _map_df(", "cdef inline real df("):
    show(first.split("(")[0].split()[-1], *file_block("cython/_core.pxd", first))

# %%
# **CUDA.** One kernel does it all: each block of threads computes a tile of the product
# :math:`\delta_{next} W_{next}^\top` in shared memory and multiplies it by :math:`f'(z)` before
# writing it out (the derivative is fused into the product's epilogue).

show("_propagate_delta_kernel", *file_block("numba_cuda.py", "def _propagate_delta_kernel("))
show("propagate_delta (host side)", *file_block("numba_cuda.py", "def propagate_delta("))

# %%
# The SGD step
# ------------
#
# The update is the simplest kernel and shows the styles most plainly: whole-array expressions in
# NumPy, one loop per mode in Numba and in Cython (so the compiler vectorises each), and one GPU
# thread per weight in CUDA, all on the same per-element step.

show("numpy: sgd_update", *python_source(numpy_ref.sgd_update))
show("numba: _sgd_update", *python_source(numba_cpu._sgd_update))
show("formulas.py: sgd_step (Numba's fused epoch and CUDA)", *file_block("formulas.py", "def sgd_step("))
show("cython: sgd_step", *file_block("cython/_core.pxd", "cdef inline void sgd_step("))
show("cython: sgd_update", *file_block("cython/_core.pxd", "cdef inline void sgd_update("))
show("cuda: _sgd_kernel", *file_block("numba_cuda.py", "def _sgd_kernel("))

# %%
# The same kernel on every backend
# --------------------------------
#
# Every backend module has the same functions with the same arguments (the *backend contract*,
# ``kernels/contract.py``), so one piece of code can call any of them. The arrays are
# preallocated by the caller and the kernel writes into them; ``to_device`` and ``to_host`` move
# data to and from the backend's own arrays (a GPU's memory for CUDA, nothing to do on a CPU).
# Here each available backend computes :math:`\delta` for a sigmoid layer and one momentum step
# on the same float64 inputs, and we compare with the reference.

print("backends available here:", backends.available())
for name, reason in backends.unavailable_reasons().items():
    print(f"not available: {name}: {reason}")

rng = np.random.default_rng(0)
B, n, n_next = 64, 256, 128
delta_next = rng.standard_normal((B, n_next))
W_next = rng.standard_normal((n, n_next)) * 0.1
z = rng.standard_normal((B, n))
W0, dW, v0 = rng.standard_normal((n, n_next)), rng.standard_normal((n, n_next)), rng.standard_normal((n, n_next))
no_alpha = np.zeros(0)

results = {}
for name in backends.available():
    be = backends.get(name)
    dev = be.to_device  # kernels take the backend's own arrays (the identity on the CPU backends)
    delta, dalpha = be.empty((B, n), np.float64), dev(np.zeros(0))
    be.propagate_delta(dev(delta_next), dev(W_next), dev(z), codes.SIGMOID, dev(no_alpha), delta, dalpha)
    W, v = dev(W0.copy()), dev(v0.copy())
    be.sgd_update(W, dev(dW), v, 0.1, 0.9, False)
    results[name] = (be.to_host(delta), be.to_host(W), be.to_host(v))

ref = results["numpy"]
for name, (delta, W, v) in results.items():
    d_err = np.abs(delta - ref[0]).max() / np.abs(ref[0]).max()
    w_err = max(np.abs(W - ref[1]).max(), np.abs(v - ref[2]).max())
    print(f"{name:7s} propagate_delta: max relative difference {d_err:.1e};  sgd_update: max difference {w_err:.1e}")
    assert d_err < 1e-12 and w_err < 1e-12

# %%
# The differences are rounding (a different order of additions inside the matrix product), at
# the level of float64's :math:`10^{-16}`. The test suite holds every kernel of every backend to
# the reference like this, in float32 and float64, for many shapes and memory layouts.
#
# The fused epoch
# ---------------
#
# Calling kernels one by one from Python costs a few microseconds per call; with small batches
# that overhead is a large part of an epoch. The compiled backends therefore provide an optional
# hook, ``train_epoch``: the *whole epoch* (gathering each mini-batch, dropout, the forward pass,
# the loss, the backward pass, the update, for every batch) in one compiled call, with its own
# team of threads. ``fit`` uses it when the backend has it; the NumPy backend does not, so it
# runs the same steps one kernel call at a time (``fastnn.engine.run_epoch``). The hooks a backend
# may provide:

for hook_name, hook in contract.HOOKS.items():
    has = [name for name in backends.available() if contract.has_hook(backends.get(name), hook_name)]
    print(f"{hook_name:16s} provided by {', '.join(has) or '(none here)':20s} {hook.purpose}")

# %%
# The fused epoch must give the same weights as the step-by-step reference. One epoch of a
# 784-64-10 network on 2,000 MNIST images in float64, with momentum, L2 and dropout, on every
# backend:

(X, y), _ = load_mnist_subset()
X, y = X[:2000], y[:2000]
trained = {}
for name in backends.available():
    model = fastnn.MLP([784, 64, 10], dtype="float64", l2=1e-4, dropout=0.2, seed=0, backend=name)
    model.fit(X, y, epochs=1, batch_size=32, lr=0.05, momentum=0.9, verbose=0)
    trained[name] = model.weights
for name, Ws in trained.items():
    err = max(np.abs(W - R).max() / np.abs(R).max() for W, R in zip(Ws, trained["numpy"]))
    fused = contract.has_hook(backends.get(name), "train_epoch")
    print(f"{name:7s} ({'fused epoch' if fused else 'kernel by kernel'}): max relative difference from numpy {err:.1e}")
    assert err < 1e-9

# %%
# Dropout masks come from a counter-based hash of (seed, step, layer, unit), so every backend
# draws the same masks without storing them, and the comparison holds with dropout on.
#
# Adding a backend
# ----------------
#
# A backend is a plain Python module that defines the names in ``contract.REQUIRED`` with the
# signatures of ``kernels/numpy_ref.py`` (read that module first: it is the definition), plus any
# optional hooks. ``contract.missing(module)`` lists what a module still lacks:

print("required:", ", ".join(contract.REQUIRED))
print("a module that is still empty lacks:", contract.missing(type(numpy_ref)("my_backend"))[:5], "...")
print("numba_cpu lacks:", contract.missing(numba_cpu))

# %%
# The steps to add one:
#
# 1. Write ``kernels/my_backend.py`` defining ``NAME`` and every required kernel (start from a
#    copy of ``numpy_ref.py`` and replace one kernel at a time; outputs are written in place).
# 2. Register it in ``fastnn/backends.py`` (``_KNOWN``: module, whether it is a CPU backend, and
#    how to install what it needs); it then appears in ``fastnn.backends.available()``.
# 3. Run ``pytest``: every test that takes the ``backend`` fixture runs on every available
#    backend, so the new one is held to the reference kernel by kernel (``tests/test_kernels.py``),
#    by finite differences, on the worked example and on whole epochs.
# 4. Optionally provide ``train_epoch`` for speed; ``tests/test_fused_epoch.py`` then checks it
#    against the step-by-step reference epoch.
# 5. ``fastnn bench`` times it against the others (next tutorial).
