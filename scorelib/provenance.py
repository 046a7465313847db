"""Where a run was made, for its manifest (``results.Run.write_manifest``) and the report's environment table: the
git revision and whether the checkout was dirty, and what decides a CPU run's floating-point path. The same code,
seed and parameters train a different base model on a processor whose vector extensions send MKL's and torch's
kernels down another path (runbook, sixth session), so a run records the processor, torch's kernel capability and
the environment variables that change them.
"""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def git_revision(root: Path) -> str:
    """The short revision of the git checkout at ``root`` ('unknown' outside one)."""
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             timeout=5, cwd=root)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def git_dirty(root: Path) -> bool | None:
    """Whether the checkout differs from its revision (changed or untracked files; None: not a git checkout)."""
    try:
        out = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=5,
                             cwd=root)
        return bool(out.stdout.strip()) if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


NUMERICS_ENV = ("MKL_CBWR", "ATEN_CPU_CAPABILITY", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_tile")  # the vector extensions that pick MKL's and torch's kernels


def cpu_model() -> str:
    """The processor's model name and which of CPU_FLAGS it has (Linux: /proc/cpuinfo), else what ``platform``
    knows, e.g. 'Intel(R) Xeon(R) Processor [avx2 avx512f avx512_bf16 amx_tile]'."""
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor() or platform.machine()
    name = next((x.split(":", 1)[1].strip() for x in lines if x.startswith("model name")), platform.machine())
    flags = set(next((x.split(":", 1)[1].split() for x in lines if x.startswith("flags")), []))
    return f"{name} [{' '.join(f for f in CPU_FLAGS if f in flags)}]"


def numerics() -> dict:
    """What decides a CPU run's floating-point path, beside the versions: the processor, the vector instruction set
    torch's kernels use (``torch.backends.cpu.get_cpu_capability``) and the environment variables that change it.
    Two machines that differ here can train different models from the same seed (runbook, sixth session)."""
    import torch

    env = {k: os.environ[k] for k in NUMERICS_ENV if k in os.environ}
    return dict(cpu=cpu_model(), cpu_capability=torch.backends.cpu.get_cpu_capability(), numerics_env=env)
