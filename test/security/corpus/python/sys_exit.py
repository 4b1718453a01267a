# expect: contained
# SystemExit from model code ends the cell, not the kernel.
import sys
sys.exit(3)
