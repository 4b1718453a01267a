# expect: contained
# PID namespace: only the session's own processes are visible (no node, no nats-server, no zygote, no other
# sessions' kernels): its init (bubblewrap, or session-init for a kernel forked from the zygote) and itself.
import glob, os
for path in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        argv0 = os.path.basename(open(path, "rb").read().split(b"\0")[0])
    except OSError:
        continue
    if argv0 not in (b"bwrap", b"session-init", b"python3", b"sleep", b""):
        print("ESCAPED", path, argv0)
    if argv0 == b"python3" and open(path, "rb").read().count(b"zygote.py") and path != f"/proc/{os.getpid()}/cmdline":
        print("ESCAPED another interpreter forked from the zygote is visible:", path)
