# expect: contained
# Secrets: the sandbox environment must not carry the service's variables.
import os
leaked = [k for k in os.environ if k.startswith("TOOLPLANE") or any(s in k for s in ("KEY", "TOKEN", "SECRET", "PASSWORD", "NATS", "OTEL"))]
if leaked:
    print("ESCAPED", leaked)
print("environment size", len(os.environ))
