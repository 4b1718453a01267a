# expect: contained
# Reaches the kernel's own image list and appends junk, SVG and a 256-megapixel PNG: the code service drops
# each with a note in stderr (the call stays OK); none is an infrastructure error.
import gc, struct, zlib
k = next(o for o in gc.get_objects() if type(o).__name__ == "Kernel")
k.images.append(b"\x89PNG\r\n\x1a\n" + b"junk" * 100)
k.images.append(b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
c = zlib.compressobj(1)
row = b"\x00" * (16000 // 8 + 1)
raw = b"".join(c.compress(row) for _ in range(16000)) + c.flush()
k.images.append(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 16000, 16000, 1, 0, 0, 0, 0)) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))
