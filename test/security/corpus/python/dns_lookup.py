# expect: contained
# No DNS.
import socket
try:
    address = socket.gethostbyname("example.com")
    print("ESCAPED resolved", address)
except OSError as error:
    print("blocked:", type(error).__name__)
