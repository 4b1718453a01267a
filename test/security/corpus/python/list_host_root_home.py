# expect: contained
# Host files: the host's home directories must not exist inside the sandbox.
import os
for path in ("/root", "/home", "/work", "/var/lib", "/srv"):
    try:
        entries = os.listdir(path)
        if entries:
            print("ESCAPED", path, entries[:5])
    except OSError as error:
        print("blocked:", path, type(error).__name__)
