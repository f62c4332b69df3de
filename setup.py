"""Build glue that pyproject.toml cannot express: the kernels/ -> fastnn.kernels mapping.

Every backend's kernels live in one top-level folder, kernels/, so a reader finds them at once;
they are installed as the subpackage fastnn.kernels.  (The Cython extensions of issue 4 are
declared here too when they land.)
"""
from setuptools import setup

setup(
    packages=["fastnn", "fastnn.kernels"],
    package_dir={"fastnn": "fastnn", "fastnn.kernels": "kernels"},
)
