"""What the parent hands the launcher: its command line, environment, spec and program.

The launcher and the bootstrap are real modules (:mod:`.launcher`, :mod:`.bootstrap`),
but they run where the project checkout does not exist (inside the program's new
root) and with ``-I -S`` (no ``sys.path`` entry for the project, no site-packages), so
the parent reads their source once and passes it with ``-c``, as before. Nothing of
the host is needed after the launcher switches root, and the launcher's argv shows
the same things it always did.
"""
from __future__ import annotations

import os
import resource
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import bootstrap, launcher
from .processes import count_tasks_of

#: environment variable that marks every process of a run
ENV_MARKER = "SCORELIB_SANDBOX_RUN"
#: pivot_root's syscall number per machine (where it is missing, the launcher chroots)
PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "loongarch64": 41, "i686": 217, "i386": 217,
              "armv7l": 218, "ppc64le": 203, "ppc64": 203, "s390x": 217}

_LAUNCHER_SOURCE = Path(launcher.__file__).read_text(encoding="utf-8")
_BOOTSTRAP_SOURCE = Path(bootstrap.__file__).read_text(encoding="utf-8")


@dataclass(frozen=True)
class Limits:
    """The limits of one run (see :func:`scorelib.sandbox.run_python`)."""

    timeout_s: float
    memory_mb: int
    max_output_bytes: int
    max_file_mb: int
    max_processes: int

    @property
    def disk_bytes(self) -> int:
        """Size of the workdir's tmpfs (with namespaces): 4 x max_file_mb, at least 16 MiB."""
        return max(4 * (self.max_file_mb << 20), 16 << 20)


def launcher_command(python: str, spec: dict) -> list[str]:
    return [python, "-I", "-S", "-c", _LAUNCHER_SOURCE, repr(spec)]


def bootstrap_source(fd: int, guard: bool | str) -> str:
    """The program interpreter's ``-c`` code: read the program from `fd`, guard, run it."""
    return _BOOTSTRAP_SOURCE + f"\n_scorelib_main({fd}, {guard!r})\n"


def environment(workdir: str, run_id: str) -> dict[str, str]:
    """A minimal environment built from scratch (nothing of ``os.environ``: no secrets)."""
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "PYTHONHASHSEED": "0",  # ignored by the -I interpreter itself; for pythons it may start
        "PYTHONDONTWRITEBYTECODE": "1",
        "HOME": workdir,
        "TMPDIR": workdir,
        "OMP_NUM_THREADS": "1",
        "MALLOC_ARENA_MAX": "2",  # fewer 64 MiB malloc arenas counted against RLIMIT_AS
        ENV_MARKER: run_id,
    }


def launch_spec(cfg, limits: Limits, *, uid: int | None, workdir: str, progfd: int, status_w: int,
                cgroups: list[str], guard: bool) -> dict:
    """The launcher's argv[1] (plain data; see :mod:`.launcher`)."""
    spec = {
        # without a uid of its own the program could delete the caller's files: guard those too
        "python": cfg.python, "program_fd": progfd,
        "bootstrap": bootstrap_source(progfd, (True if cfg.drop else "files") if guard else False),
        "status_fd": status_w, "uid": uid, "ns": cfg.namespaces, "workdir": workdir,
        "disk_bytes": limits.disk_bytes, "rlimits": rlimits(limits, uid),
        "cgroups": [os.path.join(d, "cgroup.procs") for d in cgroups],
        "binds": list(cfg.visible) if cfg.namespaces else [],
        "pivot_nr": PIVOT_ROOT.get(os.uname().machine, 0),
        "landlock": _landlock_spec(cfg) if cfg.landlock else None,
    }
    if cfg.namespaces and cfg.bwrap:
        inner = dict(spec, ns=False, init=True, cgroups=[], binds=[])
        return {**spec, "ns": False, "binds": [],
                "bwrap": bwrap_command(cfg, workdir, limits.disk_bytes) + launcher_command(cfg.python, inner)}
    return spec


def bwrap_command(cfg, workdir: str, disk_bytes: int) -> list[str]:
    """bubblewrap's part of the command line: the namespaces (mount, PID, net, IPC) and the
    new root of :mod:`.visible` (read-only), a size-limited tmpfs workdir; the launcher it
    runs inside (as PID 1) mounts /proc with hidepid and forks the program's process."""
    cmd = [cfg.bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--die-with-parent", "--as-pid-1"]
    # every directory on the way, made 0755 first (bwrap 0.8 makes missing parents with the
    # mode of the next --perms, or 0700): the uid must traverse them
    paths = [path for _, path, _ in cfg.visible] + [workdir]
    parents = {d for path in paths for d in _ancestors(path)}
    for d in sorted(parents, key=lambda d: (d.count("/"), d)):
        cmd += ["--perms", "0755", "--dir", d]
    for kind, path, target in cfg.visible:
        if kind == "symlink":
            cmd += ["--symlink", target, path]
        else:
            cmd += ["--dev-bind" if kind == "dev" else "--ro-bind", path, path]
    cmd += ["--dir", "/proc", "--size", str(disk_bytes), "--perms", "0700", "--tmpfs", workdir]
    return cmd + ["--remount-ro", "/", "--chdir", workdir, "--"]


def _ancestors(path: str) -> list[str]:
    """"/a/b/c" -> ["/a", "/a/b"]."""
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)]


def _landlock_spec(cfg) -> dict:
    return {"abi": cfg.landlock,
            # with namespaces, /proc is the run's own (hidepid): readable
            "read": [p for kind, p, _ in cfg.visible if kind in ("dir", "file")]
            + (["/proc"] if cfg.namespaces else []),
            # and every directory of the new root may be listed
            "list": ["/"] if cfg.namespaces else [],
            "devices": [p for kind, p, _ in cfg.visible if kind == "dev"]}


def rlimits(limits: Limits, uid: int | None) -> list[tuple[int, int, int]]:
    """(resource, soft, hard) for the program's process, never above the current hard limits."""
    cpu = int(limits.timeout_s) + 2
    nproc = limits.max_processes
    if uid is None and os.geteuid() != 0:
        nproc += count_tasks_of(os.getuid())  # RLIMIT_NPROC counts every task of the user
    memory, fsize = limits.memory_mb << 20, limits.max_file_mb << 20
    wanted = [
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, memory, memory),
        (resource.RLIMIT_FSIZE, fsize, fsize),
        (resource.RLIMIT_NPROC, nproc, nproc),
        (resource.RLIMIT_NOFILE, 256, 256),
        (resource.RLIMIT_CORE, 0, 0),
    ]
    out = []
    for res, soft, hard in wanted:
        _, cur_hard = resource.getrlimit(res)
        if cur_hard != resource.RLIM_INFINITY:
            hard = min(hard, cur_hard)  # without CAP_SYS_RESOURCE a hard limit can only go down
        out.append((int(res), min(soft, hard), hard))
    return out


def program_fd(token: bytes, program: str | bytes) -> int:
    """A memfd holding ``token + "\\n" + program``, positioned at its start."""
    data = program if isinstance(program, bytes) else program.encode("utf-8", "surrogatepass")
    payload = token + b"\n" + data
    if hasattr(os, "memfd_create"):
        fd = os.memfd_create("scorelib-program", os.MFD_CLOEXEC)
    else:  # pragma: no cover
        with tempfile.TemporaryFile() as f:
            fd = os.dup(f.fileno())
    try:
        view = memoryview(payload)
        while view:
            view = view[os.write(fd, view):]
        os.lseek(fd, 0, os.SEEK_SET)
    except BaseException:
        os.close(fd)
        raise
    return fd
