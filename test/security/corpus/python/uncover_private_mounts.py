# expect: contained
# A session's /tmp, /dev/shm and /proc are mounts over the zygote's: unmounting one would reveal what is shared by
# every session of the zygote (or the host's /proc). No capability is left to do it.
import ctypes
libc = ctypes.CDLL(None, use_errno=True)
MNT_DETACH = 2
for target in (b"/tmp", b"/dev/shm", b"/proc", b"/opt/toolplane/socket", b"/proc/sys"):
    if libc.umount2(target, MNT_DETACH) == 0:
        print("ESCAPED unmounted", target)
if libc.mount(b"none", b"/", None, 0x20 | 0x1000, None) == 0:
    print("ESCAPED remounted /")
