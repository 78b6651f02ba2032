"""What machine a benchmark ran on: chip, memory, OS, MLX version and backend. Saved with every result."""

from __future__ import annotations

import os
import platform
import subprocess
from typing import Any


def _run(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return ""
    return out.stdout.strip() if out.returncode == 0 else ""


def cpu_name() -> str:
    if platform.system() == "Darwin":
        return _run(["sysctl", "-n", "machdep.cpu.brand_string"]) or platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def gpu_name() -> str:
    """The first CUDA GPU's name through nvidia-smi, or ''."""
    lines = _run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]).splitlines()
    return lines[0].strip() if lines else ""


def mlx_backend() -> dict[str, Any]:
    """MLX version, default device and which accelerators this build can use. Call on the engine thread."""
    info: dict[str, Any] = {"mlx": None, "mlx_lm": None, "device": None, "metal": False, "cuda": False}
    try:
        import mlx.core as mx
    except Exception as exc:  # MLX missing: the rest of the info still helps
        info["error"] = str(exc)
        return info
    info["mlx"] = mx.__version__
    info["device"] = str(mx.default_device())
    for name in ("metal", "cuda"):
        try:
            info[name] = bool(getattr(mx, name).is_available())
        except Exception:
            info[name] = False
    try:
        info["device_info"] = {k: v for k, v in mx.device_info().items() if isinstance(v, (str, int, float))}
    except Exception:
        pass
    try:
        import mlx_lm

        info["mlx_lm"] = mlx_lm.__version__
    except Exception:
        pass
    return info


def machine_info() -> dict[str, Any]:
    """Everything a reader needs to compare two result files. Call on the engine thread."""
    import psutil

    backend = mlx_backend()
    accel = ""
    if backend.get("metal"):
        accel = cpu_name()  # Apple silicon: the chip name is the CPU brand string ("Apple M4 Max")
    elif backend.get("cuda"):
        accel = gpu_name() or str(backend.get("device_info", {}).get("device_name", ""))
    cpu = cpu_name()
    return {
        "chip": accel or cpu,
        "cpu": cpu,
        "cpu_cores": os.cpu_count(),
        "memory_bytes": psutil.virtual_memory().total,
        "os": f"{platform.system()} {platform.release()}",
        "platform": platform.platform(),
        "python": platform.python_version(),
        "hostname": platform.node(),
        **{k: backend[k] for k in backend if k != "device_info"},
        "device_info": backend.get("device_info", {}),
    }
