"""Which BLAS MLX's CPU math runs on, and where a fast one is.

MLX's Linux CPU wheel links the netlib *reference* BLAS (`mlx_cpu.libs/libblas-*.so`): fp32 matrix
products run at ~6 GFLOP/s where this kind of CPU does ~200 per core. MLX calls only `cblas_sgemm`,
`cblas_dgemm` and `cblas_cgemm` from it, so preloading any library that exports those CBLAS names
(OpenBLAS, MKL) makes MLX use it; `preload.py` arranges that before MLX loads.

Where a fast BLAS comes from, in this order (measurements in docs/benchmarks/cpu_speed.md):
1. `TEMPER_BLAS=/path/to/lib.so`: the user's choice (MKL's libmkl_rt.so, a custom OpenBLAS...).
2. The `cmeel-openblas` wheel, a dependency of temper on Linux: OpenBLAS 0.3.31 with plain CBLAS names,
   the same version for every user. It needs `libgfortran.so.5`; where the system has none, the copy
   that MLX's wheel ships is exposed under that name (see `support_dir`).
3. A system OpenBLAS (Debian/Ubuntu `libopenblas0-pthread`, Fedora `openblas-threads`...).

Not used: PyPI's `mkl` (830 MB installed with its OpenMP and TBB wheels, for speed equal to OpenBLAS
on one core), `scipy-openblas32/64` and numpy's bundled OpenBLAS (their symbols are renamed
`scipy_*`, so MLX cannot find them without a compiled forwarding shim).

Never imports MLX: this runs before MLX loads.
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import sys
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path

ENV_LIBRARY = "TEMPER_BLAS"
ENV_DISABLE = "TEMPER_NO_BLAS_PRELOAD"

HINT = (
    "MLX is using its slow reference BLAS: `pip install cmeel-openblas` (or `apt install "
    "libopenblas0-pthread`) makes CPU math ~30x faster"
)

_SYSTEM_OPENBLAS = (
    "/usr/lib/x86_64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/openblas-pthread/libopenblas.so.0",
    "/usr/lib/x86_64-linux-gnu/libopenblas.so.0",
    "/usr/lib/aarch64-linux-gnu/libopenblas.so.0",
    "/usr/lib64/libopenblasp.so.0",
    "/usr/lib64/libopenblas.so.0",
    "/usr/lib/libopenblas.so.0",
)
_GFORTRAN = "libgfortran.so.5"


@dataclass(frozen=True)
class BlasLibrary:
    """A BLAS that MLX can be given: `path` to preload, plus a folder for its own needs, if any."""

    path: Path
    source: str  # "TEMPER_BLAS", "cmeel-openblas" (PyPI) or "system"
    support_dir: Path | None = None  # goes on LD_LIBRARY_PATH (a libgfortran.so.5 for it)


def find() -> BlasLibrary | None:
    """The fast BLAS to preload on this machine, or None (not Linux, or none installed)."""
    if not sys.platform.startswith("linux"):
        return None
    chosen = os.environ.get(ENV_LIBRARY)
    if chosen:
        path = Path(chosen).expanduser()
        return BlasLibrary(path.resolve(), ENV_LIBRARY) if path.is_file() else None
    wheel = _cmeel_openblas()
    if wheel is not None:
        if _loadable(_GFORTRAN):
            return BlasLibrary(wheel, "cmeel-openblas")
        support = support_dir()
        if support is not None:
            return BlasLibrary(wheel, "cmeel-openblas", support)
    for candidate in _SYSTEM_OPENBLAS:
        path = Path(candidate)
        if path.is_file() and _loadable(str(path)):
            return BlasLibrary(path.resolve(), "system")
    return None


def preload_path() -> str | None:
    """What `LD_PRELOAD` should hold for MLX (None when nothing fast is installed)."""
    lib = find()
    return str(lib.path) if lib else None


def _cmeel_openblas() -> Path | None:
    try:
        dist = metadata.distribution("cmeel-openblas")
    except metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file("cmeel.prefix/lib/libopenblas.so.0")))
    return path if path.is_file() else None


def _loadable(name: str) -> bool:
    """Whether the dynamic linker can load `name` here (this process is about to exec, or is a check)."""
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


def support_dir() -> Path | None:
    """A folder where `libgfortran.so.5` is the copy MLX's wheel ships (renamed by auditwheel).

    cmeel-openblas links `libgfortran.so.5` without bundling it; most desktops have it, bare servers and
    containers often don't. The folder holds symlinks only and lives in the user's cache."""
    try:
        libs = Path(str(metadata.distribution("mlx-cpu").locate_file("mlx_cpu.libs")))
    except metadata.PackageNotFoundError:
        return None
    gfortran = sorted(libs.glob("libgfortran-*.so.5*"))
    if not gfortran:
        return None
    links = {_GFORTRAN: gfortran[0]}
    for other in libs.glob("libquadmath-*.so*"):  # the renamed libgfortran links this exact name
        links[other.name] = other
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    tag = hashlib.sha1(str(libs).encode()).hexdigest()[:10]
    folder = cache / "temper" / f"blas-support-{tag}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for name, target in links.items():
            link = folder / name
            if not (link.is_symlink() and os.readlink(link) == str(target)):
                tmp = folder / f".{name}.{os.getpid()}"
                tmp.unlink(missing_ok=True)
                tmp.symlink_to(target)
                os.replace(tmp, link)
    except OSError:
        return None
    return folder


# ---- what is loaded in this process ------------------------------------------------------------


@dataclass(frozen=True)
class BlasStatus:
    """What MLX's CPU matrix products run on in this process (`blas_status()`)."""

    name: str  # "OpenBLAS 0.3.31", "MLX reference BLAS", "Accelerate", "not used (CUDA)"...
    fast: bool  # False only for the reference BLAS
    path: str | None  # the library file that serves cblas_sgemm
    source: str | None  # "cmeel-openblas", "system", "TEMPER_BLAS", "LD_PRELOAD" (set by hand) or None
    threads: int | None  # BLAS threads (OpenBLAS, MKL); None when unknown
    detail: str  # e.g. OpenBLAS's build config ("DYNAMIC_ARCH ... SapphireRapids MAX_THREADS=64")
    hint: str | None  # one line for the user when `fast` is False

    def line(self) -> str:
        """One line for `temper --version` and logs."""
        text = self.name
        if self.threads:
            text += f", {self.threads} thread{'s' if self.threads != 1 else ''}"
        if self.source:
            text += f" ({self.source})"
        return text

    def as_dict(self) -> dict:
        return asdict(self)


def blas_status() -> BlasStatus:
    """Which BLAS serves MLX's fp32 matrix products in this process; cheap (reads /proc/self/maps).

    On Linux the library that the dynamic linker resolves `cblas_sgemm` to in the global scope is the one
    MLX calls (a preloaded library comes before MLX's own); where none is global, MLX uses the reference
    BLAS of its wheel. On macOS MLX uses Accelerate. Never imports MLX and never fails."""
    if sys.platform == "darwin":
        return BlasStatus("Accelerate", True, None, "macOS", None, "", None)
    if cuda_build():
        return BlasStatus("not used (MLX CUDA build)", True, None, None, None, "", None)
    try:
        return _linux_status()
    except Exception as exc:  # pragma: no cover - status must never break a caller
        return BlasStatus("unknown", False, None, None, None, f"{type(exc).__name__}: {exc}", None)


def cpu_linalg_fast() -> bool:
    """Whether MLX's CPU stream factorizes and multiplies on a fast library (Accelerate on macOS, a BLAS
    preloaded into the global scope on Linux), whatever device MLX computes on by default.

    A CUDA build leaves BLAS alone (`blas_status()` calls that fast: its products run on the GPU), but
    `mx.linalg` runs on the CPU stream only, where the wheel's reference BLAS/LAPACK serves it: an inverse
    Cholesky of a 1536² matrix took 2.36 s there against 0.13 s with OpenBLAS preloaded and 0.41 s in
    NumPy's LAPACK (2-core machine). Callers use NumPy when this is False."""
    if sys.platform == "darwin":
        return True
    try:
        return global_provider("cblas_sgemm") is not None
    except Exception:  # pragma: no cover - a probe must never break a caller
        return False


def _linux_status() -> BlasStatus:
    path = global_provider("cblas_sgemm")
    if path is None:
        return BlasStatus("MLX reference BLAS", False, _mapped("libblas-"), None, None,
                          "netlib reference BLAS from the mlx-cpu wheel", _hint())
    lib = ctypes.CDLL(path)
    source = _source_of(path)
    if hasattr(lib, "openblas_get_config"):
        lib.openblas_get_config.restype = ctypes.c_char_p
        config = (lib.openblas_get_config() or b"").decode(errors="replace").strip()
        version = config.split()[1] if config.startswith("OpenBLAS ") else ""
        threads = lib.openblas_get_num_threads() if hasattr(lib, "openblas_get_num_threads") else None
        return BlasStatus(f"OpenBLAS {version}".strip(), True, path, source, threads, config, None)
    if hasattr(lib, "MKL_Get_Max_Threads"):
        buf = ctypes.create_string_buffer(256)
        if hasattr(lib, "mkl_get_version_string"):
            lib.mkl_get_version_string(buf, len(buf))
        detail = buf.value.decode(errors="replace").strip()
        return BlasStatus("Intel MKL", True, path, source, lib.MKL_Get_Max_Threads(), detail, None)
    return BlasStatus(Path(path).name, True, path, source, None, "", None)


def _hint() -> str:
    if os.environ.get(ENV_DISABLE, "") not in ("", "0"):
        return f"{ENV_DISABLE} is set: MLX's CPU math uses its slow reference BLAS"
    lib = find()
    if lib is None:
        return HINT
    return f"a fast BLAS is installed but was not preloaded: start through `temper`, or LD_PRELOAD={lib.path}"


def _source_of(path: str) -> str:
    env = os.environ.get(ENV_LIBRARY)
    if env and Path(env).expanduser().resolve() == Path(path).resolve():
        return ENV_LIBRARY
    if "cmeel.prefix" in path:
        return "cmeel-openblas"
    if path.startswith(("/usr/", "/lib")):
        return "system"
    return "LD_PRELOAD"


class _DlInfo(ctypes.Structure):
    _fields_ = [("dli_fname", ctypes.c_char_p), ("dli_fbase", ctypes.c_void_p),
                ("dli_sname", ctypes.c_char_p), ("dli_saddr", ctypes.c_void_p)]


def global_provider(symbol: str) -> str | None:
    """The file that defines `symbol` in the process's global scope (None when no global object does)."""
    try:
        address = ctypes.cast(getattr(ctypes.CDLL(None), symbol), ctypes.c_void_p).value
    except AttributeError:
        return None
    libc = ctypes.CDLL(None)
    info = _DlInfo()
    if not address or not libc.dladdr(ctypes.c_void_p(address), ctypes.byref(info)) or not info.dli_fname:
        return None
    return os.path.realpath(info.dli_fname.decode())


def _mapped(fragment: str) -> str | None:
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                parts = line.split()
                if len(parts) >= 6 and fragment in Path(parts[-1]).name:
                    return parts[-1]
    except OSError:
        pass
    return None


def cuda_build() -> bool:
    """Whether the installed MLX is a CUDA build (its GPU kernels are the fast path: leave BLAS alone)."""
    for name in ("mlx-cuda-13", "mlx-cuda-12", "mlx-cuda"):  # what mlx[cuda], mlx[cuda12], mlx[cuda13] install
        try:
            metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        return True
    return False


def main(argv: list[str] | None = None) -> int:
    """`python -m temper.core.accel.blas [--preload-path]`: the library to preload, or this process's status."""
    args = sys.argv[1:] if argv is None else argv
    if "--preload-path" in args:
        path = preload_path()
        if path:
            print(path)
        return 0
    found = find()
    print(f"fast BLAS for MLX: {found.path} ({found.source})" if found else f"fast BLAS for MLX: none ({HINT})")
    print(f"this process uses: {blas_status().line()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
