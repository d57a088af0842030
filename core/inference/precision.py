"""Which float precision torch work runs in on this CPU: bf16 where the chip has bf16 units, else today's fp32.

Measured on the 2-core Xeon with AMX (issue 23): a 4096x384 by 384x1536 product runs 4.3x faster in bf16, and
MiniLM-L6 as a cross-encoder scores about 2x faster with bf16 weights. A CPU without AMX or avx512_bf16 emulates
bf16 and is slower than fp32 there, so it keeps fp32. RERANK_STUDIO_PRECISION=auto|bf16|fp32 overrides.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

PRECISION_ENV = "RERANK_STUDIO_PRECISION"
SETTINGS = ("auto", "bf16", "fp32")
CPUINFO = Path("/proc/cpuinfo")


@dataclass(frozen=True)
class Precision:
    """The precision chosen for torch work on the CPU and why, in words a person reads in the run's plan."""

    name: str  # "bf16" or "fp32"
    reason: str

    @property
    def bf16(self) -> bool:
        """Whether weights/activations run in bfloat16."""
        return self.name == "bf16"


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU feature flags the kernel reports (empty where there is no /proc/cpuinfo)."""
    try:
        text = cpuinfo.read_text(errors="replace")
    except OSError:
        return frozenset()
    for line in text.splitlines():
        if line.startswith(("flags", "Features")) and ":" in line:
            return frozenset(line.split(":", 1)[1].split())
    return frozenset()


def bf16_units(flags: frozenset[str] | None = None, onednn_bf16: bool | None = None) -> str | None:
    """'AMX' or 'avx512_bf16' when this CPU computes bf16 in hardware (and oneDNN can use it), else None."""
    flags = cpu_flags() if flags is None else flags
    if onednn_bf16 is None:
        onednn_bf16 = _onednn_bf16()
    if not onednn_bf16:
        return None
    if "amx_bf16" in flags:
        return "AMX"
    if "avx512_bf16" in flags:
        return "avx512_bf16"
    return None


def _onednn_bf16() -> bool:
    """torch's oneDNN reports bf16 support (it checks the same instructions; False when torch lacks oneDNN)."""
    import torch

    if not torch.backends.mkldnn.is_available():
        return False
    check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    try:
        return bool(check()) if check is not None else True
    except RuntimeError:
        return False


def setting(override: str | None = None) -> str:
    """The asked-for setting: the argument unless it is 'auto', else RERANK_STUDIO_PRECISION, else 'auto'."""
    value = (override or "").strip().lower()
    if value in ("", "auto"):
        value = (os.environ.get(PRECISION_ENV) or "auto").strip().lower()
    if value not in SETTINGS:
        raise ValueError(f"Precision {value!r} is unknown: choose one of {', '.join(SETTINGS)}.")
    return value


def choose(
    override: str | None = None, *, device: str = "cpu", units: str | None | bool = False
) -> Precision:
    """The CPU precision for this process: the override when set, else bf16 where the CPU has bf16 units.

    `units` is for tests (None: no bf16 units; a name: those units); left False, the CPU is asked. A GPU device is
    not decided here (core.inference.device.mixed_precision picks its fp16/bf16), so it reads fp32 for the CPU."""
    asked = setting(override)
    if not device.startswith("cpu"):
        return Precision("fp32", f"fp32 on the CPU side: {device} chooses its own mixed precision")
    if asked == "fp32":
        return Precision("fp32", "fp32: set by the precision setting")
    found = _detected() if units is False else units
    if asked == "bf16":
        return Precision(
            "bf16",
            f"bf16: set by the precision setting ({found or 'no bf16 units: emulated, likely slower'})",
        )
    if found:
        return Precision("bf16", f"bf16 on {found}")
    return Precision("fp32", "fp32: this CPU has no bf16 units")


@cache
def _detected() -> str | None:
    """bf16_units of this machine, asked once per process."""
    return bf16_units()
