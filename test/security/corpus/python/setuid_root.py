# expect: contained
# Privilege: the sandbox uid cannot become root.
import os
try:
    os.setuid(0)
    if os.getuid() == 0:
        print("ESCAPED uid 0")
except OSError as error:
    print("blocked:", type(error).__name__, os.getuid())
