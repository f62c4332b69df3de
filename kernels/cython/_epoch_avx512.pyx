# cython: language_level=3
"""_epoch.pyx compiled for CPUs with AVX-512 F/CD/BW/DQ/VL (setup.py's ISA_BUILDS); cython_cpu picks it at run time."""
include "_epoch.pyx"
