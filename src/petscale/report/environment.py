"""What a report says about where it was made: package versions and the machine."""

from __future__ import annotations

import os
import platform
from importlib import metadata


def versions() -> dict[str, str]:
    """Versions of Python and of the packages a result depends on."""
    out = {"python": platform.python_version()}
    for package in ("petscale", "torch", "transformers", "accelerate"):
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "not installed"
    return out


def machine() -> dict[str, str]:
    """This machine: CPU model, core count, GPU (the machine the report is built on)."""
    import torch

    gpu = "none"
    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        gpu = ", ".join(names)
    return {
        "host": platform.node(),
        "cpu": _cpu_name(),
        "cores": str(os.cpu_count() or "unknown"),
        "gpu": gpu,
        "os": platform.platform(terse=True),
    }


def _cpu_name() -> str:
    # /proc/cpuinfo names the model on Linux; platform.processor() is often empty there.
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()
