"""The device a run uses: CPU/CUDA/MPS, the precision it trains in, and the versions to record."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import torch


def cpu_has_bf16() -> bool:
    """AVX-512 BF16 or AMX: bf16 matrix products run at several times the fp32 rate."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def cuda_has_bf16() -> bool:
    """bf16 in the GPU's hardware (Ampere and newer); torch's plain check also counts slow emulation (e.g. a T4)."""
    if not torch.cuda.is_available():
        return False
    try:
        return torch.cuda.is_bf16_supported(including_emulation=False)
    except TypeError:  # torch without the argument: its check is the hardware one
        return torch.cuda.is_bf16_supported()


def fast_bf16() -> bool:
    """bf16 matrix products in hardware on the device training runs on (GPU if any, else CPU)."""
    return cuda_has_bf16() if torch.cuda.is_available() else cpu_has_bf16()


def resolve_precision(precision: str, recipe: str = "fast") -> str:
    """The precision a run actually uses: `auto` is bf16 (or fp16) on GPUs, bf16 autocast on CPUs
    with bf16 instructions in the fast recipe (same accuracy, see the bench), else fp32."""
    if precision != "auto":
        if precision == "fp16" and not torch.cuda.is_available():
            raise ValueError("fp16 mixed precision needs a GPU; use bf16 or fp32 on CPU.")
        return precision
    if recipe == "baseline":
        return "fp32"
    if torch.cuda.is_available():
        return "bf16" if cuda_has_bf16() else "fp16"
    return "bf16" if cpu_only() and cpu_has_bf16() else "fp32"


def cpu_only() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return not torch.cuda.is_available() and not (mps is not None and mps.is_available())


def cpu_vector_units(flags: set[str]) -> str:
    """The widest x86 vector instructions among /proc/cpuinfo's flags, as timings name them: one CPU
    model name ("AMD EPYC") covers machines with and without AVX-512, which train at different speeds."""
    if "avx512f" in flags:
        return "AVX-512 bf16" if "avx512_bf16" in flags else "AVX-512"
    return "AVX2" if "avx2" in flags else ""


def device_name() -> str:
    """The GPU's name, or the CPU's with its torch threads and vector units, e.g. "AMD EPYC (2 threads, AVX2)"."""
    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "Apple MPS"
    names, flags = [], set()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                names.append(value.strip())
            elif key.strip() == "flags" and not flags:
                flags = set(value.split())
    except OSError:
        pass
    cpu = names[0] if names else platform.processor() or "CPU"
    units = cpu_vector_units(flags)
    return f"{cpu} ({torch.get_num_threads()} threads{', ' + units if units else ''})"


def library_versions() -> dict:
    import datasets
    import peft
    import transformers

    return {
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "peft": peft.__version__,
        "datasets": datasets.__version__,
        "device": device_name(),
    }
