"""The launcher: the process between the parent and the program's interpreter.

The parent (:mod:`scorelib.sandbox.runner`) does not import this module to use it: it
reads this file's source once and runs it as ``python -I -S -c <this source> <spec>``,
as the parent's user (root, normally), with ``argv[1]`` the ``repr()`` of a spec dict
of plain data (no ``json`` import: start-up time matters here). Passing the source
with ``-c`` means nothing of the project checkout is read, imported or on
``sys.path`` once the launcher has switched to the program's new root (where the
checkout does not exist); so this module uses the standard library only, imports
nothing of ``scorelib``, and imports ``resource`` (and ``ctypes``, which brings
``struct``) before the switch. Importing it has no effect (linters, tests).

What it does, in order:

1. join the run's cgroups; ask for SIGKILL when its parent dies;
2. with namespaces: unshare (mount, net, IPC, PID) and fork the PID namespace's init,
   which builds the new root (:func:`make_new_root`) and forks the program's process;
   the init reaps orphans and, when the program's process ends, writes
   ``"S<exit code>"`` to the status pipe and exits (the kernel then kills whatever
   is left in the namespace). With the bubblewrap backend, the launcher instead execs
   ``bwrap``, which makes the namespaces and the new root and runs this launcher again
   inside, as the namespace's init (:func:`become_init`);
3. in the program's process: chdir to the workdir, ``oom_score_adj`` 1000, a Landlock
   ruleset (:func:`landlock_ruleset`), the rlimits, the privilege drop,
   ``PR_SET_NO_NEW_PRIVS``, ``landlock_restrict_self``, then exec the interpreter
   with the bootstrap (:mod:`scorelib.sandbox.bootstrap`).

Any failure before that exec writes ``"E<message>"`` to the status pipe.
"""
import os
import sys

_CLONE_FLAGS = 0x00020000 | 0x40000000 | 0x08000000 | 0x20000000  # NEWNS NEWNET NEWIPC NEWPID


def main():
    spec = eval(sys.argv[1], {"__builtins__": {}})  # a repr() of plain data, written by the parent
    sfd = spec["status_fd"]
    try:
        libc = load_libc()
        import resource  # now: after the switch of root, the launcher's own library may be gone
        for path in spec["cgroups"]:
            with open(path, "w") as f:
                f.write(str(os.getpid()))
        pdeathsig(libc)
        if spec.get("bwrap"):  # bwrap makes the namespaces and the new root, then runs this launcher again
            os.umask(0o022)  # the uid must traverse the directories bwrap makes (become_init restores 077)
            os.execv(spec["bwrap"][0], spec["bwrap"])  # (the status and program fds stay open across)
        os.set_inheritable(sfd, False)
        if spec["ns"]:
            enter_namespaces(libc, spec)  # returns in the program's process only
        elif spec.get("init"):
            become_init(libc, spec)  # inside bwrap: returns in the program's process only
        exec_program(libc, resource, spec)
    except BaseException as e:
        try:
            os.write(sfd, ("E%s: %s" % (type(e).__name__, e)).encode("utf-8", "replace")[:4000])
        finally:
            os._exit(125)


def load_libc():
    """libc through ctypes with the prototypes used here, or None without ctypes."""
    try:
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
        libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
        libc.unshare.argtypes = [ctypes.c_int]
        libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
        libc.syscall.restype = ctypes.c_long
        return libc
    except (ImportError, OSError, AttributeError):
        return None


def check(rc, what):
    """Raise OSError (with errno) if a libc call returned non-zero."""
    if rc != 0:
        import ctypes
        e = ctypes.get_errno()
        raise OSError(e, what + ": " + os.strerror(e))


def pdeathsig(libc):
    if libc is not None:
        libc.prctl(1, 9, 0, 0, 0)  # PR_SET_PDEATHSIG, SIGKILL


def detach_stdio(spec):
    """For the processes that only wait: let go of the pipes and the program's fd."""
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    os.close(spec["program_fd"])


def enter_namespaces(libc, spec):
    """Unshare and fork twice; only the program's process returns (PID 2 of the namespace)."""
    if libc is None:
        raise OSError("no libc for unshare")
    check(libc.unshare(_CLONE_FLAGS), "unshare")
    init = os.fork()
    if init:  # the launcher itself: wait for the init, so that the parent sees one process end
        detach_stdio(spec)
        while True:
            try:
                os.waitpid(init, 0)
                break
            except InterruptedError:
                continue
            except ChildProcessError:
                break
        os._exit(0)
    pdeathsig(libc)
    make_new_root(libc, spec)
    child = os.fork()
    if child:
        run_init(child, spec)


def become_init(libc, spec):
    """Inside bwrap (PID 1 of its namespace, root in a new root that bwrap made read-only):
    a /proc that shows each uid only its own processes, the workdir's owner; then fork."""
    if libc is None:
        raise OSError("no libc for mount")
    if libc.mount(b"proc", b"/proc", b"proc", 2 | 4 | 8, b"hidepid=2") != 0:
        check(libc.mount(b"proc", b"/proc", b"proc", 2 | 4 | 8, None), "mount /proc")
    if spec["uid"] is not None:
        os.chown(spec["workdir"], spec["uid"], spec["uid"])
    os.umask(0o077)
    os.environ.pop("PWD", None)  # bwrap sets it; the program's environment is the parent's, nothing more
    child = os.fork()
    if child:
        run_init(child, spec)


def run_init(child, spec):
    """PID 1 of the namespace: reap every process; report the program's exit code, then exit."""
    detach_stdio(spec)
    while True:
        try:
            pid, status = os.wait()
        except InterruptedError:
            continue
        except ChildProcessError:
            os._exit(0)
        if pid == child:
            os.write(spec["status_fd"], b"S%d" % os.waitstatus_to_exitcode(status))
            os._exit(0)


def exec_program(libc, resource, spec):
    """Limits, privilege drop, Landlock, then exec the interpreter with the bootstrap."""
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
        ruleset = landlock_ruleset(libc, spec)
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
        pdeathsig(libc)  # setuid cleared it
    if ruleset is not None:
        if libc.syscall(446, ruleset, 0) != 0:  # landlock_restrict_self (needs NO_NEW_PRIVS)
            import ctypes
            raise OSError(ctypes.get_errno(), "landlock_restrict_self")
        os.close(ruleset)
    python = spec["python"]
    os.execve(python, [python, "-I", "-c", spec["bootstrap"]], os.environ)


def mkdirs(path):
    try:
        os.makedirs(path, 0o755, exist_ok=True)
    except FileExistsError:
        pass


def make_new_root(libc, spec):
    """Build the program's root on the run's (empty) host directory and switch to it."""
    # never let a mount made here propagate back to the parent's namespace
    check(libc.mount(None, b"/", None, 16384 | (1 << 18), None), "make / rprivate")  # MS_REC|MS_PRIVATE
    root = spec["workdir"]
    umask = os.umask(0o022)  # the launcher runs with 077: the uid must traverse what is made here
    # a small tmpfs holding only read-only binds of what the interpreter needs
    check(libc.mount(b"tmpfs", os.fsencode(root), b"tmpfs", 2 | 4, b"size=1m,mode=0755"), "mount new root")
    for kind, path, target in spec["binds"]:
        bind_read_only(libc, root, kind, path, target)
    # a /proc that shows only this PID namespace (and, with hidepid, only the program's own uid)
    mkdirs(root + "/proc")
    if libc.mount(b"proc", os.fsencode(root + "/proc"), b"proc", 2 | 4 | 8, b"hidepid=2") != 0:
        check(libc.mount(b"proc", os.fsencode(root + "/proc"), b"proc", 2 | 4 | 8, None), "mount /proc")
    # the working directory: a fresh, size-limited tmpfs at the same path as on the host
    work = root + root
    mkdirs(work)
    owner = b"" if spec["uid"] is None else b",uid=%d,gid=%d" % (spec["uid"], spec["uid"])
    data = b"size=%d,mode=0700%s" % (spec["disk_bytes"], owner)
    check(libc.mount(b"tmpfs", os.fsencode(work), b"tmpfs", 2 | 4, data), "mount tmpfs")  # nosuid,nodev
    os.umask(umask)
    check(libc.mount(None, os.fsencode(root), None, 32 | 1 | 2 | 4, None), "new root read-only")
    switch_root(libc, root, spec["pivot_nr"])


def bind_read_only(libc, root, kind, path, target):
    """Recreate `path` under `root`: a symlink, or a read-only bind of a dir, file or device."""
    dst = root + path
    if kind == "symlink":
        mkdirs(os.path.dirname(dst))
        os.symlink(target, dst)
        return
    if kind == "dir":
        mkdirs(dst)
    else:
        mkdirs(os.path.dirname(dst))
        os.close(os.open(dst, os.O_WRONLY | os.O_CREAT, 0o644))
    check(libc.mount(os.fsencode(path), os.fsencode(dst), None, 4096, None), "bind " + path)  # MS_BIND
    flags = 32 | 4096 | 1 | 2  # MS_REMOUNT|MS_BIND|MS_RDONLY|MS_NOSUID
    flags |= 0 if kind == "dev" else 4  # MS_NODEV
    flags |= 8 if kind in ("dev", "file") else 0  # MS_NOEXEC
    check(libc.mount(None, os.fsencode(dst), None, flags, None), "read-only " + path)


def switch_root(libc, root, pivot_nr):
    """Make `root` the root: the host's tree is detached (pivot_root) or shadowed (MS_MOVE + chroot)."""
    os.chdir(root)
    if pivot_nr and libc.syscall(pivot_nr, b".", b".") == 0:  # pivot_root(".", ".")
        check(libc.umount2(b".", 2), "detach the old root")  # MNT_DETACH: the old root was stacked on "."
    else:  # no pivot_root here (e.g. an initramfs root): move the new root over "/" and chroot
        check(libc.mount(b".", b"/", None, 8192, None), "move new root")  # MS_MOVE
        os.chroot(".")
    os.chdir("/")


def landlock_ruleset(libc, spec):
    """A Landlock ruleset fd for the program (opened as root: every path can be opened)."""
    import ctypes
    import struct
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


if __name__ == "__main__":
    main()
