# expect: contained
# Mounting needs capabilities the sandbox dropped.
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
os.makedirs("/tmp/mnt", exist_ok=True)
result = libc.mount(b"none", b"/tmp/mnt", b"tmpfs", 0, None)
if result == 0:
    print("ESCAPED mount succeeded")
else:
    print("blocked: errno", ctypes.get_errno())
