# expect: contained
# The classic chroot escape needs CAP_SYS_CHROOT.
import os
try:
    os.makedirs("/tmp/jail", exist_ok=True)
    os.chroot("/tmp/jail")
    print("ESCAPED chroot allowed")
except OSError as error:
    print("blocked:", type(error).__name__)
