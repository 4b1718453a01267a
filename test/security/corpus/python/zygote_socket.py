# expect: contained
# The service's kernel socket (how forked kernels reach the service) must be out of sight in a session: a session
# that could connect could pose as a new kernel.
import os, socket
for directory in ("/opt/toolplane/socket", "/run/toolplane"):
    try:
        names = os.listdir(directory)
    except OSError:
        continue
    for name in names:
        path = os.path.join(directory, name)
        try:
            client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            client.connect(path)
            print("ESCAPED connected to", path)
        except OSError:
            pass
sockets = set()
for fd in os.listdir("/proc/self/fd"):
    try:
        target = os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        continue
    if target.startswith("socket:"):
        sockets.add(target)
if len(sockets) > 1:
    # The kernel's own channel is one socket (read and write descriptors); another would be inherited.
    print("ESCAPED inherited sockets:", sorted(sockets))
