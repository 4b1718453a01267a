# expect: contained
# Signals and ptrace toward every pid there could be: the zygote, its other sessions and the service must be
# out of reach (the harness then checks that the canary session kept its state and a new session starts).
import ctypes, os, signal
libc = ctypes.CDLL(None, use_errno=True)
own = {int(tid) for tid in os.listdir("/proc/self/task")}
reached = []
for pid in range(1, 32768):
    if pid in own:
        continue
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass
    else:
        if pid != 1:  # pid 1 is this session's own init: the kill is accepted and ignored
            reached.append(pid)
    if libc.ptrace(16, pid, None, None) == 0:  # PTRACE_ATTACH
        print("ESCAPED ptrace attached to", pid)
if reached:
    print("ESCAPED signalled pids", reached[:10])
