"""Build glue that pyproject.toml cannot express: the kernels/ -> fastnn.kernels mapping, and the
Cython extensions of the "cython" backend (kernels/cython/*.pyx).

Every backend's kernels live in one top-level folder, kernels/, so a reader finds them at once;
they are installed as the subpackage fastnn.kernels.

The extensions are optional.  Without Cython (a --no-build-isolation install into an environment
that lacks it) or without a working C compiler, fastnn still installs, a warning says why, and the
backend reports itself unavailable with the fix (``fastnn info``, ``fastnn.backends``).

OpenMP (for the hand-written matmul's ``prange``) is used when the compiler can build and link a
tiny OpenMP program: -fopenmp (GCC, Clang), -Xpreprocessor -fopenmp -lomp (Apple Clang with
libomp) or /openmp (MSVC); otherwise the same sources compile without it, serial.  Set
FASTNN_OPENMP=0 to build without OpenMP on purpose.

Compiler flags live here and only here: -O3 and -fno-trapping-math, and nothing of -ffast-math
(NaN and inf must survive so that a diverging run is detected, and the vectorisable e^x of
_core.pxd relies on exact IEEE rounding).  -fno-trapping-math only drops the assumption that a
float operation may trap (fastnn never enables FP traps or reads the exception flags); without it
GCC will not turn the selects of e^x and tanh into vector blends, and those loops stay scalar.
GCC also gets a larger inlining budget (INLINE_FLAGS): _core.pxd writes each formula once as a small
inline function, and the fused epoch's loops (its update above all) are only fast once those are
inlined with their constant arguments folded in, while the vectorised activations alone use up GCC's
default budget.  To see it, time a build with and without INLINE_FLAGS on an epoch with momentum at
batch 32: ``python benchmarks/experiments/activations.py --acts relu --batch 32 --momentum 0.9``.
On x86-64 every module is built three times, for the compiler's portable default CPU, with AVX2 +
FMA and with AVX-512 (ISA_BUILDS); kernels/cython_cpu.py picks at run time, so the install still runs
on any x86-64 CPU.  FASTNN_MARCH_NATIVE=1 adds -march=native to all, for a build that only this machine
will run.
"""
from __future__ import annotations

import os
import platform
import shutil
import tempfile
import warnings

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

CYTHON_DIR = "kernels/cython"
# module -> does it use OpenMP (prange in _kernels, the epoch's thread team in _epoch)?
CYTHON_MODULES = {"_kernels": True, "_epoch": True}
# Each module is also built, on x86-64, as <module><suffix> (a .pyx that includes the module's source)
# with these flags; kernels/cython_cpu.py loads the best pair the CPU runs.  A compiler that rejects a
# build's flags skips that build.  AVX-512: F, CD, BW, DQ and VL (Skylake-X, Zen 4 and later), with
# 512-bit vectors preferred (GCC would otherwise tune the loops for 256-bit ones), which is where the
# vectorised e^x, tanh and the sigmoid of _core.pxd reach NumPy's own AVX-512 loops.
ISA_BUILDS = {
    "_avx2": {"msvc": ["/arch:AVX2"], "other": ["-mavx2", "-mfma"]},
    "_avx512": {"msvc": ["/arch:AVX512"],
                "other": ["-mavx2", "-mfma", "-mavx512f", "-mavx512cd", "-mavx512bw", "-mavx512dq",
                          "-mavx512vl", "-mprefer-vector-width=512"]},
}


def _isa_suffix(name: str) -> str:
    """'_avx2', '_avx512' or '' for an extension's (dotted) name."""
    return next((s for s in ISA_BUILDS if name.endswith(s)), "")

OPENMP_PROBE = r"""
#include <omp.h>
int main(void) {
    int n = 0;
    #pragma omp parallel reduction(+:n)
    n += 1;
    return (n > 0 && omp_get_max_threads() > 0) ? 0 : 1;
}
"""


# GCC's IPA inliner stops at +40% of the unit's size by default; fastnn's kernels are small
# functions meant to be inlined with constant arguments (_core.pxd).  A compiler that does not
# know the flags (clang warns they are unused) is probed with -Werror and simply goes without.
INLINE_FLAGS = ["--param", "inline-unit-growth=1000", "--param", "large-function-growth=1000"]


def _warn(message: str) -> None:
    warnings.warn(f"fastnn: {message}", stacklevel=2)
    print(f"WARNING fastnn: {message}")


def _cython_extensions() -> list[Extension]:
    """The backend's extensions, cythonized; [] (with a warning) if Cython is missing or fails."""
    try:
        from Cython.Build import cythonize
    except ImportError:
        _warn("Cython is not installed, so the 'cython' backend is not built; "
              "install with build isolation (the default of pip install .) or pip install 'Cython>=3.0'")
        return []
    extensions = [
        Extension(
            f"fastnn.kernels.cython.{name}",
            sources=[f"{CYTHON_DIR}/{name}.pyx"],
            depends=[f"{CYTHON_DIR}/_core.pxd", f"{CYTHON_DIR}/{name.removesuffix(_isa_suffix(name))}.pyx"],
            optional=True,  # a compiler error warns instead of failing the whole install
        )
        for name in [*CYTHON_MODULES, *([f"{m}{s}" for s in ISA_BUILDS for m in CYTHON_MODULES] if _x86_64() else [])]
    ]
    try:
        compiled = cythonize(extensions, include_path=[CYTHON_DIR], quiet=True,
                             compiler_directives={"language_level": 3})
    except Exception as exc:  # any Cython failure leaves a working pure-Python install
        _warn(f"cythonizing the 'cython' backend failed ({exc}); it will be unavailable")
        return []
    for ext in compiled:
        ext.optional = True  # cythonize builds new Extension objects and drops the flag
    return compiled


def _x86_64() -> bool:
    return platform.machine().lower() in ("x86_64", "amd64")


def _env_flag(name: str) -> bool:
    """A build flag from kernels/config.py, the one reader of FASTNN_* variables (loaded by path: fastnn
    is not built yet); a bad value stops the build with the config's message."""
    import importlib.util
    import sys

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "kernels", "config.py")
    spec = importlib.util.spec_from_file_location("_fastnn_build_config", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file executes
    spec.loader.exec_module(module)
    return module.get(name)


def _accepted(compiler, flags: list[str]) -> bool:
    """True if this compiler compiles a trivial C file with these flags and -Werror."""
    tmp = tempfile.mkdtemp(prefix="fastnn-flags-")
    try:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as fh:
            fh.write("int fastnn_probe(int x) { return x + 1; }\n")
        compiler.compile([source], output_dir=tmp, extra_postargs=[*flags, "-Werror"])
        return True
    except Exception:  # CompileError, a missing compiler binary
        return False
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _openmp_flags(compiler) -> tuple[list[str], list[str]] | None:
    """(compile flags, link flags) that build and link an OpenMP program with this compiler, or None."""
    if not _env_flag("FASTNN_OPENMP"):
        return None
    if compiler.compiler_type == "msvc":
        candidates = [(["/openmp"], [])]
    else:
        candidates = [(["-fopenmp"], ["-fopenmp"]), (["-Xpreprocessor", "-fopenmp"], ["-lomp"])]
    tmp = tempfile.mkdtemp(prefix="fastnn-openmp-")
    try:
        source = os.path.join(tmp, "probe.c")
        with open(source, "w") as fh:
            fh.write(OPENMP_PROBE)
        for cflags, ldflags in candidates:
            try:
                objects = compiler.compile([source], output_dir=tmp, extra_postargs=cflags)
                compiler.link_executable(objects, "probe", output_dir=tmp, extra_postargs=ldflags)
            except Exception:  # CompileError, LinkError, a missing compiler binary
                continue
            return cflags, ldflags
        return None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


class BuildExt(build_ext):
    """build_ext that probes the compiler for OpenMP and adds it to the modules that use it."""

    def build_extensions(self) -> None:
        flags = _openmp_flags(self.compiler)
        if flags is None:
            print("fastnn: building the Cython backend without OpenMP "
                  "(matmul_blocked runs on one thread)")
        else:
            print(f"fastnn: building the Cython backend with OpenMP ({' '.join(flags[0])})")
        optimise = [] if self.compiler.compiler_type == "msvc" else ["-O3", "-fno-trapping-math"]
        if optimise and _accepted(self.compiler, INLINE_FLAGS):
            optimise += INLINE_FLAGS
        if _env_flag("FASTNN_MARCH_NATIVE") and self.compiler.compiler_type != "msvc":
            # Faster hand-written matmul and dropout hash, but the build then runs only on CPUs
            # like this one: never for wheels that other machines install.
            optimise.append("-march=native")
            print("fastnn: FASTNN_MARCH_NATIVE=1: compiling for this CPU (-march=native)")
        kind = "msvc" if self.compiler.compiler_type == "msvc" else "other"
        for suffix, isa_flags in ISA_BUILDS.items():
            wanted = any(_isa_suffix(ext.name) == suffix for ext in self.extensions)
            if wanted and not _accepted(self.compiler, isa_flags[kind]):
                print(f"fastnn: the compiler rejects {' '.join(isa_flags[kind])}: no {suffix[1:]} build")
                self.extensions = [ext for ext in self.extensions if _isa_suffix(ext.name) != suffix]
        for ext in self.extensions:
            ext.extra_compile_args = [*ext.extra_compile_args, *optimise]
            suffix = _isa_suffix(ext.name)
            if suffix:
                ext.extra_compile_args = [*ext.extra_compile_args, *ISA_BUILDS[suffix][kind]]
            uses_openmp = CYTHON_MODULES.get(ext.name.rsplit(".", 1)[-1].removesuffix(suffix), False)
            if flags is not None and uses_openmp:
                ext.extra_compile_args = [*ext.extra_compile_args, *flags[0]]
                ext.extra_link_args = [*ext.extra_link_args, *flags[1]]
        super().build_extensions()

    def build_extension(self, ext: Extension) -> None:
        # An optional extension that fails to build leaves fastnn installed without it; whatever
        # the failure (no compiler, missing headers, a link error), say what it means and the fix.
        try:
            super().build_extension(ext)
        except Exception as exc:  # any build failure: the backend is optional, the message says why
            if not ext.optional:
                raise
            _warn(f"could not build {ext.name} ({type(exc).__name__}: {exc}); the 'cython' backend "
                  f"will be unavailable and the rest of fastnn works without it. To build it, install "
                  f"a C compiler (gcc or clang; MSVC Build Tools on Windows), then pip install -e . again")


setup(
    packages=["fastnn", "fastnn.kernels", "fastnn.kernels.cython"],
    package_dir={"fastnn": "fastnn", "fastnn.kernels": "kernels"},
    ext_modules=_cython_extensions(),
    exclude_package_data={"fastnn.kernels.cython": ["*.c"]},  # generated; the wheel needs only the .so
    cmdclass={"build_ext": BuildExt},
)
