"""Finding and killing every process of a run, and leasing each run a uid of its own.

A run's processes are found in ``/proc`` by their uid (a uid leased to this run only),
by the run's cgroup, or by the run's marker in their environment; each is killed with
SIGKILL through a pidfd after checking it is still ours (no pid-reuse race).
"""
from __future__ import annotations

import os
import pwd
import signal
import socket
import threading
import time

#: uids SANDBOX_UID_BASE .. SANDBOX_UID_BASE + SANDBOX_UID_COUNT - 1 run the programs
#: (Debian reserves 65000-65533 and never assigns them). Override with the
#: environment variable SCORELIB_SANDBOX_UID_BASE.
SANDBOX_UID_BASE = int(os.environ.get("SCORELIB_SANDBOX_UID_BASE", "65000"))
SANDBOX_UID_COUNT = 256

KILL_DEADLINE_S = 1.0  # at most this long hunting the processes of a run


# --------------------------------------------------------------------------- /proc
def read_status(pid: str) -> tuple[set[int], bool] | None:
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


def has_marker(pid: str, marker: bytes) -> bool:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return marker in f.read().split(b"\0")
    except OSError:
        return False


def cgroup_pids(cgroups: list[str]) -> set[int]:
    pids: set[int] = set()
    for d in cgroups:
        try:
            with open(os.path.join(d, "cgroup.procs")) as f:
                pids.update(int(x) for x in f.read().split())
        except (OSError, ValueError):
            pass
    return pids


def find_processes(uid: int | None, marker: bytes | None, cgroups: list[str] = ()) -> dict[int, bool]:
    """pid -> is_zombie for every process of `uid` (real, effective, saved or fs
    uid), in one of `cgroups`, or carrying the environment `marker`."""
    found: dict[int, bool] = {}
    me = os.getpid()
    in_cgroup = cgroup_pids(list(cgroups)) if cgroups else set()
    try:
        names = os.listdir("/proc")
    except OSError:  # pragma: no cover - no /proc
        return found
    for name in names:
        if not name.isdigit() or int(name) == me:
            continue
        st = read_status(name)
        if st is None:
            continue
        uids, zombie = st
        if ((uid is not None and uid in uids) or int(name) in in_cgroup
                or (marker is not None and has_marker(name, marker))):
            found[int(name)] = zombie
    return found


def count_tasks_of(uid: int) -> int:
    """Processes + threads whose real uid is `uid` (what RLIMIT_NPROC counts)."""
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


# --------------------------------------------------------------------------- killing
def _kill_pid(pid: int, uid: int | None, marker: bytes | None, cgroups: list[str]) -> None:
    """SIGKILL `pid`, after checking through a pidfd that it is still ours (no pid-reuse race)."""
    pidfd = None
    try:
        if hasattr(os, "pidfd_open"):
            pidfd = os.pidfd_open(pid)
            st = read_status(str(pid))
            if st is None:
                return
            if not ((uid is not None and uid in st[0]) or pid in cgroup_pids(cgroups)
                    or (marker is not None and has_marker(str(pid), marker))):
                return
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        else:  # pragma: no cover - old kernel or Python
            os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError):
        pass
    finally:
        if pidfd is not None:
            os.close(pidfd)


def kill_all(pgid: int | None, uid: int | None, marker: bytes | None, cgroups: list[str]) -> bool:
    """Kill the run's process group, then every process of the run, until none
    is alive. True if nothing of the run is left."""
    if pgid is not None:
        try:
            os.killpg(pgid, signal.SIGKILL)
        except OSError:
            pass
    deadline = time.monotonic() + KILL_DEADLINE_S
    killed: set[int] = set()
    while True:
        procs = find_processes(uid, marker, cgroups)
        alive = [p for p, zombie in procs.items() if not (zombie and p in killed)]
        if not alive:
            return True
        if time.monotonic() > deadline:
            return False
        for p in alive:
            _kill_pid(p, uid, marker, cgroups)
            killed.add(p)
        time.sleep(0.002)


# --------------------------------------------------------------------------- uid leases
class UidLease:
    def __init__(self, uid: int, lock: socket.socket):
        self.uid = uid
        self._lock = lock

    def release(self) -> None:
        self._lock.close()


_UID_LOCK = threading.Lock()
_UID_NEXT = 0
LEAKED: list[UidLease] = []  # uids kept leased because something of theirs could not be killed


def _uid_has_account(uid: int) -> bool:
    try:
        pwd.getpwuid(uid)
        return True
    except KeyError:
        return False


def acquire_uid() -> UidLease:
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
        if _uid_has_account(uid) or find_processes(uid, None):
            lock.close()  # somebody's account, or leftovers of a crashed run: skip it
            continue
        return UidLease(uid, lock)
    raise RuntimeError("no free sandbox uid")
