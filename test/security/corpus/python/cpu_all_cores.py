# expect: model-error DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED|ABORTED
# CPU: busy loops on every core are stopped by the wall/CPU limits.
import os
for _ in range(8):
    if os.fork() == 0:
        while True:
            pass
while True:
    pass
