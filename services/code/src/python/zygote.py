"""toolplane Python zygote: one warm interpreter that forks each session's kernel.

It runs inside the outer sandbox (docs/code-python.md, "Zygote"): util-linux
`unshare` gives it its own user, mount, pid, network, IPC and UTS namespaces and
a fresh /proc; bubblewrap inside that gives it a read-only system and no host
files. It imports the preload list once, then serves the service's control
frames on stdin/stdout (the kernel.py layout):

  {"op": "fork", "token": T}  ->  {"op": "forked", "token": T, "pid": P}
  {"op": "kill", "pid": P, "token": T}   SIGTERM to a session's watcher, which kills its init
                                  (the session's pid namespace dies with it)
                                  {"op": "exited", "pid": P, "code": C, "signal": S} when a session ends

A fork becomes a session in three steps. The first child unshares new user,
mount, pid, IPC, UTS and network namespaces and maps its uid; it spawns the
session's init (services/code/native/session-init.c: pid 1 of the new pid
namespace, a small C program that reaps orphans), forks the kernel (pid 2), and
execs the same C program as the session's watcher, which ends the namespace
when the kernel ends and mirrors its status to the zygote. The kernel connects to the service,
mounts a fresh /proc, its own /tmp and /dev/shm, hides the service's socket,
closes every inherited descriptor, drops every capability, installs the seccomp
filter (docs/security.md, "Seccomp") and serves kernel.py's protocol. The zygote never runs model code, holds no session descriptor, and
cannot be named from a session's pid namespace.
"""

import ctypes
import gc
import os
import select
import signal
import socket
import sys
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import kernel  # noqa: E402 - found beside this file, which -I keeps off sys.path

SOCKET_PATH = "/opt/toolplane/socket/kernels.sock"
SESSION_INIT = "/opt/toolplane/session-init"
# The kernels' seccomp filter, a classic BPF program (services/code/native/seccomp-policy.c).
SECCOMP_PROGRAM = "/opt/toolplane/seccomp.bpf"
# Exit code of a watcher whose session could not be set up (the C program mirrors the kernel's otherwise).
SETUP_FAILED = 72
SOCKET_DIR = os.path.dirname(SOCKET_PATH)

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
SESSION_NAMESPACES = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWNET

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
LINUX_CAPABILITY_VERSION_3 = 0x20080522

# /proc entries bubblewrap's --proc also covers read-only: system-wide knobs a session has no business with.
PROC_READ_ONLY = ("sys", "sysrq-trigger", "irq", "bus")

libc = ctypes.CDLL(None, use_errno=True)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _check(result, what):
    if result != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(source, target, fstype, flags, data=None):
    _check(
        libc.mount(
            source.encode() if source else None,
            target.encode(),
            fstype.encode() if fstype else None,
            ctypes.c_ulong(flags),
            data.encode() if data else None,
        ),
        f"mount {target}",
    )


def _drop_capabilities():
    """No capability left in the session's user namespace."""
    header = _CapHeader(LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(libc.capset(ctypes.byref(header), data), "capset")


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_char_p)]


def _install_seccomp(program):
    """The session's syscall filter, for the kernel and everything it starts (no_new_privs is already set)."""
    prog = _SockFprog(len(program) // 8, program)
    _check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0), "seccomp")


def _write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


def _enter_namespaces():
    """In the first child: new namespaces, same uid/gid inside as outside (the map the kernel allows unprivileged)."""
    uid, gid = os.getuid(), os.getgid()
    _check(libc.unshare(SESSION_NAMESPACES), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")


def _private_mounts(tmp_bytes):
    """In the session's init: its own /proc, /tmp and /dev/shm; the service's socket out of sight."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    _mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for name in PROC_READ_ONLY:
        path = f"/proc/{name}"
        if os.path.exists(path):
            _mount(path, path, None, MS_BIND | MS_REC)
            _mount(None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for target in ("/tmp", "/dev/shm"):
        _mount("tmpfs", target, "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmp_bytes},mode=1777")
    _mount("tmpfs", SOCKET_DIR, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k")


def _close_descriptors(keep):
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd > 2 and fd not in keep:
            try:
                os.close(fd)
            except OSError:
                pass
    devnull = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(devnull, fd)
    os.close(devnull)


def _session_kernel(token, tmp_bytes, modules, seccomp):
    """pid 2 of the session's pid namespace: sets up the session's mounts, drops everything, serves."""
    try:
        signal.pthread_sigmask(signal.SIG_SETMASK, set())
        os.setsid()
        connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        connection.connect(SOCKET_PATH)
        _private_mounts(tmp_bytes)
        _close_descriptors(keep={connection.fileno()})
        _drop_capabilities()
        # Last: the mounts above are the session's last; from here on mount, unshare, ptrace and co. fail with EPERM.
        _install_seccomp(seccomp)
        os.environ["MPLCONFIGDIR"] = kernel.MPL_DIR
        matplotlib = sys.modules["matplotlib"]
        modules["matplotlib.pyplot"].close("all")
        matplotlib.rc_file_defaults()
        matplotlib.use("Agg")
        fd = connection.detach()
        kernel._take_protocol_fds(fd, fd)
        os.close(fd)
        kernel.serve(modules, {"op": "ready", "token": token})
    except BaseException:  # noqa: BLE001 - a kernel that cannot start ends; the service sees its socket close
        os._exit(71)
    os._exit(0)


def _first_child(token, tmp_bytes, modules, seccomp):
    """Unshares the session's namespaces, spawns its init (pid 1), forks its kernel (pid 2), becomes its watcher."""
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    # SIGTERM (the zygote ending the session) waits until the watcher's handler exists.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
    # The session's init and watcher keep only /dev/null on 0-2, not the zygote's log pipe.
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 2)
    os.close(devnull)
    _enter_namespaces()
    # Inherited by everything started from here: nothing regains a capability through exec.
    _check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    init = os.posix_spawn(SESSION_INIT, [SESSION_INIT, "init"], {}, setsid=True)
    try:
        child = os.fork()
        if child == 0:
            _session_kernel(token, tmp_bytes, modules, seccomp)
        os.execve(SESSION_INIT, [SESSION_INIT, "watch", str(init), str(child)], {})
    except BaseException:
        # Without its watcher nothing would ever end this session: end it now.
        os.kill(init, signal.SIGKILL)
        raise


def _spawn_session(token, tmp_bytes, modules, seccomp):
    """Forks a session; returns the pid of its watcher, the zygote's child that reports the session's end."""
    watcher = os.fork()
    if watcher == 0:
        log = os.dup(2)
        try:
            _first_child(token, tmp_bytes, modules, seccomp)
        except BaseException as error:  # noqa: BLE001 - the zygote reports the exit; the service's log shows why
            os.write(log, f"toolplane zygote: a session could not start: {error}\n".encode())
        os._exit(SETUP_FAILED)
    return watcher


def _reap(sessions):
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        if sessions.pop(pid, None) is None:
            continue
        code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
        ended_by = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        if code is not None and code > 128:
            code, ended_by = None, code - 128
        kernel.write_frame({"op": "exited", "pid": pid, "code": code, "signal": ended_by})


def main():
    argv = sys.argv
    tmp_bytes = int(argv[argv.index("--tmp-bytes") + 1])
    with open(SECCOMP_PROGRAM, "rb") as handle:
        seccomp = handle.read()
    kernel._prepare_matplotlib(False)
    modules = kernel._import_libraries(kernel.preload_argument(argv))
    # Objects that exist now are never collected: the collector would otherwise write to every
    # page of them in each kernel and undo the copy-on-write sharing.
    gc.collect()
    gc.freeze()
    kernel._take_protocol_fds()
    threads = len(os.listdir("/proc/self/task"))
    if threads != 1 or threading.active_count() != 1:
        # fork() copies only the calling thread: a lock held by another one would stay locked in every kernel.
        raise RuntimeError(f"the zygote has {threads} threads after its imports; forking needs exactly one")
    # SCHED_BATCH (inherited by every session): a kernel woken by the service's request does not preempt the
    # service's event loop on its core (CFS skips wake-up preemption for batch tasks). In a burst of CreateSession the
    # service writes to hundreds of kernels in a row; preempted at each write, its loop lost ~1/3 of its time.
    os.sched_setscheduler(0, os.SCHED_BATCH, os.sched_param(0))
    wake_read, wake_write = os.pipe()
    os.set_blocking(wake_write, False)
    signal.set_wakeup_fd(wake_write)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    # pid -> token of live sessions: a kill names both, so a late kill never hits a new session that reused the pid.
    sessions = {}
    kernel.write_frame({"op": "ready", "pid": os.getpid()})
    while True:
        readable, _, _ = select.select([kernel._proto_in, wake_read], [], [])
        if wake_read in readable:
            os.read(wake_read, 4096)
            _reap(sessions)
        if kernel._proto_in not in readable:
            continue
        header, _ = kernel.read_frame()
        if header is None:
            return
        op = header.get("op")
        if op == "fork":
            try:
                pid = _spawn_session(header["token"], tmp_bytes, modules, seccomp)
            except OSError as error:  # fork itself failed (memory, process limit): the service's failure
                kernel.write_frame({"op": "fork_failed", "token": header["token"], "message": str(error)})
            else:
                sessions[pid] = header["token"]
                kernel.write_frame({"op": "forked", "token": header["token"], "pid": pid})
        elif op == "kill" and sessions.get(header.get("pid")) == header.get("token"):
            try:
                os.kill(header["pid"], signal.SIGTERM)
            except ProcessLookupError:
                pass
        _reap(sessions)


if __name__ == "__main__":
    main()
