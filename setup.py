"""Builds the pymlm extension (pymlm._core) with the project's CMake build.

The package metadata is in pyproject.toml; this file only adds a build_ext that runs CMake:

    configure  cmake -S . -B <build dir> -DMLM_BUILD_PYTHON=ON (tests, CLI, examples, bench off)
    build      cmake --build <build dir> --target _core
    install    cmake --install <build dir> --component python  (into a staging prefix)

and copies the installed _core module into the package. The CMake build directory persists, so
repeated `pip install .` runs rebuild incrementally.

Environment variables:
    MLM_CMAKE_BUILD_DIR   CMake build directory (default: build-python/<python tag> in the source tree)
    MLM_CMAKE_BUILD_TYPE  CMAKE_BUILD_TYPE (default: Release)
    MLM_CMAKE_ARGS        extra configure arguments, e.g. "-DMLM_NATIVE=OFF" for a portable wheel
                          or "-DMLM_OPENMP=OFF"
    CMAKE_EXECUTABLE      the cmake to run (default: cmake on PATH, else the `cmake` Python package)
    CMAKE_BUILD_PARALLEL_LEVEL  build jobs (default: the CPU count)
"""
import glob
import os
import shlex
import shutil
import subprocess
import sys
import sysconfig

from setuptools import Extension, setup
from setuptools.command.build import build
from setuptools.command.build_ext import build_ext

SOURCE_DIR = os.path.dirname(os.path.abspath(__file__))


class CMakeExtension(Extension):
    """An extension whose sources CMake knows; setuptools compiles nothing itself."""

    def __init__(self, name, target):
        super().__init__(name, sources=[])
        self.target = target


def _find_cmake():
    cmake = os.environ.get("CMAKE_EXECUTABLE") or shutil.which("cmake")
    if cmake:
        return cmake
    try:  # the `cmake` wheel from PyPI (pyproject's build requirement)
        import cmake as cmake_pkg

        return os.path.join(cmake_pkg.CMAKE_BIN_DIR, "cmake")
    except ImportError:
        raise RuntimeError(
            "cmake >= 3.20 is needed to build pymlm: install it (Debian: apt-get install cmake, "
            "or scripts/install-deps.sh) or pip install cmake"
        ) from None


def _default_build_dir():
    tag = "%s%d%d" % (sys.implementation.name, sys.version_info[0], sys.version_info[1])
    return os.path.join(SOURCE_DIR, "build-python", tag)


class CMakeBuild(build_ext):
    def build_extension(self, ext):
        if not isinstance(ext, CMakeExtension):
            return super().build_extension(ext)

        cmake = _find_cmake()
        build_dir = os.path.abspath(os.environ.get("MLM_CMAKE_BUILD_DIR") or _default_build_dir())
        build_type = os.environ.get("MLM_CMAKE_BUILD_TYPE", "Release")
        os.makedirs(build_dir, exist_ok=True)

        args = [
            "-S", SOURCE_DIR,
            "-B", build_dir,
            "-DCMAKE_BUILD_TYPE=" + build_type,
            "-DMLM_BUILD_PYTHON=ON",
            "-DMLM_BUILD_TESTS=OFF",
            "-DMLM_BUILD_CLI=OFF",
            "-DMLM_BUILD_EXAMPLES=OFF",
            "-DMLM_BUILD_BENCH=OFF",
            "-DPython3_EXECUTABLE=" + sys.executable,
        ]
        try:
            import pybind11

            args.append("-Dpybind11_DIR=" + pybind11.get_cmake_dir())
        except ImportError:
            pass  # CMake then looks for pybind11's config in the usual places (pybind11-dev)
        fresh = not os.path.exists(os.path.join(build_dir, "CMakeCache.txt"))
        if fresh and "CMAKE_GENERATOR" not in os.environ and shutil.which("ninja"):
            args += ["-G", "Ninja"]
        args += shlex.split(os.environ.get("MLM_CMAKE_ARGS", ""))

        jobs = os.environ.get("CMAKE_BUILD_PARALLEL_LEVEL") or str(
            self.parallel if isinstance(self.parallel, int) and self.parallel > 0
            else (os.cpu_count() or 1)
        )
        stage = os.path.join(build_dir, "stage")
        shutil.rmtree(stage, ignore_errors=True)

        self._run([cmake] + args)
        self._run([cmake, "--build", build_dir, "--config", build_type, "--target", ext.target,
                   "--parallel", jobs])
        self._run([cmake, "--install", build_dir, "--config", build_type, "--component", "python",
                   "--prefix", stage])

        # The install rule puts the module at <prefix>/pymlm/_core<EXT_SUFFIX>.
        package, _, module = ext.name.rpartition(".")
        built = sorted(glob.glob(os.path.join(stage, *package.split("."), module + ".*")))
        built = [p for p in built if p.endswith((".so", ".pyd", ".dylib"))]
        if len(built) != 1:
            raise RuntimeError("expected one %s module under %s, found %r" % (ext.name, stage, built))
        dest = self.get_ext_fullpath(ext.name)
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        if suffix and not built[0].endswith(suffix):
            raise RuntimeError("CMake built %s, but this Python expects the suffix %s: was it "
                               "configured for another interpreter? Remove %s and retry."
                               % (built[0], suffix, build_dir))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copyfile(built[0], dest)
        shutil.copymode(built[0], dest)

    def _run(self, cmd):
        print("+ " + " ".join(shlex.quote(c) for c in cmd), flush=True)
        subprocess.run(cmd, check=True)


class CleanBuild(build):
    """Starts from an empty build/lib: setuptools never deletes files there, so a module removed
    from the sources (or a file no longer packaged) would otherwise ride along into the wheel.
    Only the CMake build directory persists between builds."""

    def run(self):
        shutil.rmtree(self.build_lib, ignore_errors=True)
        super().run()


setup(
    ext_modules=[CMakeExtension("pymlm._core", target="_core")],
    cmdclass={"build": CleanBuild, "build_ext": CMakeBuild},
    # Keep setuptools' own build tree out of build/, which is the C++ build directory.
    options={"build": {"build_base": os.path.join("build-python", "setuptools")}},
)
