"""Which device a run uses, and its precision (AMP) settings."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from curate.core.errors import InputError


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError as e:
        raise InputError(f"unknown device '{name}'", "use auto, cpu, cuda or cuda:N") from e
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda was asked for but no CUDA GPU is available", "use --device cpu or auto")
    return dev


def tune_backend(device: torch.device) -> None:
    """Inputs have one fixed size, so let cuDNN time its kernels once and keep the fastest
    (GPU runs then repeat to float tolerance, not bit for bit; CPU runs stay bitwise)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def cpu_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo") as f:
            flags = f.read()
        return "avx512_bf16" in flags or "amx_bf16" in flags
    except OSError:
        return False


@dataclass
class Precision:
    enabled: bool
    dtype: torch.dtype | None
    device_type: str

    def autocast(self):
        if not self.enabled:
            return contextlib.nullcontext()
        return torch.autocast(self.device_type, dtype=self.dtype)

    @property
    def name(self) -> str:
        return {torch.float16: "fp16", torch.bfloat16: "bf16"}.get(self.dtype, "fp32") if self.enabled else "fp32"


def precision_for(device: torch.device, amp: bool | None) -> Precision:
    """AMP: fp16 on CUDA (on by default), bf16 on CPU (opt-in with --amp)."""
    if device.type == "cuda":
        on = True if amp is None else amp
        return Precision(on, torch.float16, "cuda")
    if device.type == "cpu" and amp:
        return Precision(True, torch.bfloat16, "cpu")
    return Precision(False, None, device.type)
