"""What a benchmark ran on, and how busy the machine was: written next to every timing."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's model name as `lscpu` shows it (from /proc/cpuinfo), else platform's guess."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def load_average() -> list[float]:
    """1, 5 and 15 minute load averages: how many runnable processes shared the cores."""
    return [round(value, 2) for value in os.getloadavg()] if hasattr(os, "getloadavg") else []


def describe_machine(device: str = "cpu") -> dict:
    return {
        "device": torch.cuda.get_device_name() if device.startswith("cuda") else cpu_model(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "load_average_at_start": load_average(),
    }
