# expect: contained
# A nested user namespace would give the code fresh capabilities to work with.
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
CLONE_NEWUSER = 0x10000000
if libc.unshare(CLONE_NEWUSER) == 0:
    # Even when nested namespaces are allowed, mounting the host's root must stay impossible.
    import os
    if os.path.exists("/work") or os.path.exists("/root/.npm"):
        print("ESCAPED host visible after unshare")
    print("unshare allowed, nothing reachable")
else:
    print("blocked: errno", ctypes.get_errno())
