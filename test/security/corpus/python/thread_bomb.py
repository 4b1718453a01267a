# expect: model-error RESOURCE_EXHAUSTED|ABORTED|DEADLINE_EXCEEDED
# Thread limit: threads count against the process limit.
import threading, time
threads = []
while True:
    thread = threading.Thread(target=time.sleep, args=(60,))
    thread.start()
    threads.append(thread)
