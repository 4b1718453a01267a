# expect: contained
# ptrace of another process (pid 1 of the namespace) must be refused.
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
PTRACE_ATTACH = 16
if libc.ptrace(PTRACE_ATTACH, 1, None, None) == 0:
    print("ESCAPED ptrace attach")
else:
    print("blocked: errno", ctypes.get_errno())
