# expect: contained
# PID namespace: only the sandbox's own processes are visible (no node, no other sessions' kernels).
import glob
for path in glob.glob("/proc/[0-9]*/cmdline"):
    try:
        cmd = open(path, "rb").read().replace(b"\0", b" ")
    except OSError:
        continue
    if b"node" in cmd or b"nats-server" in cmd or b"services/" in cmd:
        print("ESCAPED", path, cmd[:80])
