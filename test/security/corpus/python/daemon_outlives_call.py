# expect: contained
# Persistence: a detached process must not survive its session (checked from the host after close).
import os
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        os.execv("/bin/sleep", ["sleep", "31337"])
    os._exit(0)
print("daemon started")
