# expect: truncated
# Output cap: 100 MB of stdout comes back cut, with the marker, not as 100 MB.
import sys
chunk = "x" * (1024 * 1024)
for _ in range(100):
    sys.stdout.write(chunk)
