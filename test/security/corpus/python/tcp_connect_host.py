# expect: contained
# The host's loopback (where the gateway and services listen) must be unreachable.
import socket
for port in ({{LISTENER_PORT}}, 50051, 50052, 50053, 50054, 4222):
    sock = socket.socket()
    sock.settimeout(1)
    try:
        sock.connect(("127.0.0.1", port))
        print("ESCAPED connected to", port)
    except OSError as error:
        print("blocked:", port, type(error).__name__)
    finally:
        sock.close()
