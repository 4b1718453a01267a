# expect: model-error RESOURCE_EXHAUSTED|ABORTED|DEADLINE_EXCEEDED
# A single huge numpy allocation is refused by the address-space limit.
import numpy as np
a = np.ones((200_000, 200_000), dtype=np.float64)
print("ESCAPED allocated", a.nbytes)
