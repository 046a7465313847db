"""One run of one program: prepare, spawn, pump the output, stop, clean up, verdict.

:func:`run` drives a :class:`_Run` through its steps; whatever happens, the last two
always run. The launcher is spawned with :class:`subprocess.Popen` (no ``preexec_fn``,
so it is safe from many threads) in a new session, with stdin /dev/null, stdout and
stderr on pipes, the program on an inherited memfd and a status pipe. The parent
reads the pipes with a cap of ``max_output_bytes`` each until the launcher exits (a
pidfd becomes readable), the deadline passes ("timeout") or a cap is exceeded
("output limit"). Then, always, even on success, the run's process group is killed
and every remaining process of the run is found in /proc and killed until none is
left; the pipes are drained; the cgroup, the workdir and (without a new root or
Landlock) the files the run's uid left in world-writable directories are removed.
"""
from __future__ import annotations

import os
import secrets
import selectors
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass

from . import cgroups as cg
from . import verdict
from .processes import LEAKED, acquire_uid, kill_all
from .spec import ENV_MARKER, Limits, environment, launch_spec, launcher_command, program_fd

DRAIN_DEADLINE_S = 0.5  # at most this long draining the pipes once the processes are dead


@dataclass
class ExecResult:
    """Outcome of one sandboxed program."""

    passed: bool  # exit status 0, within every limit, and the program ran to its end
    reason: str  # "passed", "timeout", "memory limit", "output limit", "killed by signal N (SIGX)", "failed: ..."
    returncode: int | None  # of the program's main process; negative: killed by that signal
    stdout: str  # at most max_output_bytes (the sentinel removed)
    stderr: str  # at most max_output_bytes
    seconds: float


def run(program, cfg, *, timeout_s: float, memory_mb: int, max_output_bytes: int,
        max_file_mb: int, max_processes: int, guard: bool) -> ExecResult:
    """Run `program` under `cfg` (a :class:`~scorelib.sandbox.detect.Config`). Raises only
    for the sandbox's own failures (bad input, no free uid ...), after cleaning up."""
    r = _Run(cfg, Limits(timeout_s, memory_mb, max_output_bytes, max_file_mb, max_processes))
    try:
        r.prepare(program)
        r.spawn(guard)
        r.pump()
    finally:
        r.stop()
        r.clean_up()
    return r.result(time.monotonic() - r.start)


class _Run:
    """The state of one run, from its preparation to its verdict."""

    def __init__(self, cfg, limits: Limits):
        self.cfg, self.limits = cfg, limits
        self.start = time.monotonic()
        self.deadline = self.start + max(0.0, float(limits.timeout_s))
        self.cap = max(0, int(limits.max_output_bytes))
        self.token = secrets.token_hex(16).encode()
        self.run_id = secrets.token_hex(8)
        self.marker = f"{ENV_MARKER}={self.run_id}".encode()
        self.sentinel = b"\n" + self.token + b"\n"
        self.bufs = {"out": bytearray(), "err": bytearray()}
        self.caps = {"out": self.cap + len(self.sentinel), "err": self.cap}  # the sentinel does not count
        self.lease = self.uid = self.workdir = self.proc = self.sel = None
        self.progfd = self.pidfd = self.status_r = self.status_w = None
        self.cgroups: list[str] = []
        self.stopped = None  # set when the parent stopped the run: "timeout" / "output limit"
        self.status = b""  # what the launcher wrote on the status pipe
        self.clean = True  # every process of the run was killed
        self.oom_kills = 0

    def prepare(self, program) -> None:
        """A uid of its own, a fresh workdir, the program in a memfd, a status pipe, a cgroup."""
        if self.cfg.drop:
            self.lease = acquire_uid()
            self.uid = self.lease.uid
        self.workdir = tempfile.mkdtemp(prefix="scorelib-sandbox-", dir=self.cfg.base_dir)
        if self.uid is not None:
            os.chown(self.workdir, self.uid, self.uid)
        os.chmod(self.workdir, 0o700)
        self.progfd = program_fd(self.token, program)
        self.status_r, self.status_w = os.pipe()
        if self.cfg.cgroups:
            memory = (self.limits.memory_mb << 20) + self.limits.disk_bytes + (64 << 20)
            self.cgroups = cg.create(list(self.cfg.cgroups), f"scorelib-sandbox-{self.run_id}",
                                     memory, self.limits.max_processes + 4)

    def spawn(self, guard: bool) -> None:
        """Start the launcher; watch its stdout, stderr and (through a pidfd) its exit."""
        spec = launch_spec(self.cfg, self.limits, uid=self.uid, workdir=self.workdir, progfd=self.progfd,
                           status_w=self.status_w, cgroups=self.cgroups, guard=guard)
        self.proc = subprocess.Popen(
            launcher_command(self.cfg.launcher, spec),
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=self.workdir, env=environment(self.workdir, self.run_id), start_new_session=True,
            pass_fds=(self.progfd, self.status_w), close_fds=True, umask=0o077, bufsize=0,
        )
        for fd in (self.progfd, self.status_w):
            os.close(fd)
        self.progfd = self.status_w = None
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ, "out")
        self.sel.register(self.proc.stderr, selectors.EVENT_READ, "err")
        try:
            self.pidfd = os.pidfd_open(self.proc.pid)  # readable when the launcher exits (Linux >= 5.3)
        except (AttributeError, OSError):
            self.pidfd = None
        if self.pidfd is not None:
            self.sel.register(self.pidfd, selectors.EVENT_READ, "exit")

    def pump(self) -> None:
        """Read the pipes until the launcher exits, the deadline passes or a cap is exceeded."""
        exited = False
        while not exited:
            remaining = self.deadline - time.monotonic()
            if remaining <= 0:
                self.stopped = "timeout"
                return
            for key, _ in self.sel.select(remaining if self.pidfd is not None else min(remaining, 0.01)):
                if key.data == "exit":
                    exited = True
                elif not _read_chunk(self.sel, key, self.bufs, self.caps):
                    self.stopped = "output limit"
            if self.stopped:
                return
            if self.pidfd is None and not exited:
                exited = _exited(self.proc.pid)

    def stop(self) -> None:
        """Kill every process of the run, drain the pipes, reap the launcher."""
        if self.proc is None:
            return
        # the launcher is not reaped yet, so its pid (= the session's pgid) cannot be reused
        marker = None if self.uid is not None else self.marker
        self.clean = kill_all(self.proc.pid, self.uid, marker, self.cgroups)
        if self.sel is not None:
            self._drain()
        for stream in (self.proc.stdout, self.proc.stderr):
            stream.close()
        try:
            self.proc.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self.clean = False

    def _drain(self) -> None:
        """Everything that held the pipes is dead: read them to EOF (for a while at most)."""
        if self.pidfd is not None:
            self.sel.unregister(self.pidfd)
        end = time.monotonic() + DRAIN_DEADLINE_S
        while self.sel.get_map() and time.monotonic() < end:
            for key, _ in self.sel.select(max(0.0, end - time.monotonic())):
                if not _read_chunk(self.sel, key, self.bufs, self.caps) and self.stopped is None:
                    self.stopped = "output limit"
        self.sel.close()

    def clean_up(self) -> None:
        """Close the fds, read the status pipe, remove the cgroup and the workdir, free the uid."""
        for fd in (self.pidfd, self.progfd, self.status_w):
            if fd is not None:
                os.close(fd)
        if self.status_r is not None:
            os.set_blocking(self.status_r, False)
            try:
                self.status = os.read(self.status_r, 8192)
            except OSError:
                self.status = b""
            os.close(self.status_r)
        self.oom_kills = cg.oom_kills(self.cgroups)
        cg.remove(self.cgroups)
        if self.uid is not None and not self.cfg.namespaces:
            _remove_leftover_files(self.uid)
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        if self.lease is not None:
            if self.clean:
                self.lease.release()
            else:  # pragma: no cover - never reuse a uid while something of it may live
                LEAKED.append(self.lease)

    def result(self, seconds: float) -> ExecResult:
        """The verdict, from the status pipe, the exit code and the output."""
        out, err = bytes(self.bufs["out"]), bytes(self.bufs["err"])
        reached_end = self.sentinel in out
        out = out.replace(self.sentinel, b"", 1)
        stopped = self.stopped
        if len(out) > self.cap:
            stopped = stopped or "output limit"
            out = out[:self.cap]
        stdout, stderr = out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
        rc = verdict.exit_code(self.status, self.proc.returncode, self.cfg.namespaces)
        reason = verdict.reason(stopped, verdict.launcher_error(self.status), rc, reached_end,
                                self.oom_kills, stderr)
        if not self.clean:
            reason += " (warning: some processes of the run could not be killed)"
        return ExecResult(reason == "passed", reason, rc, stdout, stderr, seconds)


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


def _exited(pid: int) -> bool:
    """Has the child exited? (without reaping it, so its pid and pgid stay reserved)"""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


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
