"""The Cython sources of the "cython" backend, compiled by setup.py into extension modules here.

``_core.pxd`` holds the shared nogil formulas, ``_kernels.pyx`` the contract kernel by kernel and
``_epoch.pyx`` the fused whole-epoch loop.  Import the backend as ``fastnn.kernels.cython_cpu``
(or ``fastnn.backends.get("cython")``), not these modules directly.
"""
