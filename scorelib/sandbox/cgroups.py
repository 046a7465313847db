"""The run's cgroup (root, best effort; cgroup v1 or a delegated v2).

Nested in the caller's own cgroup, it gives the whole run one memory limit (RLIMIT_AS
is per process, so a fork bomb could otherwise use max_processes x memory_mb) and one
pids limit, and tells afterwards whether the kernel's OOM killer struck. Moving the
launcher into it costs ~12-20 ms of wall time per run on cgroup v1 (an RCU grace
period); SCORELIB_SANDBOX_CGROUPS=0 turns it off.
"""
from __future__ import annotations

import os
import signal
import time

from .processes import cgroup_pids


def _own_cgroup_dir(root: str, controller: str | None) -> str | None:
    """The directory of this process's cgroup under `root` (v1 controller, or v2 if None)."""
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, ctrls, path = line.rstrip("\n").split(":", 2)
                if (controller is None and ctrls == "") or (controller in ctrls.split(",")):
                    return os.path.join(root, path.lstrip("/"))
    except (OSError, ValueError):
        pass
    return None


def parent_dirs() -> list[tuple[str, str]]:
    """(kind, directory under which run cgroups are created) for each usable controller."""
    if os.geteuid() != 0 or os.environ.get("SCORELIB_SANDBOX_CGROUPS", "1") == "0":
        return []
    out = []
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # unified hierarchy
        d = _own_cgroup_dir("/sys/fs/cgroup", None)
        try:
            with open(os.path.join(d, "cgroup.subtree_control")) as f:
                ctrls = f.read().split()
        except (OSError, TypeError):
            ctrls = []
        if "memory" in ctrls:
            out.append(("v2", d))
    else:
        for ctrl in ("memory", "pids"):
            root = f"/sys/fs/cgroup/{ctrl}"
            d = _own_cgroup_dir(root, ctrl)
            if d and os.path.exists(os.path.join(d, "cgroup.procs")) and os.access(d, os.W_OK):
                out.append((f"v1-{ctrl}", d))
    return out


def _write(path: str, value: str) -> bool:
    try:
        with open(path, "w") as f:
            f.write(value)
        return True
    except OSError:
        return False


def create(parents: list[tuple[str, str]], name: str, memory_bytes: int, pids: int) -> list[str]:
    """Make the run's cgroup `name` under each parent, with its limits; the directories made."""
    made = []
    for kind, parent in parents:
        d = os.path.join(parent, name)
        try:
            os.mkdir(d)
        except OSError:
            continue
        if kind == "v2":
            ok = _write(os.path.join(d, "memory.max"), str(memory_bytes))
            _write(os.path.join(d, "memory.swap.max"), "0")
            _write(os.path.join(d, "pids.max"), str(pids))
        elif kind == "v1-memory":
            ok = _write(os.path.join(d, "memory.limit_in_bytes"), str(memory_bytes))
            _write(os.path.join(d, "memory.memsw.limit_in_bytes"), str(memory_bytes))
        else:
            ok = _write(os.path.join(d, "pids.max"), str(pids))
        if ok:
            made.append(d)
        else:
            remove([d])
    return made


def oom_kills(cgroups: list[str]) -> int:
    """How many processes the kernel's OOM killer killed in these cgroups."""
    n = 0
    for d in cgroups:
        for fname in ("memory.events", "memory.oom_control"):
            try:
                with open(os.path.join(d, fname)) as f:
                    for line in f:
                        key, _, val = line.partition(" ")
                        if key == "oom_kill":
                            n += int(val)
            except (OSError, ValueError):
                pass
    return n


def remove(cgroups: list[str]) -> None:
    """Kill what is left in each cgroup and remove it (retrying for up to 0.5 s)."""
    for d in cgroups:
        end = time.monotonic() + 0.5
        while True:
            for pid in cgroup_pids([d]):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError:
                if time.monotonic() > end:
                    break
                time.sleep(0.005)
