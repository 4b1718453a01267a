# expect: model-error RESOURCE_EXHAUSTED|DEADLINE_EXCEEDED|ABORTED
# Process limit: a fork bomb must fail inside the sandbox, not take the host down.
import os
children = []
while True:
    children.append(os.fork())
    if children[-1] == 0:
        while True:
            pass
