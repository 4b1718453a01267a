# expect: contained
# Read-only system: writing outside the private tmp must fail.
for path in ("/usr/lib/toolplane-owned", "/etc/toolplane-owned", "/toolplane-owned", "/bin/toolplane-owned"):
    try:
        with open(path, "w") as handle:
            handle.write("owned")
        print("ESCAPED", path)
    except OSError as error:
        print("blocked:", path, type(error).__name__)
