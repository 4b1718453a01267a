# expect: contained
# /proc must not tell the code where the service lives: not in pid 1's command line or environment (pid 1 of a
# sandbox could be bubblewrap, whose arguments name the files it binds), nor in the mount table (a bind mount
# names its host source). {{REPO_ROOT}} is the repository the service runs from.
REPO_ROOT = "{{REPO_ROOT}}"
checked = []
for path in (
    "/proc/1/cmdline",
    "/proc/1/environ",
    "/proc/1/mountinfo",
    "/proc/self/cmdline",
    "/proc/self/environ",
    "/proc/self/mountinfo",
    "/proc/self/mounts",
):
    try:
        with open(path, "rb") as handle:
            text = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError as error:
        print(f"{path}: unreadable ({error.strerror})")
        continue
    checked.append(path)
    if REPO_ROOT in text:
        line = next(line for line in text.splitlines() if REPO_ROOT in line)
        print(f"ESCAPED: {path} names the host path {REPO_ROOT}: {line[:200]}")
print("checked", checked)
