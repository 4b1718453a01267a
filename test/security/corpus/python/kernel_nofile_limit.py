# expect: contained
# A descriptor limit lowered below what the kernel needs after the cell (figure capture, reaping): the model's doing.
import resource
import matplotlib.pyplot as plt
resource.setrlimit(resource.RLIMIT_NOFILE, (3, 3))
plt.plot([1, 2])
plt.show()
