# expect: contained
# Secrets via /proc: no process visible from inside may expose the host environment.
import glob
for path in glob.glob("/proc/[0-9]*/environ"):
    try:
        data = open(path, "rb").read()
    except OSError:
        continue
    if b"TOOLPLANE" in data or b"HOME=/root" in data:
        print("ESCAPED", path)
