# expect: contained
# No route out, even for connectionless traffic.
import socket
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
try:
    sock.sendto(b"x", ("192.0.2.1", 53))
    print("ESCAPED datagram sent")
except OSError as error:
    print("blocked:", type(error).__name__)
