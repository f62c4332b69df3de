# cython: language_level=3
"""_epoch.pyx compiled for CPUs with AVX2 and FMA (setup.py adds -mavx2 -mfma); cython_cpu picks it at run time."""
include "_epoch.pyx"
