"""Keeping a `local` job away from Train and from other jobs.

When Train runs as root, each job process runs as a user id of its own, claimed from a range for the
job's lifetime (the kernel needs no passwd entry for it), with no supplementary groups, in a network
namespace of its own (loopback only) unless the deployment gives jobs the host's network. Train's
files are not readable by that user: Train creates its files private (umask 077 in the settings),
`secure_data_dir` takes group and other access away from what existed before, and a job's run
directory lets its user reach only its own `work/` directory.

Without root none of this is possible: the job runs as Train's own user and can read what Train can.
Then `secure_data_dir` still keeps TRAIN_DATA_DIR private from the host's other users.

This module uses the standard library only: the supervisor (`backends.local_runner`) imports it
without Django.
"""

import ctypes
import errno
import fcntl
import os
import signal
import socket
import stat
import struct
from pathlib import Path

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_REMOUNT, MS_BIND = 0x1, 0x2, 0x4, 0x8, 0x20, 0x1000
MS_REC, MS_PRIVATE = 0x4000, 0x40000
SIOCGIFFLAGS, SIOCSIFFLAGS, IFF_UP = 0x8913, 0x8914, 0x1
IFREQ = "16sH14x"  # struct ifreq: the interface name, then ifr_flags
# One sweep of kill(-1) reaches every process of the user, even one that forks as fast as it can: the
# kernel walks the process list holding the lock a fork needs to add its child, and a parent with
# SIGKILL pending cannot finish a fork. Two more are insurance. kill(-1) never reports "nothing left"
# while any other process exists (it counts those it may not signal), so every sweep is made, and each
# walks every process of the host: keep them few.
REAP_SWEEPS = 3
# Directories whose sockets let a local user into a service without a password when the service
# trusts local connections (PostgreSQL with `local all all trust`): hidden from jobs.
HIDDEN_SOCKET_DIRS = ("/run/postgresql", "/var/run/postgresql")


def can_isolate() -> bool:
    """Whether this process may run jobs as other users (it runs as root)."""
    return os.geteuid() == 0


# --- Train's side: the data directory -------------------------------------------------------------
def secure_data_dir(data_dir: Path, *, reachable: list[Path], private: list[Path], isolating: bool) -> None:
    """Make TRAIN_DATA_DIR private: 0711 when jobs run as other users (they must pass through to their
    run directory and to the mount roots, never list it), 0700 otherwise. Every other entry in it,
    and each path in `private` (the signing key, the SQLite files wherever they are), loses group
    and other access."""
    data_dir.chmod(0o711 if isolating else 0o700)
    keep = {path for path in reachable if path.parent == data_dir}
    for entry in [*data_dir.iterdir(), *private]:
        if entry in keep:
            continue
        try:
            mode = entry.lstat().st_mode
        except FileNotFoundError:
            continue
        if not stat.S_ISLNK(mode) and mode & 0o077:
            entry.chmod(stat.S_IMODE(mode) & ~0o077)


def unreachable_parent(path: Path) -> Path | None:
    """The first directory above `path` that other users cannot pass through, or None."""
    for parent in reversed(path.parents):
        if not parent.stat().st_mode & stat.S_IXOTH:
            return parent
    return None


# --- the supervisor's side: a user id per job ------------------------------------------------------
def claim_job_uid(uid_dir: Path, *, base: int, count: int, start: int) -> tuple[int, int] | None:
    """A free user id from [base, base + count) and the fd whose lock holds it for this process's
    lifetime, or None when all are taken. A supervisor that dies releases its id with its fd."""
    uid_dir.mkdir(mode=0o700, exist_ok=True)
    for offset in range(count):
        uid = base + (start + offset) % count
        fd = os.open(uid_dir / str(uid), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return uid, fd
    return None


# Never act as a system or login user: the settings refuse such ranges, and this guards the kill(-1).
MIN_JOB_UID = 65536


def _become(uid: int) -> None:
    if uid < MIN_JOB_UID:
        raise PermissionError(errno.EPERM, f"refusing to run a job as user id {uid}")
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def kill_processes_of(uid: int) -> None:
    """SIGKILL every process running as `uid`: what an earlier job left behind (daemons that left its
    process group, orphans of a killed supervisor). A child takes on the uid and calls kill(-1),
    which reaches exactly the processes that user may signal."""
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            _become(uid)
            for _ in range(REAP_SWEEPS):
                os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass  # nothing (left) to kill
        except BaseException:
            code = 1
        os._exit(code)
    os.waitpid(pid, 0)


def _libc_call(name: str, *args) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if getattr(libc, name)(*args) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{name}: {os.strerror(code)}")


def _private_network() -> None:
    """A network namespace of its own with loopback up: the job can serve itself on 127.0.0.1
    (distributed training on one host), and reaches nothing else."""
    _libc_call("unshare", CLONE_NEWNET)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        flags = struct.unpack(IFREQ, fcntl.ioctl(sock, SIOCGIFFLAGS, struct.pack(IFREQ, b"lo", 0)))[1]
        fcntl.ioctl(sock, SIOCSIFFLAGS, struct.pack(IFREQ, b"lo", flags | IFF_UP))


def _private_mounts(mounts: list[dict]) -> None:
    """A mount namespace of its own, in which local service sockets are covered by empty tmpfs and
    each `ro` storage mount is a read-only bind of itself (the host's mount table is untouched)."""
    _libc_call("unshare", CLONE_NEWNS)
    _libc_call("mount", None, b"/", None, MS_REC | MS_PRIVATE, None)
    for directory in sorted({os.path.realpath(path) for path in HIDDEN_SOCKET_DIRS}):
        if os.path.isdir(directory):
            _libc_call("mount", b"tmpfs", directory.encode(), b"tmpfs", MS_NOSUID | MS_NODEV, b"size=4k,mode=0755")
    for path, read_only in mount_binds(mounts):
        _bind_onto_itself(path, read_only=read_only)


def mount_binds(mounts: list[dict]) -> list[tuple[str, bool]]:
    """The binds that make each `ro` mount read-only: every `ro` path, and every `rw` path inside one
    (a bind of the outer path made it read-only too). Outer paths come first."""
    binds, read_only_paths = [], []
    for mount in sorted(mounts, key=lambda m: len(m["path"])):
        path = mount["path"]
        inside_read_only = any(path == outer or path.startswith(outer.rstrip("/") + "/") for outer in read_only_paths)
        if mount["read_only"]:
            read_only_paths.append(path)
            binds.append((path, True))
        elif inside_read_only:
            binds.append((path, False))
    return binds


def _bind_onto_itself(path: str, *, read_only: bool) -> None:
    # A remount sets the bind's flags outright: keep noexec where the file system has it, and never
    # honour set-uid files or device nodes in a job's data.
    flags = MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV
    if os.statvfs(path).f_flag & os.ST_NOEXEC:
        flags |= MS_NOEXEC
    if read_only:
        flags |= MS_RDONLY
    _libc_call("mount", path.encode(), path.encode(), None, MS_BIND, None)
    _libc_call("mount", None, path.encode(), None, flags, None)


def job_preexec(uid: int, *, private_network: bool, mounts: list[dict] = ()):
    """What the job's child process does between fork and exec, as root: leave Train's network and
    local sockets behind, make its `ro` mounts read-only, then drop to the job's user for good. Any
    failure stops the exec. `mounts`: [{"path", "read_only"}], as in the run's spec.json."""

    def enter() -> None:
        if private_network:
            _private_network()
        _private_mounts(list(mounts))
        _become(uid)
        if os.getuid() != uid or os.geteuid() != uid:
            raise OSError(errno.EPERM, "could not drop privileges")
        os.umask(0o077)

    return enter
