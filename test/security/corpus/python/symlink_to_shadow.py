# expect: contained
# Symlink escape: a link in tmp must not reach a file the sandbox cannot see directly.
import os
try:
    os.symlink("/etc/shadow", "/tmp/link")
    data = open("/tmp/link").read()
    if "root:" in data:
        print("ESCAPED", data[:20])
except OSError as error:
    print("blocked:", type(error).__name__)
