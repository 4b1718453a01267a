# expect: contained
# Raw sockets need CAP_NET_RAW.
import socket
try:
    socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    print("ESCAPED raw socket")
except (OSError, AttributeError) as error:
    print("blocked:", type(error).__name__)
