# expect: contained
# PID namespace: only the sandbox's own processes are visible (no node, no nats-server, no other sessions' kernels).
import glob, os
for path in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        argv0 = os.path.basename(open(path, "rb").read().split(b"\0")[0])
    except OSError:
        continue
    if argv0 not in (b"bwrap", b"python3", b"sleep", b""):
        print("ESCAPED", path, argv0)
