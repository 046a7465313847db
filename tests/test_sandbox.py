"""Tests for scorelib.sandbox: ordinary programs, and hostile programs that must be
contained (scored as failures, with the test process, its files and the machine
unharmed, and no process left behind).

Every hostile program is written so that it would *pass* if the sandbox did not
contain it (e.g. it ends by asserting its attack's effect, or it simply ends
after flooding stdout, exiting early or closing its output), except the daemon
case, whose harm (a process outliving the run) is checked from outside. After
every test an autouse fixture checks that no process of a finished run is alive
and that no working directory is left; the `ctx` fixture checks that the test's
files, a root-owned file in /tmp, the sandbox module itself and a listening
socket were not touched, and that nothing was written outside the sandbox.

Each hostile case runs in three variants: the detected configuration with and
without the in-interpreter guard (the guard is defence in depth; the OS layers
must contain every attack on their own), and, where the sandbox can drop
privileges, the configuration without namespaces (the fallback for kernels that
refuse them). Cases that would be dangerous without a given layer (killing the
parent without a privilege drop, a fork bomb as root without RLIMIT_NPROC) are
skipped where that layer is missing. The non-root fallback (no privilege drop,
namespaces or cgroup) is exercised by running the module as `nobody`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import secrets
import shutil
import socket
import stat
import sysconfig
import tempfile
import time
from pathlib import Path

import pytest

from scorelib import sandbox
from scorelib.sandbox import ENV_MARKER, ExecResult, run_many, run_python, sandbox_info

INFO = sandbox_info()
SANDBOX_MODULE = Path(sandbox.__file__).resolve()  # the package's __init__.py (it defines run_python)
REPO = SANDBOX_MODULE.parents[2]  # scorelib/sandbox/__init__.py -> the checkout
LOOP_TIMEOUT_S = 0.5  # for programs that never end
TIMEOUT_SLACK_S = 1.5  # run_python must return within timeout_s + this (loaded machine)


# ------------------------------------------------------------------------------------------
# Helpers and fixtures
# ------------------------------------------------------------------------------------------

def uid_lease_free(uid: int) -> bool:
    """No run (of any process on the machine) holds this sandbox uid right now."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.bind(b"\0scorelib-sandbox-uid-%d" % uid)
        return True
    except OSError:
        return False
    finally:
        s.close()


def live_sandbox_processes() -> list[str]:
    """Live (non-zombie) processes left behind by a finished sandbox run: processes of a
    sandbox uid that no run holds, or orphaned / un-reaped processes carrying the
    sandbox marker. (Runs of other processes on the machine are not counted.)"""
    lo, hi = sandbox.SANDBOX_UID_BASE, sandbox.SANDBOX_UID_BASE + sandbox.SANDBOX_UID_COUNT - 1
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == os.getpid():
            continue
        try:
            status = Path(f"/proc/{name}/status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        if fields.get("State", "").strip().startswith(("Z", "X")):
            continue
        uids = {int(x) for x in fields.get("Uid", "").split()}
        ppid = int(fields.get("PPid", "0").strip() or 0)
        marked = False
        try:
            marked = (ENV_MARKER + "=").encode() in Path(f"/proc/{name}/environ").read_bytes()
        except OSError:
            pass
        leaked_uid = any(lo <= u <= hi and uid_lease_free(u) for u in uids)
        if leaked_uid or (marked and ppid in (1, os.getpid())):
            found.append(f"{name} {fields.get('Name', '').strip()} uids={sorted(uids)} ppid={ppid}")
    return found


def workdirs() -> set[str]:
    base = INFO["workdir_base"]
    return {n for n in os.listdir(base) if n.startswith("scorelib-sandbox-")}


@pytest.fixture(autouse=True)
def nothing_left_behind():
    before = workdirs()
    yield
    deadline = time.monotonic() + 2.0
    left = live_sandbox_processes()
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = live_sandbox_processes()
    assert not left, f"sandbox processes left behind: {left}"
    assert not (workdirs() - before), "sandbox working directories left behind"


# The sandbox modes exercised: the detected configuration (with and without the guard),
# and, where the machine has the layers to take away, the fallbacks for kernels that
# refuse them: no namespaces (Landlock alone hides the host), a new root without
# Landlock, and neither (the host's files are visible: read attacks are skipped there,
# and test_read_attacks_are_real_without_hiding shows that they then succeed).
VARIANTS = [pytest.param(("detected", False), id="os-layers-only"),
            pytest.param(("detected", True), id="with-guard")]
if INFO["drop_privileges"] and INFO["namespaces"]:
    VARIANTS.append(pytest.param(("no-namespaces", False), id="no-namespaces"))
if INFO["drop_privileges"] and INFO["namespaces"] and INFO["landlock_abi"]:
    VARIANTS.append(pytest.param(("no-landlock", False), id="namespaces-no-landlock"))
    VARIANTS.append(pytest.param(("bare", False), id="no-namespaces-no-landlock"))
# Who makes the namespaces and the new root: the launcher itself ("native"), or bubblewrap
# where it is installed (the default there). Both run every attack where namespaces work.
BWRAP = shutil.which("bwrap") or ""
if INFO["namespaces"]:
    VARIANTS.append(pytest.param(("native", False), id="native-backend"))
    VARIANTS.append(pytest.param(("bwrap", False), id="bwrap-backend", marks=pytest.mark.skipif(
        not BWRAP, reason="bubblewrap is not installed (apt-get install bubblewrap): bwrap backend not tested")))
CONFIGS = {"no-namespaces": {"namespaces": False}, "no-landlock": {"landlock": 0, "bwrap": ""},
           "bare": {"namespaces": False, "landlock": 0}, "native": {"bwrap": ""}, "bwrap": {"bwrap": BWRAP}}


def use_config(monkeypatch, name: str) -> None:
    if name in CONFIGS:
        monkeypatch.setattr(sandbox, "_CONFIG", dataclasses.replace(sandbox._config(), **CONFIGS[name]))


@pytest.fixture(params=VARIANTS)
def variant(request, monkeypatch):
    config, guard = request.param
    use_config(monkeypatch, config)
    cfg = sandbox._config()
    return {"guard": guard, "namespaces": cfg.namespaces, "drop": cfg.drop, "cgroups": bool(cfg.cgroups),
            "nproc": cfg.drop or os.geteuid() != 0, "hide": cfg.namespaces or bool(cfg.landlock)}


def file_state(p: Path) -> tuple[str, int]:
    return hashlib.sha256(p.read_bytes()).hexdigest(), stat.S_IMODE(p.stat().st_mode)


def package_state() -> dict[str, tuple[str, int]]:
    """file_state of every module of the sandbox package (the launcher's source included)."""
    return {p.name: file_state(p) for p in sorted(SANDBOX_MODULE.parent.glob("*.py"))}


@pytest.fixture
def ctx(tmp_path, monkeypatch):
    """Paths and secrets the hostile programs attack; checked afterwards."""
    tag = secrets.token_hex(6)
    secret = "s3cr3t-" + secrets.token_hex(8)
    monkeypatch.setenv("SCORELIB_TEST_SECRET", secret)
    sentinel = tmp_path / "sentinel.txt"
    sentinel.write_text("keep me")
    sentinel_dir = tmp_path / "sentinel_dir"
    sentinel_dir.mkdir()
    (sentinel_dir / "inner.txt").write_text("keep me too")
    tmp_sentinel = Path(tempfile.gettempdir()) / f"scorelib-test-sentinel-{tag}"
    tmp_sentinel.write_text("keep me")
    tmp_sentinel.chmod(0o644)  # in world-writable /tmp: ownership, mode and the sticky bit protect it
    purelib = Path(sysconfig.get_paths()["purelib"])
    private_targets = [tmp_path / "evil.txt", Path.home() / f"scorelib-evil-{tag}",
                       SANDBOX_MODULE.parent / f"scorelib-evil-{tag}.py", purelib / f"scorelib_evil_{tag}.pth",
                       Path("/usr/lib/python3/dist-packages") / f"scorelib_evil_{tag}.pth",
                       Path("/etc") / f"scorelib-evil-{tag}"]
    shared_targets = [Path(d) / f"scorelib-evil-{tag}" for d in ("/tmp", "/var/tmp", "/dev/shm")]
    # host files a program must not read: world-readable, so only hiding the host stops it
    tmp_dir = Path(tempfile.gettempdir())
    tmp_secret = tmp_dir / f"scorelib-test-secret-{tag}.txt"
    home_parent = Path("/home") if os.path.isdir("/home") and os.access("/home", os.W_OK) else tmp_dir
    fake_home = home_parent / f"scorelib-test-home-{tag}"
    fake_project = tmp_dir / f"scorelib-test-project-{tag}"
    (fake_home / ".config").mkdir(parents=True)
    fake_project.mkdir()
    for d in (fake_home, fake_home / ".config", fake_project):
        d.chmod(0o755)
    home_token = fake_home / ".config" / "token"
    dotenv = fake_project / ".env"
    for f, text in ((tmp_secret, secret), (home_token, secret), (dotenv, f"API_TOKEN={secret}\n")):
        f.write_text(text)
        f.chmod(0o644)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    module_state = package_state()
    c = {
        "tag": tag, "secret": secret, "sentinel": str(sentinel), "sentinel_dir": str(sentinel_dir),
        "tmp_sentinel": str(tmp_sentinel), "private_targets": [str(p) for p in private_targets],
        "shared_targets": [str(p) for p in shared_targets], "port": listener.getsockname()[1],
        "test_pid": os.getpid(), "module": str(SANDBOX_MODULE), "purelib": str(purelib),
        "tmp_dir": str(tmp_dir), "tmp_secret": str(tmp_secret), "home_parent": str(home_parent),
        "fake_home": str(fake_home), "home_token": str(home_token), "dotenv": str(dotenv),
        "fake_project": str(fake_project), "repo": str(REPO),
    }
    try:
        yield c
    finally:
        tmp_secret.unlink(missing_ok=True)
        shutil.rmtree(fake_home, ignore_errors=True)
        shutil.rmtree(fake_project, ignore_errors=True)
    listener_got = None
    try:
        listener_got = listener.accept()
    except BlockingIOError:
        pass
    listener.close()
    created = [str(p) for p in private_targets + shared_targets if p.exists() or p.is_symlink()]
    for p in private_targets + shared_targets:  # never leave an attack's file around, even on failure
        if p.exists() or p.is_symlink():
            p.unlink()
    tmp_sentinel_ok = tmp_sentinel.exists() and tmp_sentinel.read_text() == "keep me"
    if tmp_sentinel.exists():
        tmp_sentinel.unlink()
    assert listener_got is None, "a sandboxed program connected to the test's socket"
    assert not created, f"files written outside the sandbox: {created}"
    assert sentinel.read_text() == "keep me", "a file in the test's tmp_path was changed"
    assert (sentinel_dir / "inner.txt").read_text() == "keep me too"
    assert tmp_sentinel_ok, "a root-owned file in /tmp was deleted or changed"
    assert package_state() == module_state, "the sandbox package was modified"


def run_hostile(program: str, variant: dict, **kw) -> ExecResult:
    kw.setdefault("timeout_s", 2.0)
    start = time.monotonic()
    r = run_python(program, guard=variant["guard"], **kw)
    elapsed = time.monotonic() - start
    assert elapsed <= kw["timeout_s"] + TIMEOUT_SLACK_S, f"took {elapsed:.1f}s: {r.reason}"
    assert not r.passed, f"hostile program passed: {r.reason}\nstdout={r.stdout[-500:]}\nstderr={r.stderr[-500:]}"
    assert not r.reason.startswith("sandbox error"), r.reason
    assert "could not be killed" not in r.reason, r.reason
    return r


# ------------------------------------------------------------------------------------------
# Ordinary programs
# ------------------------------------------------------------------------------------------

def test_passing_program_output_is_exact():
    r = run_python("print('hello')\nprint('wörld', end='')")
    assert r.passed and r.reason == "passed" and r.returncode == 0
    assert r.stdout == "hello\nwörld"  # the sentinel is removed, nothing else
    assert r.stderr == ""
    assert r.seconds < 5


def test_failing_assertion():
    r = run_python("def f(x):\n    return x + 1\n\nassert f(1) == 3, 'wrong'\n")
    assert not r.passed and r.reason == "failed: AssertionError: wrong" and r.returncode == 1
    assert "assert f(1) == 3" in r.stderr  # tracebacks show the program's source lines


def test_exception_and_syntax_error():
    r = run_python("raise ValueError('bad value')")
    assert not r.passed and r.reason == "failed: ValueError: bad value"
    r = run_python("def f(:\n    pass\n")
    assert not r.passed and r.reason.startswith("failed: SyntaxError")


def test_nonzero_exit_without_message():
    r = run_python("import os\nos._exit(3)")
    assert not r.passed and r.returncode == 3 and r.reason == "failed: exit code 3"


def test_timeout_is_enforced():
    start = time.monotonic()
    r = run_python("import time\ntime.sleep(30)", timeout_s=0.5)
    assert not r.passed and r.reason == "timeout"
    assert time.monotonic() - start < 0.5 + TIMEOUT_SLACK_S


def test_main_module_semantics():
    program = (
        "import dataclasses, typing, pickle\n"
        "@dataclasses.dataclass\n"
        "class P:\n    x: 'int'\n    y: int = 2\n"
        "assert typing.get_type_hints(P) == {'x': int, 'y': int}\n"
        "assert pickle.loads(pickle.dumps(P(1))) == P(1)\n"
        "if __name__ == '__main__':\n    print('main')\n"
    )
    r = run_python(program)
    assert r.passed, r.stderr
    assert r.stdout == "main\n"


def test_environment_is_fresh_and_minimal(monkeypatch):
    monkeypatch.setenv("SCORELIB_TEST_SECRET", "do-not-leak")
    program = (
        "import os, sys, tempfile\n"
        "cwd = os.getcwd()\n"
        "assert os.listdir(cwd) == [], os.listdir(cwd)\n"
        "assert os.environ['HOME'] == cwd and os.environ['TMPDIR'] == cwd\n"
        "assert tempfile.gettempdir() == cwd\n"
        "open('scratch.txt', 'w').write('ok')\n"
        "assert open('scratch.txt').read() == 'ok'\n"
        "assert sys.stdin.read() == ''\n"
        "print(sorted(os.environ))\n"
    )
    r = run_python(program)
    assert r.passed, r.stderr
    names = set(eval(r.stdout))
    assert "SCORELIB_TEST_SECRET" not in names
    assert names <= {"PATH", "LANG", "LC_ALL", "PYTHONHASHSEED", "PYTHONDONTWRITEBYTECODE", "HOME", "TMPDIR",
                     "OMP_NUM_THREADS", "MALLOC_ARENA_MAX", ENV_MARKER, "LC_CTYPE"}


def test_each_run_gets_a_new_directory():
    rs = run_many(["import os\nprint(os.getcwd())\nopen('x', 'w').write('1')"] * 2, workers=1)
    assert all(r.passed for r in rs)
    assert rs[0].stdout != rs[1].stdout
    r = run_python("import os\nassert os.listdir('.') == []")
    assert r.passed


def test_input_reads_dev_null():
    r = run_python("input()")
    assert not r.passed and r.reason.startswith("failed: EOFError")


@pytest.mark.skipif(not INFO["drop_privileges"], reason="no privilege drop on this machine")
def test_runs_as_unprivileged_user():
    r = run_python("import os\nprint(os.getuid(), os.geteuid(), os.getgid(), os.getgroups())")
    assert r.passed, r.stderr
    uid, euid, gid, groups = r.stdout.split(" ", 3)
    lo, hi = INFO["uid_range"]
    assert lo <= int(uid) <= hi and uid == euid == gid
    assert groups.strip() == "[]"


def test_output_cap():
    r = run_python("print('x' * 1000)", max_output_bytes=100)
    assert not r.passed and r.reason == "output limit"
    assert len(r.stdout) <= 100
    r = run_python("print('x' * 99)", max_output_bytes=100)  # exactly the cap (with the newline)
    assert r.passed and r.stdout == "x" * 99 + "\n"
    r = run_python("print('x' * 100)", max_output_bytes=100)
    assert not r.passed and r.reason == "output limit"
    r = run_python("import sys\nsys.stderr.write('e' * 101)", max_output_bytes=100)
    assert not r.passed and r.reason == "output limit"


def test_run_many_preserves_order_and_runs_in_parallel():
    programs = [f"import time\ntime.sleep(0.3)\nprint({i})" for i in range(4)]
    programs.insert(2, "assert False")
    start = time.monotonic()
    rs = run_many(programs, workers=2)
    elapsed = time.monotonic() - start
    assert [r.passed for r in rs] == [True, True, False, True, True]
    assert [r.stdout.strip() for r in rs if r.passed] == ["0", "1", "2", "3"]
    assert elapsed < 4 * 0.3 + 1.5  # two at a time, not one after the other
    assert run_many([]) == []


def test_never_raises_on_bad_input():
    r = run_python(None)  # type: ignore[arg-type]
    assert not r.passed and r.reason.startswith("sandbox error")
    r = run_python("\udcff = 1")  # a lone surrogate
    assert not r.passed


def test_sandbox_info_reports_layers():
    assert set(INFO) >= {"python", "drop_privileges", "namespaces", "cgroups", "nproc_limit_effective", "notes"}
    system_python = "/usr/bin/python3"
    if os.geteuid() == 0 and os.path.exists(system_python) and os.stat(system_python).st_mode & stat.S_IXOTH:
        # a world-executable interpreter exists, so the privilege drop must work
        assert INFO["drop_privileges"], f"running as root without privilege drop: {INFO['notes']}"


def test_guard_blocks_process_and_network_functions():
    program = (
        "import os, subprocess, socket\n"
        "blocked = 0\n"
        "for f in (lambda: os.fork(), lambda: os.system('true'), lambda: subprocess.run(['true']),\n"
        "          lambda: socket.socket(), lambda: os.kill(os.getpid(), 0)):\n"
        "    try:\n        f()\n    except PermissionError:\n        blocked += 1\n"
        "print(blocked)\n"
    )
    r = run_python(program, guard=True)
    assert r.passed, r.stderr
    assert r.stdout.strip() == "5"
    r = run_python("import subprocess\nprint(subprocess.run(['true']).returncode)", guard=False)
    assert r.passed and r.stdout.strip() == "0", r.stderr  # without the guard, only the OS limits apply


# ------------------------------------------------------------------------------------------
# Hostile programs
# ------------------------------------------------------------------------------------------

def p_infinite_loop(c):
    return "while True:\n    pass\n"


def p_ignore_signals(c):
    return ("import signal\n"
            "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGXCPU, signal.SIGALRM,\n"
            "          signal.SIGUSR1, signal.SIGQUIT):\n"
            "    signal.signal(s, signal.SIG_IGN)\n"
            "while True:\n    pass\n")


def p_fork_bomb(c):
    return ("import os\n"
            "while True:\n"
            "    try:\n        os.fork()\n    except OSError:\n        pass\n")


def p_memory_bomb(c):
    return "x = bytearray(10 * 2**30)\nassert len(x) == 10 * 2**30\n"


def p_memory_growth(c):
    return "chunks = []\nwhile len(chunks) < 100:\n    chunks.append(b'x' * (100 * 2**20))\nassert len(chunks) == 100\n"


def p_fork_memory_bomb(c):  # each process stays under RLIMIT_AS; together they exceed the cgroup limit
    return ("import os, time\n"
            "kids = []\n"
            "for i in range(6):\n"
            "    pid = os.fork()\n"
            "    if pid == 0:\n"
            "        x = b'x' * (200 * 2**20)\n"
            "        time.sleep(0.5)\n"
            "        os._exit(0)\n"
            "    kids.append(pid)\n"
            "x = b'x' * (200 * 2**20)\n"
            "assert all(os.waitpid(k, 0)[1] == 0 for k in kids)\n")


def p_delete_outside(c):
    return (f"import os, shutil\n"
            f"deleted = []\n"
            f"for t in [{c['sentinel']!r}, {c['tmp_sentinel']!r}, {c['module']!r}]:\n"
            f"    for remove in (os.remove, os.unlink):\n"
            f"        try:\n            remove(t)\n            deleted.append(t)\n        except Exception:\n            pass\n"
            f"try:\n    shutil.rmtree({c['sentinel_dir']!r})\n    deleted.append('dir')\nexcept Exception:\n    pass\n"
            f"assert deleted, 'nothing deleted'\n")


def p_overwrite_outside(c):
    return (f"done = []\n"
            f"for t in [{c['sentinel']!r}, {c['tmp_sentinel']!r}]:\n"
            f"    try:\n        open(t, 'w').write('pwned')\n        done.append(t)\n    except Exception:\n        pass\n"
            f"assert done\n")


def p_write_private(c):
    return (f"made = []\n"
            f"for t in {c['private_targets']!r}:\n"
            f"    try:\n        open(t, 'w').write('import os')\n        made.append(t)\n    except Exception:\n        pass\n"
            f"assert made, 'nothing written'\n")


def p_write_shared(c):  # world-writable directories: only the read-only mount namespace stops this
    return (f"made = []\n"
            f"for t in {c['shared_targets']!r}:\n"
            f"    try:\n        open(t, 'w').write('x')\n        made.append(t)\n    except Exception:\n        pass\n"
            f"assert made, 'nothing written'\n")


def p_huge_file(c):
    return ("with open('big.bin', 'wb') as f:\n"
            "    for _ in range(200):\n        f.write(b'x' * 2**20)\n"
            "import os\nassert os.path.getsize('big.bin') == 200 * 2**20\n")


def p_many_files(c):  # each file under RLIMIT_FSIZE, together 320 MiB: the tmpfs size stops it
    return ("for i in range(32):\n"
            "    with open(f'f{i}.bin', 'wb') as f:\n        f.write(b'x' * (10 * 2**20))\n")


def p_socket(c):
    return (f"import socket\n"
            f"s = socket.create_connection(('127.0.0.1', {c['port']}), timeout=1)\n"
            f"s.sendall(b'hello')\n")


def p_raw_socket_ctypes(c):  # bypasses the guard's socket module patch
    return (f"import ctypes, struct\n"
            f"libc = ctypes.CDLL(None, use_errno=True)\n"
            f"fd = libc.socket(2, 1, 0)\n"
            f"assert fd >= 0, ctypes.get_errno()\n"
            f"addr = struct.pack('<HH4s8x', 2, __import__('socket').htons({c['port']}), bytes([127, 0, 0, 1]))\n"
            f"rc = libc.connect(fd, addr, len(addr))\n"
            f"assert rc == 0, 'connect failed: errno %d' % ctypes.get_errno()\n")


def p_os_exit_early(c):
    return ("def add(a, b):\n    return a - b\n"
            "import os\nos._exit(0)\n"
            "assert add(1, 2) == 3\n")


def p_sys_exit_early(c):
    return ("def add(a, b):\n    return a - b\n"
            "import sys\nsys.exit(0)\n"
            "assert add(1, 2) == 3\n")


def p_exit_builtin_early(c):
    return ("def add(a, b):\n    return a - b\n"
            "exit()\n"
            "assert add(1, 2) == 3\n")


def p_exit_via_atexit(c):  # ends "normally" but its atexit handler fakes success
    return ("import atexit, os\n"
            "atexit.register(lambda: os._exit(0))\n"
            "raise AssertionError('tests failed')\n")


def p_monkeypatch_builtins(c):
    return ("import builtins, os, sys\n"
            "builtins.print = lambda *a, **k: None\n"
            "builtins.AssertionError = type('Nope', (Exception,), {})\n"
            "os.write = lambda fd, data: len(data)\n"
            "sys.stdout.write('passed\\n')\n")


def p_close_stdout(c):
    return "import os\nos.close(1)\nos.close(2)\n"


PARENT_GONE = ("def parent_gone():\n"
               "    try:\n        os.kill(os.getppid(), 0)\n    except ProcessLookupError:\n        return True\n"
               "    except PermissionError:\n        return False\n"
               "    return False\n")


def p_kill_parent(c):
    return (f"import os, signal\n{PARENT_GONE}"
            f"for pid in (os.getppid(), {c['test_pid']}):\n"
            f"    try:\n        os.kill(pid, signal.SIGKILL)\n    except Exception:\n        pass\n"
            f"assert parent_gone()\n")


def p_kill_parent_group(c):
    return (f"import os, signal\n{PARENT_GONE}"
            f"for pid in (os.getppid(), {c['test_pid']}):\n"
            f"    try:\n        os.killpg(os.getpgid(pid), signal.SIGKILL)\n    except Exception:\n        pass\n"
            f"assert parent_gone()\n")


def p_kill_everything(c):
    return (f"import os, signal\n{PARENT_GONE}"
            f"try:\n    os.kill(-1, signal.SIGKILL)\nexcept Exception:\n    pass\n"
            f"assert parent_gone()\n")


def p_kill_own_group(c):
    return "import os, signal\nos.killpg(os.getpgid(0), signal.SIGKILL)\nprint('survived')\n"


def p_stop_self(c):
    return "import os, signal\nos.kill(os.getpid(), signal.SIGSTOP)\n"


def p_deep_recursion(c):  # recursion through C (repr -> __repr__): overflows the C stack
    return ("import sys\nsys.setrecursionlimit(10**9)\n"
            "class Deep:\n    def __repr__(self):\n        return repr(self)\n"
            "assert repr(Deep())\n")


def p_deep_python_recursion(c):  # pure-Python frames live on the heap in 3.11: memory or time runs out
    return ("import sys\nsys.setrecursionlimit(10**9)\n"
            "def f(n):\n    return f(n + 1) + 1\n"
            "assert f(0)\n")


def p_ctypes_segfault(c):
    return "import ctypes\nctypes.string_at(0)\n"


def p_huge_stdout(c):
    return "import sys\nchunk = 'x' * 2**20\nfor _ in range(100):\n    sys.stdout.write(chunk)\n"


def p_huge_stderr(c):
    return "import sys\nchunk = 'x' * 2**20\nfor _ in range(100):\n    sys.stderr.write(chunk)\n"


def p_env_secret(c):
    return f"import os\nassert os.environ.get('SCORELIB_TEST_SECRET') == {c['secret']!r}\n"


def p_proc_environ_secret(c):
    return (f"import os\n"
            f"found = False\n"
            f"for pid in ('1', str(os.getppid()), {str(c['test_pid'])!r}, 'self'):\n"
            f"    try:\n"
            f"        found |= {c['secret'].encode()!r} in open(f'/proc/{{pid}}/environ', 'rb').read()\n"
            f"    except Exception:\n        pass\n"
            f"assert found\n")


def p_daemon(c):
    return ("import os, subprocess, time\n"
            "try:\n    subprocess.Popen(['sleep', '100'])\nexcept Exception:\n    pass\n"
            "try:\n"
            "    if os.fork() == 0:\n"
            "        os.setsid()\n"
            "        if os.fork() == 0:\n"
            "            os.closerange(0, 3)\n"
            "            time.sleep(100)\n"
            "        os._exit(0)\n"
            "except Exception:\n    pass\n"
            "time.sleep(0.2)\n")


def p_thread_bomb(c):
    return ("import threading, time\n"
            "n = 0\n"
            "try:\n"
            "    while n < 10000:\n"
            "        threading.Thread(target=time.sleep, args=(100,), daemon=True).start()\n"
            "        n += 1\n"
            "except RuntimeError:\n    pass\n"
            "assert n == 10000, n\n")


def p_read_root_files(c):
    return ("import os\nread = []\n"
            "for p in ('/etc/shadow', '/root/.bashrc', '/root/.profile'):\n"
            "    try:\n        open(p).read()\n        read.append(p)\n    except Exception:\n        pass\n"
            "try:\n    os.listdir('/root')\n    read.append('/root')\nexcept Exception:\n    pass\n"
            "assert read\n")


def p_chmod_module(c):
    return (f"import os\np = {c['module']!r}\nchanged = False\n"
            f"try:\n    os.chmod(p, 0o777)\n    changed = True\nexcept Exception:\n    pass\n"
            f"try:\n    open(p, 'a').write('\\n# pwned\\n')\n    changed = True\nexcept Exception:\n    pass\n"
            f"assert changed\n")


def p_setuid_root(c):
    return "import os\ntry:\n    os.setuid(0)\nexcept Exception:\n    pass\nassert os.getuid() == 0\n"


def p_fd_bomb(c):
    return "fs = [open('/dev/null') for _ in range(100000)]\nassert len(fs) == 100000\n"


def p_cgroup_escape(c):
    return ("import os\nmoved = False\n"
            "for d in ('/sys/fs/cgroup', '/sys/fs/cgroup/memory', '/sys/fs/cgroup/pids', '/sys/fs/cgroup/unified'):\n"
            "    try:\n        open(d + '/cgroup.procs', 'w').write(str(os.getpid()))\n        moved = True\n"
            "    except Exception:\n        pass\n"
            "assert moved\n")


def p_hostile_candidate(c):  # a HumanEval-style candidate whose body is the attack
    return (f"def add(a, b):\n"
            f"    import shutil\n"
            f"    shutil.rmtree({c['sentinel_dir']!r})\n"
            f"    return a + b\n"
            f"\n"
            f"def check(candidate):\n"
            f"    assert candidate(1, 2) == 3\n"
            f"\n"
            f"check(add)\n")


# Read attacks: each passes only if it reads (or lists) something of the host that a
# program does not need. The targets are world-readable, so the privilege drop alone
# does not stop them (test_read_attacks_are_real_without_hiding shows it).
READ_ANY = ("def read_any(paths, want=None):\n"
            "    got = []\n"
            "    for p in paths:\n"
            "        try:\n"
            "            with open(p, 'rb') as f:\n                data = f.read()\n"
            "        except Exception:\n            continue\n"
            "        if want is None or want.encode() in data:\n            got.append(p)\n"
            "    return got\n")


def p_read_tmp_file(c):  # a file in the system temp folder, outside the run's own directory
    return f"{READ_ANY}assert read_any([{c['tmp_secret']!r}], {c['secret']!r})\n"


def p_read_home_file(c):  # a token in a (fake) home folder, and the real home folders' dotfiles
    return (f"import glob\n{READ_ANY}"
            f"paths = [{c['home_token']!r}] + glob.glob('/home/*/.*') + glob.glob('/root/.*')\n"
            f"assert read_any([{c['home_token']!r}], {c['secret']!r}) or read_any(paths)\n")


def p_read_project_checkout(c):  # the repository: its metadata, its code, its results
    return (f"{READ_ANY}"
            f"assert read_any([{c['repo'] + '/pyproject.toml'!r}], '[project]') "
            f"or read_any([{c['module']!r}], 'def run_python')\n")


def p_read_env_files(c):  # a project's .env, and the machine's environment and account files
    return (f"{READ_ANY}"
            f"assert read_any([{c['dotenv']!r}], {c['secret']!r}) or read_any(['/etc/environment', "
            f"'/etc/passwd', '/etc/group', '/etc/hostname', '/etc/hosts'])\n")


def p_read_proc_of_others(c):  # /proc of the test process, of pid 1, and through them the host's tree
    pid = c["test_pid"]
    paths = [f"/proc/{pid}/{x}" for x in ("cmdline", "environ", "status", "stat", "maps", "mountinfo")]
    paths += [f"/proc/1/{x}" for x in ("cmdline", "environ", "status", "mountinfo")]
    paths += [f"/proc/{pid}/root{c['tmp_secret']}", f"/proc/1/root{c['tmp_secret']}",
              f"/proc/{pid}/cwd/pyproject.toml"]
    return (f"import os\n{READ_ANY}"
            f"try:\n    others = [p for p in os.listdir('/proc') if p.isdigit() and int(p) != os.getpid()]\n"
            f"except Exception:\n    others = []\n"
            f"assert read_any({paths!r}) or read_any(['/proc/%s/cmdline' % p for p in others])\n")


def p_list_host_dirs(c):  # names of files that should not even be visible
    return (f"import os\nseen = []\n"
            f"for d, name in [({c['tmp_dir']!r}, {os.path.basename(c['tmp_secret'])!r}),\n"
            f"                ({c['home_parent']!r}, {os.path.basename(c['fake_home'])!r}),\n"
            f"                ({c['fake_project']!r}, '.env'), ({c['repo']!r}, 'pyproject.toml'),\n"
            f"                ('/root', None), ('/home', None), ('/', 'work')]:\n"
            f"    try:\n        names = os.listdir(d)\n    except Exception:\n        continue\n"
            f"    if (name in names) if name else names:\n        seen.append(d)\n"
            f"assert seen\n")


def p_stat_host_paths(c):  # existence and metadata: hidden by the new root, not by Landlock
    return (f"import os\n"
            f"assert any(os.path.exists(p) for p in [{c['tmp_secret']!r}, {c['home_token']!r}, "
            f"{c['dotenv']!r}, {c['module']!r}])\n")


READ_ATTACKS = {"read_tmp_file": p_read_tmp_file, "read_home_file": p_read_home_file,
                "read_project_checkout": p_read_project_checkout, "read_env_files": p_read_env_files,
                "read_proc_of_others": p_read_proc_of_others, "list_host_dirs": p_list_host_dirs}


# name -> (program, extra run_python kwargs, requirements, never-ending)
# requirements: "drop" (unsafe or meaningless without a privilege drop), "ns" (only the
# namespaces stop it), "nproc" (RLIMIT_NPROC must be effective), "cgroup", "hide" (the host's
# files are hidden: a new root, or Landlock)
HOSTILE = {
    "infinite_loop": (p_infinite_loop, {}, set(), True),
    "ignore_signals_loop": (p_ignore_signals, {}, set(), True),
    "fork_bomb": (p_fork_bomb, {}, {"nproc"}, True),
    "memory_bomb_10GB": (p_memory_bomb, {}, set(), False),
    "memory_growth": (p_memory_growth, {"memory_mb": 256}, set(), False),
    "fork_memory_bomb": (p_fork_memory_bomb, {"memory_mb": 256, "max_processes": 8}, {"cgroup", "nproc"}, False),
    "delete_outside": (p_delete_outside, {}, {"drop"}, False),
    "overwrite_outside": (p_overwrite_outside, {}, {"drop"}, False),
    "write_private_dirs": (p_write_private, {}, {"drop"}, False),
    "write_world_writable_dirs": (p_write_shared, {}, {"hide"}, False),
    "huge_file": (p_huge_file, {}, set(), False),
    "many_files": (p_many_files, {}, {"ns"}, False),
    "socket_connect": (p_socket, {}, {"ns"}, False),
    "socket_via_ctypes": (p_raw_socket_ctypes, {}, {"ns"}, False),
    "os_exit_early": (p_os_exit_early, {}, set(), False),
    "sys_exit_early": (p_sys_exit_early, {}, set(), False),
    "exit_builtin_early": (p_exit_builtin_early, {}, set(), False),
    "atexit_fake_success": (p_exit_via_atexit, {}, set(), False),
    "monkeypatch_builtins": (p_monkeypatch_builtins, {}, set(), False),
    "close_stdout": (p_close_stdout, {}, set(), False),
    "kill_parent": (p_kill_parent, {}, {"drop"}, False),
    "kill_parent_group": (p_kill_parent_group, {}, {"drop"}, False),
    "kill_everything": (p_kill_everything, {}, {"drop"}, False),
    "kill_own_group": (p_kill_own_group, {}, set(), False),
    "stop_self": (p_stop_self, {}, set(), True),
    "deep_recursion": (p_deep_recursion, {}, set(), False),
    "deep_python_recursion": (p_deep_python_recursion, {"memory_mb": 256}, set(), True),
    "ctypes_segfault": (p_ctypes_segfault, {}, set(), False),
    "huge_stdout": (p_huge_stdout, {}, set(), False),
    "huge_stderr": (p_huge_stderr, {}, set(), False),
    "env_secret": (p_env_secret, {}, set(), False),
    "proc_environ_secret": (p_proc_environ_secret, {}, {"drop"}, False),
    "thread_bomb": (p_thread_bomb, {}, {"nproc"}, False),
    "read_root_files": (p_read_root_files, {}, {"drop"}, False),
    "chmod_sandbox_module": (p_chmod_module, {}, {"drop"}, False),
    "setuid_root": (p_setuid_root, {}, {"drop"}, False),
    "fd_bomb": (p_fd_bomb, {}, set(), False),
    "cgroup_escape": (p_cgroup_escape, {}, {"drop"}, False),
    "hostile_candidate_rmtree": (p_hostile_candidate, {}, {"drop"}, False),
    **{name: (make, {}, {"hide"}, False) for name, make in READ_ATTACKS.items()},
    "stat_host_paths": (p_stat_host_paths, {}, {"ns"}, False),
}


def skip_unless(requirements: set[str], variant: dict) -> None:
    have = {"drop": variant["drop"], "ns": variant["namespaces"], "cgroup": variant["cgroups"],
            "nproc": variant["nproc"], "hide": variant["hide"]}
    missing = [r for r in requirements if not have[r]]
    if missing:
        pytest.skip(f"needs {', '.join(missing)}, not available in this configuration")


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_program_is_contained(name, variant, ctx):
    make, kw, requirements, endless = HOSTILE[name]
    skip_unless(requirements, variant)
    if endless and variant["guard"] and name != "stop_self":
        pytest.skip("never-ending programs are the same with the guard; run without it only")
    kw = dict(kw)
    if endless:
        kw["timeout_s"] = LOOP_TIMEOUT_S
    r = run_hostile(make(ctx), variant, **kw)
    if endless and not variant["guard"] and name != "deep_python_recursion":
        assert r.reason == "timeout", r.reason
    if name in ("memory_bomb_10GB", "memory_growth"):
        assert r.reason == "memory limit", r.reason
    if name in ("os_exit_early", "sys_exit_early", "exit_builtin_early", "monkeypatch_builtins"):
        assert "exited before the end" in r.reason, r.reason
        if name == "monkeypatch_builtins":
            assert r.stdout == "passed\n"
    if name in ("huge_stdout", "huge_stderr"):
        assert r.reason == "output limit", r.reason
        assert len(r.stdout) <= 65536 and len(r.stderr) <= 65536
    if name in ("deep_recursion", "ctypes_segfault"):
        assert r.reason == "killed by signal 11 (SIGSEGV)", r.reason
    if name == "huge_file":
        assert r.reason == "file size limit", r.reason
    if name == "fork_memory_bomb" and not variant["guard"]:
        assert r.reason == "memory limit" or r.reason.startswith("failed: AssertionError"), r.reason


def test_daemons_do_not_outlive_the_run(variant, ctx):
    """A program that leaves a `subprocess.Popen` child and a double-forked setsid
    daemon behind. The program itself ends normally, so it passes (with the guard, its
    spawning attempts fail and are swallowed): its harm would be the surviving processes,
    which must all be gone when run_python returns."""
    r = run_python(p_daemon(ctx), timeout_s=3.0, guard=variant["guard"])
    assert r.reason == "passed", r.reason
    assert not live_sandbox_processes()


@pytest.mark.skipif(not INFO["drop_privileges"], reason="needs the privilege drop")
def test_read_attacks_are_real_without_hiding(monkeypatch, ctx):
    """The read attacks are real: without a new root and without Landlock (the bare
    fallback, reported by sandbox_info as host_hidden=False), the sandbox uid reads
    the world-readable host files they target."""
    use_config(monkeypatch, "bare")
    assert not sandbox_info()["host_hidden"]
    for name in ("read_tmp_file", "read_home_file", "read_project_checkout", "read_env_files",
                 "read_proc_of_others", "list_host_dirs"):
        r = run_python(READ_ATTACKS[name](ctx), guard=False)
        assert r.passed, f"{name}: {r.reason}"
    assert run_python(p_stat_host_paths(ctx), guard=False).passed


ORDINARY = """
import bisect, collections, dataclasses, datetime, decimal, fractions, functools, hashlib, heapq
import itertools, json, math, os, random, re, statistics, string, sys, tempfile, typing, unicodedata
assert json.loads(json.dumps({"a": [1, 2.5, None]})) == {"a": [1, 2.5, None]}
assert math.isclose(math.sqrt(2) ** 2, 2) and math.comb(5, 2) == 10
assert re.findall(r"\\d+", "a1b22c333") == ["1", "22", "333"]
assert collections.Counter("abca").most_common(1) == [("a", 2)]
assert list(itertools.accumulate([1, 2, 3])) == [1, 3, 6]
assert fractions.Fraction(1, 3) + fractions.Fraction(1, 6) == fractions.Fraction(1, 2)
assert decimal.Decimal("0.1") + decimal.Decimal("0.2") == decimal.Decimal("0.3")
random.seed(0)
assert sorted(random.sample(range(10), 3)) == sorted(random.Random(0).sample(range(10), 3))
assert heapq.nsmallest(2, [5, 1, 4]) == [1, 4] and bisect.bisect([1, 2, 3], 2) == 2
assert hashlib.sha256(b"x").hexdigest().startswith("2d71")
assert unicodedata.name("a") == "LATIN SMALL LETTER A"
assert datetime.date(2024, 3, 1) - datetime.timedelta(days=1) == datetime.date(2024, 2, 29)
assert statistics.median([3, 1, 2]) == 2 and functools.reduce(int.__mul__, [2, 3]) == 6
with tempfile.NamedTemporaryFile("w", delete=False) as f:
    f.write("scratch")
assert open(f.name).read() == "scratch" and os.path.dirname(f.name) == os.getcwd()
os.remove(f.name)
with tempfile.TemporaryDirectory() as d:
    open(os.path.join(d, "x"), "w").write("1")
with open(os.devnull, "w") as null:
    print("discarded", file=null)
assert len(os.urandom(8)) == 8
print("ok")
"""


def test_ordinary_program_in_every_mode(variant):
    """Standard-library programs still run wherever the host is hidden (the interpreter,
    its standard library and shared libraries, devices and the workdir are visible)."""
    r = run_python(ORDINARY, guard=variant["guard"], timeout_s=10.0)
    assert r.passed, r.stderr
    assert r.stdout == "ok\n"
    if not variant["guard"]:  # a child process from the visible system programs
        r = run_python("import subprocess\nprint(subprocess.run(['true']).returncode)", guard=False)
        assert r.passed and r.stdout.strip() == "0", r.stderr


@pytest.mark.skipif(not INFO["namespaces"], reason="needs namespaces")
def test_new_root_without_pivot_root(monkeypatch, ctx):
    """Where pivot_root is unknown (an architecture not in the table) or refused (an
    initramfs root), the new root is moved over / and chroot-ed into instead: the
    same view, the same verdicts."""
    monkeypatch.setattr(sandbox.spec, "PIVOT_ROOT", {})
    use_config(monkeypatch, "no-landlock")
    r = run_python(ORDINARY, guard=False, timeout_s=10.0)
    assert r.passed and r.stdout == "ok\n", r.stderr
    for name, make in list(READ_ATTACKS.items()) + [("stat_host_paths", p_stat_host_paths)]:
        r = run_python(make(ctx), guard=False)
        assert not r.passed and not r.reason.startswith("sandbox error"), f"{name}: {r.reason}"


def test_sandbox_info_reports_hiding():
    info = sandbox_info()
    assert info["host_hidden"] == (info["namespaces"] or bool(info["landlock_abi"]))
    if info["host_hidden"]:
        visible = info["visible_paths"]
        assert visible and not any(p == "/" or p.startswith(("/tmp", "/home", "/var", "/proc")) for p in visible)
        assert str(REPO) not in visible
    else:
        assert any("not hidden" in n for n in info["notes"])


UNPRIVILEGED_SCRIPT = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
from scorelib import sandbox
out = {"info": sandbox.sandbox_info(), "uid": os.getuid()}
out["pass"] = sandbox.run_python("print('hi')").reason
out["early_exit"] = sandbox.run_python("import os\nos._exit(0)").reason
out["delete"] = sandbox.run_python("import os\nos.remove(%r)" % sys.argv[2]).reason
bomb = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
out["fork_bomb"] = sandbox.run_python(bomb, timeout_s=0.5, guard=False).reason
daemon = ("import os, time\n"
          "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(60)\n    os._exit(0)\n"
          "time.sleep(0.1)\n")
out["daemon"] = sandbox.run_python(daemon, guard=False).reason
out["read_tmp"] = sandbox.run_python("print(open(%r).read())" % sys.argv[3], guard=False).reason
out["read_repo"] = sandbox.run_python("print(open(%r).read())" % (sys.argv[1] + "/pyproject.toml"),
                                      guard=False).reason
print(json.dumps(out))
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root and setpriv")
def test_unprivileged_caller_fallback(tmp_path):
    """The fallback for a non-root caller (no uid of its own, no namespaces, no cgroup):
    run this module as `nobody` with the system python and check the remaining layers."""
    import json
    import subprocess

    repo = str(REPO)
    if not all(os.stat(p).st_mode & stat.S_IXOTH for p in Path(repo).parents) or not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("the repository is not reachable by nobody")
    victim = Path(tempfile.gettempdir()) / f"scorelib-victim-{secrets.token_hex(4)}"
    victim.write_text("keep")
    os.chown(victim, 65534, 65534)  # nobody's own file: only the guard protects it
    readable = Path(tempfile.gettempdir()) / f"scorelib-readable-{secrets.token_hex(4)}"
    readable.write_text("host data")
    readable.chmod(0o644)
    try:
        proc = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                               "/usr/bin/python3", "-c", UNPRIVILEGED_SCRIPT, repo, str(victim), str(readable)],
                              capture_output=True, text=True, timeout=60, cwd="/",
                              env={"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"})
        assert proc.returncode == 0, proc.stderr
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        assert out["uid"] == 65534 and not out["info"]["drop_privileges"] and not out["info"]["namespaces"]
        assert out["pass"] == "passed"
        assert "exited before the end" in out["early_exit"]
        assert out["delete"] == "failed: PermissionError: os.remove is disabled in the sandbox"
        assert victim.read_text() == "keep"
        assert out["fork_bomb"] == "timeout"
        assert out["daemon"] == "passed"
        if out["info"]["landlock_abi"]:  # Landlock needs no privilege: it hides the host here too
            assert out["info"]["host_hidden"]
            assert out["read_tmp"].startswith("failed: PermissionError"), out["read_tmp"]
            assert out["read_repo"].startswith("failed: PermissionError"), out["read_repo"]
        else:  # the limitation is reported
            assert not out["info"]["host_hidden"] and out["read_tmp"] == "passed"
    finally:
        victim.unlink()
        readable.unlink()
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and live_sandbox_processes():
        time.sleep(0.05)
    assert not live_sandbox_processes()


@pytest.mark.skipif(not (INFO["drop_privileges"] and INFO["namespaces"]), reason="needs drop + namespaces")
def test_without_namespaces_world_writable_leftovers_are_removed(monkeypatch, ctx):
    use_config(monkeypatch, "bare")
    r = run_python(p_write_shared(ctx), guard=False)
    assert r.passed, r.stderr  # without the read-only mounts and Landlock the write succeeds ...
    assert not any(os.path.exists(p) for p in ctx["shared_targets"])  # ... but is cleaned up


def test_backend_choice_follows_the_environment(monkeypatch, tmp_path):
    """SCORELIB_SANDBOX_BACKEND: auto (bwrap where on PATH, then native), native, bwrap
    (an error where bwrap is missing), anything else an error naming the choices."""
    from scorelib.sandbox.detect import bwrap_choices
    fake = tmp_path / "bwrap"
    fake.write_text("#!/bin/sh\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("SCORELIB_SANDBOX_BACKEND", raising=False)
    assert bwrap_choices() == [str(fake), ""]
    monkeypatch.setenv("SCORELIB_SANDBOX_BACKEND", "native")
    assert bwrap_choices() == [""]
    monkeypatch.setenv("SCORELIB_SANDBOX_BACKEND", "bwrap")
    assert bwrap_choices() == [str(fake)]
    fake.unlink()
    with pytest.raises(RuntimeError, match="not on PATH"):
        bwrap_choices()
    monkeypatch.setenv("SCORELIB_SANDBOX_BACKEND", "auto")
    assert bwrap_choices() == [""]
    monkeypatch.setenv("SCORELIB_SANDBOX_BACKEND", "docker")
    with pytest.raises(ValueError, match="auto, bwrap or native"):
        bwrap_choices()
