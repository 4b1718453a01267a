# expect: failure
# Killing one's own interpreter is never reported as a silent success.
import os
os._exit(0)
