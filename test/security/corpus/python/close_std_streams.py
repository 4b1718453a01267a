# expect: contained
# Breaking the interpreter's own streams must not break the session for the next cell.
import sys, os
sys.stdout = None
sys.stderr = None
