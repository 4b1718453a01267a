# expect: contained
# Kernel settings must not be writable from inside.
for path in ("/proc/sys/kernel/hostname", "/proc/sys/vm/drop_caches", "/proc/sysrq-trigger"):
    try:
        with open(path, "w") as handle:
            handle.write("1")
        print("ESCAPED", path)
    except OSError as error:
        print("blocked:", path, type(error).__name__)
