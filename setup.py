"""Build the compiled core of gdcore.

Metadata lives in pyproject.toml; this file only defines the extension modules.
Every ``gdcore/<name>.pyx`` becomes the module ``gdcore._<name>`` inside the
package whose Python code lives in ``python/gdcore``.

Environment variables read at build time:

GDCORE_NATIVE=1     compile for the build machine's CPU (``-march=native``);
                    the default build is portable.
GDCORE_DEBUG=1      turn Cython bounds checking, wraparound and initialised-view
                    checks back on, compile with ``-O0 -g``.
GDCORE_OPENMP=0     build without OpenMP even when the compiler supports it.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from glob import glob

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup


def _flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def _compiler_accepts_openmp() -> bool:
    """Compile and link a tiny OpenMP program; False (with a warning) if that fails."""
    if os.environ.get("GDCORE_OPENMP", "1").strip() == "0":
        return False
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
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
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "check_openmp.c")
        with open(src, "w") as fh:
            fh.write(source)
        result = subprocess.run(
            [compiler, "-fopenmp", src, "-o", os.path.join(tmp, "check_openmp")],
            capture_output=True,
        )
    if result.returncode != 0:
        sys.stderr.write(
            "warning: the C compiler does not support OpenMP; gdcore's full-batch "
            "gradient will run on one core\n"
        )
        return False
    return True


debug = _flag("GDCORE_DEBUG")
openmp = _compiler_accepts_openmp()

compile_args = ["-O0", "-g"] if debug else ["-O3"]
link_args = []
if _flag("GDCORE_NATIVE"):
    compile_args.append("-march=native")
if openmp:
    compile_args.append("-fopenmp")
    link_args.append("-fopenmp")

directives = {
    "language_level": 3,
    "boundscheck": debug,
    "wraparound": debug,
    "initializedcheck": debug,
    "cdivision": True,
}

extensions = [
    Extension(
        "gdcore._" + os.path.splitext(os.path.basename(path))[0],
        [path],
        include_dirs=[numpy.get_include()],
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        extra_compile_args=compile_args,
        extra_link_args=link_args,
    )
    for path in sorted(glob(os.path.join("gdcore", "*.pyx")))
]

setup(
    package_dir={"gdcore": "python/gdcore"},
    packages=["gdcore"],
    ext_modules=cythonize(extensions, compiler_directives=directives),
)
