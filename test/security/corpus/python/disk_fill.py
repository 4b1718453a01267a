# expect: model-error RESOURCE_EXHAUSTED|ABORTED|DEADLINE_EXCEEDED
# File size limit: filling the private tmp is stopped.
with open("/tmp/fill", "wb") as handle:
    chunk = b"\0" * (16 * 1024 * 1024)
    for _ in range(1024):
        handle.write(chunk)
print("ESCAPED wrote 16 GiB")
