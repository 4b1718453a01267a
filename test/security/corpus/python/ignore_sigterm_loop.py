# expect: model-error DEADLINE_EXCEEDED|RESOURCE_EXHAUSTED
# A timeout must not depend on the code's cooperation.
import signal
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, signal.SIG_IGN)
while True:
    pass
