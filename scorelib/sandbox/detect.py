"""Which containment layers this machine allows: detected once, by running probes.

The best configuration first: a uid of its own with namespaces (and Landlock), then a
uid of its own without namespaces, then root in namespaces; each is kept only if a
probe program run with it shows every layer it claims in force. A caller that is not
root gets none of these (Landlock, where the kernel has it, still hides the host).

The program's interpreter must be executable *by the sandbox uid*. A virtualenv
whose base interpreter is under a private home (e.g. ``/root/.pyenv``, mode 0700) is
not, so the candidates (``sys.executable``, its base interpreter,
``/usr/bin/python3.X``, ``/usr/bin/python3`` ...) are probed in turn and the first that
works as the sandbox uid is kept (it needs only the standard library; the choice
follows what the host allows, not what the new root would make reachable, so every
mode runs the same interpreter).
"""
from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field

from . import cgroups as cg
from .runner import run
from .visible import visible_paths


@dataclass(frozen=True)
class Config:
    python: str  # runs the program
    launcher: str  # runs the launcher (as the parent's user)
    drop: bool  # run the program as a leased unprivileged uid
    namespaces: bool  # PID/mount/net/IPC namespaces, and a new root that shows only `visible`
    cgroups: tuple[tuple[str, str], ...]
    base_dir: str  # where working directories are created
    notes: tuple[str, ...] = field(default=())
    landlock: int = 0  # Landlock ABI version that confines the program's file access (0: none)
    visible: tuple[tuple[str, str, str], ...] = ()  # (kind, path, symlink target): what the program may read
    bwrap: str = ""  # with namespaces: bubblewrap (this path) makes them and the new root ("": the launcher)

    @property
    def host_hidden(self) -> bool:
        """Host files outside the visible paths cannot be read."""
        return self.namespaces or bool(self.landlock)


HOST_VISIBLE = ("programs can read every host file their user may read (no namespaces, no Landlock): "
                "world-readable files in the temp folder, home folders or the project are not hidden")
LANDLOCK_ONLY = ("no new root: Landlock denies reading, listing and writing host files outside the "
                 "visible paths, but a program can still tell whether a path exists (stat)")


def detect_config() -> Config:
    """The best configuration this machine allows (probes run with a world-readable canary)."""
    base = tempfile.gettempdir()
    if not _world_traversable(base):
        base = "/tmp" if os.path.isdir("/tmp") else base
    launcher = sys.executable if sys.executable and os.access(sys.executable, os.X_OK) else shutil.which("python3")
    abi = landlock_abi()
    fd, canary = tempfile.mkstemp(prefix="scorelib-sandbox-canary-", dir=base)
    try:
        os.write(fd, b"visible")
        os.close(fd)
        os.chmod(canary, 0o644)
        return detect_with(base, launcher, _candidate_interpreters(), [abi, 0] if abi else [0], canary)
    finally:
        os.unlink(canary)


def detect_with(base: str, launcher: str, cands: list[str], lls: list[int], canary: str) -> Config:
    """The first configuration that passes its probe: as root, the best of
    :func:`_root_candidates`; otherwise (or if none works) the launcher's own user."""
    notes: list[str] = []
    if os.geteuid() == 0:
        cgroups = _usable_cgroups()
        for cfg in _root_candidates(base, launcher, cands, lls, cgroups):
            if _probe(cfg, canary):
                return dataclasses.replace(cfg, notes=tuple(_root_notes(cfg)))
        notes.append("running programs as root without privilege drop or namespaces: RLIMIT_NPROC is "
                     "ignored by root and a program can write wherever root can")
    else:
        cgroups = ()
        notes.append("not root: no privilege drop, namespaces or cgroup; RLIMIT_NPROC counts all of this "
                     "user's processes; a setsid daemon with a scrubbed environment could escape cleanup")
    visible = visible_paths(launcher)
    for ll in lls:
        cfg = Config(launcher, launcher, False, False, cgroups, base, (), ll, visible)
        if ll == 0 or _probe(cfg, canary):
            notes.append(LANDLOCK_ONLY if ll else HOST_VISIBLE)
            return dataclasses.replace(cfg, notes=tuple(notes))
    raise AssertionError("unreachable")  # pragma: no cover - lls always ends with 0


def _usable_cgroups() -> tuple[tuple[str, str], ...]:
    """The cgroup controllers where a run's cgroup can really be made."""
    probe_name = f"scorelib-sandbox-probe-{os.getpid()}"
    usable = []
    for kind, parent in cg.parent_dirs():
        made = cg.create([(kind, parent)], probe_name, 1 << 30, 64)
        if made:
            usable.append((kind, parent))
            cg.remove(made)
    return tuple(usable)


def _root_candidates(base, launcher, cands, lls, cgroups):
    """The configurations to try as root, best first (generated lazily)."""
    for drop, ns in [(True, True), (True, False), (False, True)]:
        for exe in cands if drop else [launcher]:
            if drop and not _others_can_run(exe):
                continue  # (the new root would make a private home traversable: keep to what the host allows)
            visible = visible_paths(exe)
            for ll in lls:
                for bwrap in bwrap_choices() if ns else [""]:
                    yield Config(exe, launcher, drop, ns, cgroups, base, (), ll, visible, bwrap)


def bwrap_choices() -> list[str]:
    """Who makes the namespaces and the new root, best first: bubblewrap where it is on
    PATH, then the launcher itself (""). SCORELIB_SANDBOX_BACKEND=bwrap or =native forces one."""
    choice = os.environ.get("SCORELIB_SANDBOX_BACKEND", "auto")
    if choice not in ("auto", "bwrap", "native"):
        raise ValueError(f"SCORELIB_SANDBOX_BACKEND={choice!r}: expected auto, bwrap or native")
    bwrap = shutil.which("bwrap") or ""
    if choice == "bwrap" and not bwrap:
        raise RuntimeError("SCORELIB_SANDBOX_BACKEND=bwrap, but bwrap is not on PATH (apt-get install bubblewrap)")
    if choice == "native" or not bwrap:
        return [""]
    return [bwrap] if choice == "bwrap" else [bwrap, ""]


def _root_notes(cfg: Config) -> list[str]:
    """What a working root configuration lacks, in words."""
    notes = []
    if cfg.drop and os.path.realpath(cfg.python) != os.path.realpath(sys.executable):
        notes.append(f"{sys.executable} is not executable by an unprivileged uid; "
                     f"programs run with {cfg.python} (standard library only)")
    if not cfg.drop:
        notes.append("no interpreter is executable by an unprivileged uid: programs run as "
                     "root inside read-only namespaces (RLIMIT_NPROC is ignored by root, "
                     "and root could undo the mounts that hide the host)")
    if not cfg.namespaces:
        notes.append("namespaces unavailable: the network is reachable"
                     + ("" if cfg.landlock else ", world-writable directories are writable "
                        "(cleaned afterwards)"))
        notes.append(LANDLOCK_ONLY if cfg.landlock else HOST_VISIBLE)
    if not cfg.cgroups:
        notes.append("no cgroup: memory is limited per process only (RLIMIT_AS)")
    return notes


_PROBE = """
import os, sys
print("uid", os.getuid(), os.geteuid())
print("rootfs_readonly", bool(os.statvfs("/").f_flag & os.ST_RDONLY))
print("pid", os.getpid())
try:
    with open(CANARY) as f:
        print("canary", f.read())
except OSError:
    print("canary", "hidden")
"""


def _probe(cfg: Config, canary: str) -> bool:
    """Does `cfg` work with every layer it claims in force? `canary` is a world-readable
    host file that the program must not be able to read where the host is to be hidden."""
    try:
        r = run(_PROBE.replace("CANARY", repr(canary)), cfg, timeout_s=10.0, memory_mb=512,
                max_output_bytes=4096, max_file_mb=1, max_processes=8, guard=False)
    except (OSError, subprocess.SubprocessError):
        return False
    if not r.passed:
        return False
    lines = dict(line.split(" ", 1) for line in r.stdout.splitlines() if " " in line)
    uids = lines.get("uid", "").split()
    if cfg.drop and (len(uids) != 2 or "0" in uids):
        return False
    if cfg.namespaces and (lines.get("rootfs_readonly") != "True" or lines.get("pid") != "2"):
        return False
    if cfg.host_hidden and lines.get("canary") != "hidden":
        return False
    return True


def landlock_abi() -> int:
    """The kernel's Landlock ABI version (0: no Landlock, or SCORELIB_SANDBOX_LANDLOCK=0)."""
    if os.environ.get("SCORELIB_SANDBOX_LANDLOCK", "1") == "0" or not sys.platform.startswith("linux"):
        return 0
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.syscall.restype = ctypes.c_long
        return max(0, int(libc.syscall(444, None, 0, 1)))  # landlock_create_ruleset(.., VERSION)
    except (OSError, AttributeError):
        return 0


def _world_traversable(path: str) -> bool:
    path = os.path.realpath(path)
    while True:
        try:
            if not os.stat(path).st_mode & stat.S_IXOTH:
                return False
        except OSError:
            return False
        parent = os.path.dirname(path)
        if parent == path:
            return True
        path = parent


def _others_can_run(exe: str) -> bool:
    real = os.path.realpath(exe)
    try:
        return bool(os.stat(real).st_mode & stat.S_IXOTH) and _world_traversable(os.path.dirname(real))
    except OSError:
        return False


def _candidate_interpreters() -> list[str]:
    ver = f"{sys.version_info[0]}.{sys.version_info[1]}"
    cands = [sys.executable, os.path.realpath(sys.executable or "/"), getattr(sys, "_base_executable", "")]
    cands += [os.path.join(d, f"python{ver}") for d in ("/usr/bin", "/usr/local/bin", "/bin")]
    cands += [os.path.join(d, "python3") for d in ("/usr/bin", "/usr/local/bin", "/bin")]
    out: list[str] = []
    for c in cands:
        if c and os.path.isfile(c) and os.access(c, os.X_OK) and c not in out:
            out.append(c)
    return out
