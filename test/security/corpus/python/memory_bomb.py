# expect: model-error RESOURCE_EXHAUSTED|ABORTED|DEADLINE_EXCEEDED
# Memory limit: allocation beyond the cap fails with MemoryError or a kill, reported as the model's fault.
blocks = []
while True:
    blocks.append(bytearray(256 * 1024 * 1024))
