# expect: contained
# Sessions do not share tmp: a file another session wrote is not visible here.
import os, glob
if glob.glob("/tmp/toolplane-secret-*"):
    print("ESCAPED other session's file", glob.glob("/tmp/toolplane-secret-*"))
