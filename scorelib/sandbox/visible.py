"""What a program may see: the paths of its new root (or of its Landlock rules).

The new root is a read-only tmpfs holding read-only binds of the system's programs and
shared libraries (``/usr``; ``/bin``, ``/lib``... as the links or directories they are on
the host), the interpreter's installation when it lies elsewhere (its prefixes: a
virtualenv and its base), ``/etc/ld.so.cache`` and a few devices; the launcher adds
``/proc`` of the run and the workdir. :func:`visible_paths` lists them as
``(kind, path, symlink target)``; :func:`scorelib.sandbox.sandbox_info` reports them.
"""
from __future__ import annotations

import os
import subprocess

#: the operating system's programs and shared libraries, read-only (a symlink such as
#: /lib -> usr/lib on a merged-/usr system is recreated as a symlink)
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
#: single files: the dynamic linker's cache (start-up time)
SYSTEM_FILES = ("/etc/ld.so.cache",)
#: the character devices a program may open (read-write, not executable)
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom")
DEV_LINKS = (("/dev/fd", "/proc/self/fd"), ("/dev/stdin", "/proc/self/fd/0"),
             ("/dev/stdout", "/proc/self/fd/1"), ("/dev/stderr", "/proc/self/fd/2"))


def python_dirs(python: str) -> list[str]:
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


def visible_paths(python: str) -> tuple[tuple[str, str, str], ...]:
    """What a program run by `python` may see: (kind, path, symlink target), kind one of
    "dir" / "file" (read-only), "dev" (a device, read-write) or "symlink"."""
    out: list[tuple[str, str, str]] = []
    dirs: list[str] = []

    def covered(path: str) -> bool:
        return any(path == d or path.startswith(d.rstrip("/") + "/") for d in dirs)

    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            out.append(("symlink", d, os.readlink(d)))
        elif os.path.isdir(d):
            out.append(("dir", d, ""))
            dirs.append(d)
    for d in python_dirs(python):
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
    out += [("file", f, "") for f in SYSTEM_FILES if os.path.isfile(f)]
    out += [("dev", f, "") for f in DEVICES if os.path.exists(f)]
    out += [("symlink", link, target) for link, target in DEV_LINKS]
    return tuple(out)
