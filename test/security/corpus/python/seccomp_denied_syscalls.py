# expect: contained
# Calls the seccomp filter denies (docs/security.md, "Seccomp"): each must fail with EPERM (an OSError for the
# code), never succeed and never kill the interpreter. Numbers are x86_64's; other machines skip with a note.
import ctypes
import errno
import os
import platform

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
CLONE_NEWUSER, CLONE_NEWNET, SIGCHLD = 0x10000000, 0x40000000, 17
ADDR_NO_RANDOMIZE = 0x0040000
DENIED = {
    "ptrace(PTRACE_ATTACH, 1)": (101, 16, 1, 0, 0),
    "process_vm_readv": (310, 1, 0, 0, 0, 0, 0),
    "process_vm_writev": (311, 1, 0, 0, 0, 0, 0),
    "keyctl": (250, 0, 0, 0, 0),
    "add_key": (248, 0, 0, 0, 0, 0),
    "request_key": (249, 0, 0, 0, 0),
    "bpf": (321, 0, 0, 0),
    "userfaultfd": (323, 0),
    "perf_event_open": (298, 0, 0, -1, -1, 0),
    "kexec_load": (246, 0, 0, 0, 0),
    "kexec_file_load": (320, -1, -1, 0, 0, 0),
    "init_module": (175, 0, 0, 0),
    "finit_module": (313, -1, 0, 0),
    "mount": (165, 0, 0, 0, 0, 0),
    "umount2(/tmp)": (166, ctypes.c_char_p(b"/tmp"), 2),
    "pivot_root": (155, 0, 0),
    "unshare(CLONE_NEWUSER)": (272, CLONE_NEWUSER),
    "setns": (308, 0, 0),
    "clone(CLONE_NEWUSER)": (56, CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
    "clone(CLONE_NEWNET)": (56, CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0),
    "personality(ADDR_NO_RANDOMIZE)": (135, ADDR_NO_RANDOMIZE),
    "io_uring_setup": (425, 1, 0),
    "open_by_handle_at": (304, -1, 0, 0),
}
if platform.machine() != "x86_64":
    print(f"skipped: syscall numbers here are x86_64's, this is {platform.machine()}")
else:
    for name, (number, *args) in DENIED.items():
        result = libc.syscall(number, *args)
        if result == 0 and name.startswith("clone"):
            os._exit(0)  # the child of a clone that should not have happened
        err = ctypes.get_errno()
        if result != -1 or err != errno.EPERM:
            print(f"ESCAPED: {name} returned {result}, errno {errno.errorcode.get(err, err)}")
        else:
            print(f"{name}: EPERM")
    # What model code sees: an OSError it can catch.
    try:
        os.sched_setaffinity(0, os.sched_getaffinity(0))  # allowed: the filter is not a blanket
        if libc.syscall(101, 16, 1, 0, 0) == -1:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    except PermissionError as error:
        print("ptrace as OSError:", error)
    # Allowed calls still work: threads and processes (clone without namespace flags), the default personality.
    import subprocess
    import threading

    worker = threading.Thread(target=lambda: None)
    worker.start()
    worker.join()
    print("threads ok; subprocess:", subprocess.run(["echo", "ok"], capture_output=True, text=True).stdout.strip())
    print("personality(PER_LINUX):", libc.syscall(135, 0))
