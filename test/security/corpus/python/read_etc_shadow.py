# expect: contained
# Host secrets: /etc/shadow must not be readable (not bound, or not readable by the sandbox uid).
try:
    data = open("/etc/shadow").read()
    if "root:" in data:
        print("ESCAPED shadow", data[:40])
except OSError as error:
    print("blocked:", type(error).__name__)
