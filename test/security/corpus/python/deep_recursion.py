# expect: failure
# Unbounded recursion with the limit lifted may crash the interpreter; it must be reported, not hidden.
import sys
sys.setrecursionlimit(10**7)
def dive(n):
    return dive(n + 1) + 1
dive(0)
