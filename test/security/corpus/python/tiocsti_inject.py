# expect: contained
# Terminal injection into the parent's tty (CVE-2017-5226) is stopped by a new session.
import fcntl, termios
try:
    fcntl.ioctl(0, termios.TIOCSTI, b"x")
    print("ESCAPED TIOCSTI accepted")
except OSError as error:
    print("blocked:", type(error).__name__)
