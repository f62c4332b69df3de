"""Every backend's kernels, one module per backend, all under the contract in README.md.

``numpy_ref`` is the reference: the plain NumPy definition every other backend is tested against.
Backends are imported lazily through :mod:`fastnn.backends`, so a missing optional compiler
(Numba, a Cython build, a GPU) never breaks ``import fastnn``.
"""
