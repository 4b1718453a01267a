# expect: contained
# Network namespace: loopback only.
import os
interfaces = os.listdir("/sys/class/net") if os.path.isdir("/sys/class/net") else []
if [name for name in interfaces if name != "lo"]:
    print("ESCAPED interfaces", interfaces)
print("interfaces", interfaces)
