"""Build the compiled core of gdcore.

Metadata lives in pyproject.toml; this file only defines the extension modules
(and installs the example scripts with the package, for ``python -m gdcore
demo``). Every ``gdcore/<name>.pyx`` becomes the module ``gdcore._<name>``
inside the package whose Python code lives in ``python/gdcore``.

The package directory is given as ``{"": "python"}`` (the Python code's root),
so that an editable install (``pip install -e .``) puts ``python/`` on
``sys.path``: the top-level ``gdcore/`` folder of Cython sources, which has no
``__init__.py``, then never shadows the package when Python runs from the
repository root.

The kernels (gdcore/kernels.pxi, and gdcore/landscape.pxi likewise) are
compiled three times on x86-64 with GCC or Clang: ``_kernels`` for any CPU,
``_kernels_avx2`` for x86-64-v3 (AVX2, FMA) and ``_kernels_avx512`` for
x86-64-v4 (AVX-512), each from its own small .pyx that includes the .pxi; the
package picks the best one the running CPU supports. ``-ffp-contract=off`` keeps the three
builds' results bit-for-bit identical (no fused multiply-add rounding).
Elsewhere only the portable module is built.

Environment variables read at build time:

GDCORE_NATIVE=1     compile one module for the build machine's CPU
                    (``-march=native``) instead of the three above.
GDCORE_DEBUG=1      turn Cython bounds checking, wraparound and initialised-view
                    checks back on, compile with ``-O0 -g``.
GDCORE_OPENMP=0     build without OpenMP even when the compiler supports it.

Without GDCORE_DEBUG the modules are compiled with ``-g0``: Python's own
CFLAGS usually carry ``-g``, which put about 10 MB of DWARF debug information
into the six x86-64 modules (12.4 MB in all; 2.2 MB without it). The symbol
table stays, so profilers and debuggers still name the functions.

The extensions compile in parallel, one per core (``build_ext --parallel``),
and cythonize likewise.
"""

import os
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
from glob import glob

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_py import build_py


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _compiler() -> str | None:
    return os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")


def _compiles(source: str, flags: list) -> bool:
    """True if the C compiler builds and links ``source`` with ``flags``."""
    compiler = _compiler()
    if compiler is None:
        return False
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "check.c")
        with open(src, "w") as fh:
            fh.write(source)
        result = subprocess.run([compiler, *flags, src, "-o", os.path.join(tmp, "check")],
                                capture_output=True)
    return result.returncode == 0


def _compiler_accepts_openmp() -> bool:
    """Compile and link a tiny OpenMP program; False (with a warning) if that fails."""
    if os.environ.get("GDCORE_OPENMP", "1").strip() == "0":
        return False
    source = textwrap.dedent(
        """
        #include <omp.h>
        int main(void) {
            int n = 0;
            #pragma omp parallel reduction(+:n)
            n += 1;
            return n > 0 ? 0 : 1;
        }
        """
    )
    if not _compiles(source, ["-fopenmp"]):
        sys.stderr.write(
            "warning: the C compiler does not support OpenMP; gdcore's full-batch "
            "gradient will run on one core\n"
        )
        return False
    return True


def _instruction_set_variants() -> dict:
    """Module suffix -> extra flags for each kernel build to compile."""
    if _flag("GDCORE_NATIVE"):
        return {"": ["-march=native"]}
    variants = {"": []}
    if platform.machine().lower() in {"x86_64", "amd64"} and sys.platform != "win32":
        probe = "int main(void) { return 0; }\n"
        for suffix, level in (("_avx2", "x86-64-v3"), ("_avx512", "x86-64-v4")):
            if _compiles(probe, [f"-march={level}"]):
                variants[suffix] = [f"-march={level}", "-mtune=generic"]
            else:
                sys.stderr.write(f"warning: the C compiler does not know -march={level}; "
                                 f"skipping gdcore._kernels{suffix}\n")
    return variants


def _inlining_args() -> list:
    """GCC flags that let the kernels' inline helpers be inlined everywhere.

    The per-sample loop is compiled once per update rule and penalty (Cython
    fused types), which makes the module large; GCC's default growth limits
    then stop inlining the dot product into some of those copies, putting a
    function call on the loop's critical path (measured: 5-10 % slower
    steps). A compiler that rejects them builds without them.
    """
    args = ["--param", "inline-unit-growth=200", "--param", "large-function-growth=1000"]
    if _compiles("int main(void) { return 0; }\n", ["-O3", *args]):
        return args
    return []


debug = _flag("GDCORE_DEBUG")
openmp = _compiler_accepts_openmp()

# -g0: see the module's docstring. -ffp-contract=off: no fused multiply-adds,
# so that every build and the reference path round alike. -fno-math-errno:
# sqrt need not set errno for a negative argument (gdcore never reads errno),
# so loops that take square roots (the adaptive optimizers) vectorise; the
# values are unchanged.
base_args = ((["-O0", "-g"] if debug else ["-O3", "-g0", *_inlining_args()])
             + ["-ffp-contract=off", "-fno-math-errno"])
link_args = []
if openmp:
    base_args.append("-fopenmp")
    link_args.append("-fopenmp")

directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": debug,
    "initializedcheck": debug,
    "cdivision": True,
}

variants = _instruction_set_variants()
extensions = []
for path in sorted(glob(os.path.join("gdcore", "*.pyx"))):
    name = os.path.splitext(os.path.basename(path))[0]
    # kernels_avx2.pyx -> variant "_avx2" of kernels; plain modules have variant "".
    suffix = next((s for s in ("_avx2", "_avx512") if name.endswith(s)), "")
    if suffix not in variants:
        continue  # an instruction-set variant this build skips
    extensions.append(Extension(
        "gdcore._" + name,
        [path],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=base_args + variants[suffix],
        extra_link_args=link_args,
    ))

class build_py_with_examples(build_py):
    """build_py, plus the walk-throughs of examples/ as gdcore/examples/."""

    def run(self) -> None:
        super().run()
        target = os.path.join(self.build_lib, "gdcore", "examples")
        self.mkpath(target)
        for path in sorted(glob(os.path.join("examples", "*.py"))):
            self.copy_file(path, os.path.join(target, os.path.basename(path)))


setup(
    package_dir={"": "python"},
    packages=["gdcore"],
    package_data={"gdcore": ["py.typed", "*.pyi"]},
    ext_modules=cythonize(extensions, compiler_directives=directives,
                          nthreads=os.cpu_count() or 1),
    cmdclass={"build_py": build_py_with_examples},
    options={"build_ext": {"parallel": os.cpu_count() or 1}},
)
