"""toolplane Python kernel: one stateful interpreter inside a bubblewrap sandbox.

It speaks framed messages over its stdin/stdout pipes with the Node service
(python/framing.ts describes the frame layout). The heavy imports happen once,
before the "ready" frame, so a warm kernel taken from the pool starts running
model code at once. Model code never sees the protocol pipes: they are moved to
private descriptors and fd 0/1 point at /dev/null before any cell runs.
"""

import ast
import builtins
import errno
import io
import json
import linecache
import mmap
import os
import resource
import shutil
import signal
import struct
import sys
import textwrap
import threading
import time
import traceback
import types

FONT_CACHE_SOURCE = "/opt/toolplane/mplcache"
MPL_DIR = "/tmp/.matplotlib"
HEADER = struct.Struct(">II")
KERNEL_FILE = os.path.abspath(__file__)
# Returned images: each at most this many pixels, all of one call at most this many PNG bytes, so a reply
# always fits the services' 64 MiB gRPC messages.
MAX_IMAGE_PIXELS = 50_000_000
MAX_IMAGE_BYTES = 48 * 1024 * 1024

_proto_in = None
_proto_out = None


def _take_protocol_fds(read_fd=0, write_fd=1):
    """Moves the protocol channel to private descriptors and points fd 0/1 at /dev/null.

    The channel is the sandbox's stdin/stdout, or (a kernel forked by the zygote) its own socket.
    """
    global _proto_in, _proto_out
    # os.dup() returns non-inheritable descriptors, so subprocesses of model code never get them.
    _proto_in = os.fdopen(os.dup(read_fd), "rb", buffering=0)
    _proto_out = os.dup(write_fd)
    devnull = os.open(os.devnull, os.O_RDWR)
    os.dup2(devnull, 0)
    os.dup2(devnull, 1)
    os.close(devnull)


def _read_exact(size):
    chunks = []
    remaining = size
    while remaining:
        chunk = _proto_in.read(remaining)
        if not chunk:
            return None
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


# Blob sections at least this large are read into memory mapped with MAP_POPULATE.
_POPULATE_MIN_BYTES = 1024 * 1024


def _fresh_buffer(size):
    """A writable buffer for a frame's blobs.

    Large ones are mapped with MAP_POPULATE, so the kernel faults every page in at once: in a VM, one fault per
    page as a copy first touches it costs ~3 ms per 6 MB, the bulk of a restore. A restored checkpoint's arrays
    then live in this buffer, without another copy.
    """
    if size >= _POPULATE_MIN_BYTES and hasattr(mmap, "MAP_POPULATE"):
        return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS | mmap.MAP_POPULATE)
    return bytearray(size)


def _read_blobs(size):
    """The frame's blob section, read in place (one buffer, no joins): a writable memoryview, or None at EOF."""
    view = memoryview(_fresh_buffer(size))
    filled = 0
    while filled < size:
        count = _proto_in.readinto(view[filled:])
        if not count:
            return None
        filled += count
    return view


def read_frame():
    head = _read_exact(HEADER.size)
    if head is None:
        return None, []
    json_len, blob_len = HEADER.unpack(head)
    header = json.loads(_read_exact(json_len))
    data = _read_blobs(blob_len) if blob_len else memoryview(b"")
    if data is None:
        return None, []
    # Slices of one buffer (memoryviews: no copies); the service's frames are well formed.
    blobs = []
    offset = 0
    for length in header.get("blobs", []):
        blobs.append(data[offset : offset + length])
        offset += length
    return header, blobs


def write_frame(header, blobs=()):
    header = dict(header, blobs=[len(blob) for blob in blobs])
    encoded = json.dumps(header).encode("utf-8")
    payload = b"".join([HEADER.pack(len(encoded), sum(len(b) for b in blobs)), encoded, *blobs])
    view = memoryview(payload)
    while view:
        written = os.write(_proto_out, view)
        view = view[written:]


# Guards the cell's captures, written by model code and by the descriptor pumps. Replaced in forked
# children, which may have been forked while a pump held it.
_capture_lock = threading.Lock()


def _after_fork_in_child():
    global _capture_lock
    _capture_lock = threading.Lock()
    # A forked child (a multiprocessing worker, say) would print into its copy of the cell's capture, which
    # nobody reads: its sys.stdout/sys.stderr go to descriptors 1 and 2 instead, which the pumps forward.
    for name, fd in (("stdout", 1), ("stderr", 2)):
        if isinstance(getattr(sys, name), CappedText):
            raw = io.FileIO(fd, "w", closefd=False)
            setattr(sys, name, io.TextIOWrapper(raw, encoding="utf-8", errors="replace", write_through=True))


FLUSH_MARKER = b"\0toolplane-flush\0"


def time_limit_message(timeout_ms):
    # The code service's wording for the same limit (services/code/src/texts.ts timeLimitExceeded): one text per limit.
    return f"execution exceeded the time limit of {timeout_ms} ms"


class FdPump:
    """Forwards what C code and subprocesses write to descriptor 1 or 2 into the running cell's capture.

    During a cell the descriptor is a pipe read by this thread; between cells it
    points back where it pointed before (/dev/null for 1, the service's log pipe
    for 2). A marker written through the pipe at the end of a cell tells when
    everything written before it has been forwarded.
    """

    def __init__(self, fd):
        self.fd = fd
        self.between_cells = os.dup(fd)
        self.read_end, self.write_end = os.pipe()
        self.target = None
        self.flushed = threading.Event()
        threading.Thread(target=self._pump, name=f"toolplane-fd{fd}", daemon=True).start()

    def begin(self, target):
        self.target = target
        os.dup2(self.write_end, self.fd)

    def end(self):
        os.dup2(self.between_cells, self.fd)
        self.flushed.clear()
        os.write(self.write_end, FLUSH_MARKER)
        self.flushed.wait(1.0)
        self.target = None

    def _pump(self):
        pending = b""
        keep = len(FLUSH_MARKER) - 1
        while True:
            chunk = os.read(self.read_end, 65536)
            if not chunk:
                return
            pending += chunk
            index = pending.find(FLUSH_MARKER)
            while index >= 0:
                self._emit(pending[:index])
                pending = pending[index + len(FLUSH_MARKER) :]
                self.flushed.set()
                index = pending.find(FLUSH_MARKER)
            if len(pending) > keep:
                # Hold back what could be the start of a marker split across reads.
                self._emit(pending[:-keep])
                pending = pending[-keep:]

    def _emit(self, data):
        target = self.target
        if data and target is not None:
            target.write_bytes(data)


class CappedText(io.TextIOBase):
    """A text stream that keeps the first `cap` UTF-8 bytes and counts the rest.

    Output belongs to the cell that produced it: Python-level writes (print, sys.stdout.write) from threads
    that were already running when the cell began (threads an earlier cell left behind) are dropped, so a
    background thread cannot write into a later cell's output. Writes through descriptors 1 and 2 (C code,
    os.write) cannot be told apart by thread and go to the running cell.
    """

    def __init__(self, cap, foreign_threads=frozenset()):
        super().__init__()
        self.cap = cap
        self.parts = []
        self.size = 0
        self.dropped = 0
        self.foreign_threads = foreign_threads

    @property
    def encoding(self):
        return "utf-8"

    def writable(self):
        return True

    def isatty(self):
        return False

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        if threading.get_ident() in self.foreign_threads:
            return len(text)
        self.write_bytes(text.encode("utf-8", "replace"))
        return len(text)

    def write_bytes(self, data):
        with _capture_lock:
            room = self.cap - self.size
            if room > 0:
                kept = data[:room]
                self.parts.append(kept)
                self.size += len(kept)
                self.dropped += len(data) - len(kept)
            else:
                self.dropped += len(data)

    def text(self, stream_name):
        value = b"".join(self.parts).decode("utf-8", "ignore")
        if self.dropped:
            value += (
                f"\n[{stream_name} truncated: {self.dropped} more bytes not shown;"
                f" the cap is {self.cap} bytes (max_output_bytes)]\n"
            )
        return value


# Raised into model code when its wall time is over. A BaseException so `except Exception` does not swallow it;
# named TimeoutError (module builtins) so the traceback reads like Python's own.
CellTimeout = type("TimeoutError", (BaseException,), {"__module__": "builtins"})


class Kernel:
    def __init__(self, modules):
        self.np = modules["numpy"]
        self.Image = modules["PIL.Image"]
        self.ImageOps = modules["PIL.ImageOps"]
        self.plt = modules["matplotlib.pyplot"]
        self.Figure = modules["matplotlib.figure"].Figure
        # Names model code habitually uses without importing (the DeepEyesV2 prompts show them in use);
        # the modules are loaded in the warm interpreter anyway, so binding them costs nothing.
        self.preset_names = {
            "np": self.np,
            "Image": self.Image,
            "plt": self.plt,
            "math": modules["math"],
        }
        if "cv2" in sys.modules:
            self.preset_names["cv2"] = sys.modules["cv2"]
        self.bound_images = {}
        self.namespace = {}
        self.cell = 0
        self.in_user_code = False
        self.timed_out = False
        self.timeout_ms = 0
        self.main_pid = os.getpid()
        self.images = []
        self.image_bytes = 0
        self.max_images = 0
        self.images_dropped = False
        self.pumps = (FdPump(1), FdPump(2))
        self.checkpoints = _Checkpoints(self)
        self._patch_display_hooks()
        signal.signal(signal.SIGALRM, self._on_time_limit)

    # ---- images -----------------------------------------------------------------

    def _patch_display_hooks(self):
        kernel = self
        plt = self.plt

        def show(*_args, **_kwargs):
            kernel.capture_figures()

        def figure_show(fig, *_args, **_kwargs):
            kernel.add_figure(fig)

        def image_show(image, *_args, **_kwargs):
            kernel.add_pil(image)

        plt.show = show
        self.Figure.show = figure_show
        # PIL's Image.show() would try to launch a viewer; in the sandbox it returns the image instead.
        self.Image.Image.show = image_show

    def display(self, *objects):
        for obj in objects:
            if isinstance(obj, self.Image.Image):
                self.add_pil(obj)
            elif isinstance(obj, self.Figure):
                self.add_figure(obj)
            elif isinstance(obj, self.np.ndarray):
                try:
                    image = self.Image.fromarray(obj)
                except (TypeError, ValueError):
                    print(repr(obj))
                else:
                    self.add_pil(image)
            else:
                print(repr(obj))

    def _room_for_image(self, width, height):
        if len(self.images) >= self.max_images:
            self.images_dropped = True
            return False
        if width * height > MAX_IMAGE_PIXELS:
            self.images_dropped = True
            sys.stderr.write(
                f"[image dropped: {width}x{height} is above the {MAX_IMAGE_PIXELS} pixel limit of returned images]\n"
            )
            return False
        return True

    def _keep(self, png):
        if self.image_bytes + len(png) > MAX_IMAGE_BYTES:
            self.images_dropped = True
            sys.stderr.write(f"[image dropped: the images of one call are limited to {MAX_IMAGE_BYTES} bytes of PNG]\n")
            return
        self.image_bytes += len(png)
        self.images.append(png)

    def add_pil(self, image):
        if not self._room_for_image(image.width, image.height):
            return
        buffer = io.BytesIO()
        try:
            image.save(buffer, format="PNG", compress_level=1)
        except (OSError, ValueError):
            # Modes PNG cannot store (CMYK, YCbCr, F, ...) go through RGB.
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="PNG", compress_level=1)
        self._keep(buffer.getvalue())

    def add_figure(self, fig):
        size = self._figure_output_size(fig)
        if size is None or not self._room_for_image(*size):
            return
        buffer = io.BytesIO()
        try:
            fig.savefig(buffer, format="png")
        except MemoryError:
            self.images_dropped = True
            sys.stderr.write(f"[image dropped: rendering the {size[0]}x{size[1]} figure ran out of memory]\n")
            return
        self._keep(buffer.getvalue())

    def _figure_output_size(self, fig):
        """The PNG size savefig will produce, known before rendering: the effective savefig dpi (rcParams may
        say something else than fig.dpi) and, for bbox "tight", the tight box. None (with a note) when even
        laying the figure out would be over the pixel limit."""
        canvas_size = (fig.get_size_inches() * fig.dpi).round().astype(int).tolist()
        if not self._room_for_image(*canvas_size):
            return None
        rc = self.plt.rcParams
        dpi = rc["savefig.dpi"]
        dpi = fig.dpi if dpi == "figure" else float(dpi)
        inches = fig.get_size_inches()
        if rc["savefig.bbox"] == "tight":
            try:
                box = fig.get_tightbbox(fig.canvas.get_renderer())
                pad = float(rc["savefig.pad_inches"])
                inches = (box.width + 2 * pad, box.height + 2 * pad)
            except Exception:
                inches = fig.get_size_inches()
        width, height = (round(inches[0] * dpi), round(inches[1] * dpi))
        return (width, height)

    def capture_figures(self):
        plt = self.plt
        for number in plt.get_fignums():
            self.add_figure(plt.figure(number))
        plt.close("all")

    # ---- session state ----------------------------------------------------------

    def bind(self, header, blobs):
        limits = header["limits"]
        self._reseed(header.get("seed"))
        self.bound_images = {}
        for spec in header["images"]:
            image = self.Image.open(io.BytesIO(blobs[spec["blob"]]))
            image = self.ImageOps.exif_transpose(image)
            image.load()
            self.bound_images[spec["name"]] = image
        self._apply_limits(limits)
        self.reset_namespace()

    def _reseed(self, seed):
        """Gives the session its own random streams (a forked kernel starts with the zygote's).

        A caller's seed makes `random` and numpy's global generator reproduce the same
        streams; without one they are seeded from the kernel's entropy. `secrets`,
        `os.urandom`, `uuid4` and `numpy.random.default_rng()` read the kernel's
        entropy on every call and hold no state to inherit.
        """
        import random

        if seed is None:
            seed = int.from_bytes(os.urandom(8), "big")
        random.seed(seed)
        self.np.random.seed(seed % 2**32)

    def reset_namespace(self):
        # A real module registered as __main__ (as Jupyter does), so functions and classes defined in cells
        # can be pickled by reference, e.g. by multiprocessing.
        module = types.ModuleType("__main__")
        module.__dict__.update({"__builtins__": builtins, "display": self.display, **self.preset_names})
        for name, image in self.bound_images.items():
            module.__dict__[name] = image.copy()
        sys.modules["__main__"] = module
        self.namespace = module.__dict__

    def _apply_limits(self, limits):
        # Address space counts the ~600 MB of libraries the warm interpreter already maps,
        # so the model's budget is added on top of what is mapped now.
        mapped = _vm_size_bytes()
        address_space = mapped + limits["memory_mb"] * 1024 * 1024
        for which, value in (
            (resource.RLIMIT_AS, address_space),
            (resource.RLIMIT_NPROC, limits["max_processes"]),
            (resource.RLIMIT_FSIZE, limits["max_file_bytes"]),
            (resource.RLIMIT_NOFILE, limits["max_open_files"]),
        ):
            resource.setrlimit(which, (value, value))

    # ---- execution --------------------------------------------------------------

    def _on_time_limit(self, _signum, _frame):
        if not self.in_user_code or os.getpid() != self.main_pid:
            return
        self.timed_out = True
        # Fire again shortly in case the code swallows the exception with a bare except.
        signal.setitimer(signal.ITIMER_REAL, 0.1)
        raise CellTimeout(time_limit_message(self.timeout_ms))

    def execute(self, header):
        code = header["code"]
        indentation = header.get("fix_indentation")
        if indentation == "reference":
            code = reference_fix_indentation(code)
        elif indentation:
            code = fix_indentation(code)
        self.cell += 1
        filename = f"<cell-{self.cell}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        cap = header["max_output_bytes"]
        self.timeout_ms = header["timeout_ms"]
        self.max_images = header["max_images"]
        self.images = []
        self.image_bytes = 0
        self.images_dropped = False
        self.timed_out = False
        foreign = _threads_of_earlier_cells()
        stdout = CappedText(cap, foreign)
        stderr = CappedText(cap, foreign)
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = stdout, stderr
        for pump, capture in zip(self.pumps, (stdout, stderr)):
            pump.begin(capture)
        result = None
        failure = None
        phase = "compile"
        try:
            try:
                tree = compile(code, filename, "exec", ast.PyCF_ONLY_AST)
                last = None
                if tree.body and isinstance(tree.body[-1], ast.Expr):
                    last = ast.Expression(tree.body.pop().value)
                body = compile(tree, filename, "exec")
                tail = compile(last, filename, "eval") if last is not None else None
                phase = "run"
                self._arm_timer()
                self.in_user_code = True
                exec(body, self.namespace)
                if tail is not None:
                    value = eval(tail, self.namespace)
                    if value is not None:
                        result = _capped_repr(value, cap)
                        if isinstance(value, (self.Image.Image, self.Figure)):
                            self.display(value)
                self.capture_figures()
            finally:
                self.in_user_code = False
                self._disarm_timer()
        except BaseException as error:  # noqa: BLE001 - model code may raise anything, SystemExit included
            self._disarm_timer()
            if os.getpid() != self.main_pid:
                os._exit(1)
            failure = self._describe_failure(error, phase)
            try:
                self.capture_figures()
            except Exception:  # noqa: BLE001 - a broken figure must not hide the original error
                pass
        finally:
            # Between cells a thread the cell left running writes nowhere (not into a buffer the next cell flushes).
            sys.stdout, sys.stderr = _between_cells_stream(saved[0]), _between_cells_stream(saved[1])
        if os.getpid() != self.main_pid:
            # A forked child finished the cell: it must never speak on the protocol pipe.
            os._exit(0)
        if self.timed_out and failure is None:
            failure = {
                "code": "DEADLINE_EXCEEDED",
                "type": "TimeoutError",
                "message": time_limit_message(self.timeout_ms),
                "traceback": "",
            }
        for stream in (sys.__stdout__, sys.__stderr__):
            try:
                stream.flush()
            except (OSError, ValueError):
                pass
        _reap_stray_processes()
        for pump in self.pumps:
            pump.end()
        if failure is not None:
            # After the descriptor output, which the code wrote before it failed.
            stderr.write(failure["traceback"])
        response = {
            "op": "result",
            "stdout": stdout.text("stdout"),
            "stderr": stderr.text("stderr"),
            "stdout_truncated": stdout.dropped > 0,
            "stderr_truncated": stderr.dropped > 0,
            "images_truncated": self.images_dropped,
        }
        if result is not None:
            response["result"] = result
        if failure is not None:
            response["failure"] = failure
        images, self.images = self.images, []
        write_frame(response, images)

    def _arm_timer(self):
        # The CPU rlimit (cell budget + 2 s) backs the wall timer: during a cell SIGXCPU is a timeout;
        # between cells it keeps its default action, so a thread the model left burning CPU ends the
        # interpreter (the session then restarts from a fresh one and says so). Forked children inherit it.
        signal.signal(signal.SIGXCPU, self._on_time_limit)
        # Again at every cell: an earlier cell may have replaced the handler.
        signal.signal(signal.SIGALRM, self._on_time_limit)
        signal.setitimer(signal.ITIMER_REAL, self.timeout_ms / 1000)
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = int(used.ru_utime + used.ru_stime) + self.timeout_ms // 1000 + 2
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, hard))

    def _disarm_timer(self):
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGXCPU, signal.SIG_DFL)

    def _describe_failure(self, error, phase):
        if isinstance(error, CellTimeout) or self.timed_out:
            code = "DEADLINE_EXCEEDED"
            kind = "TimeoutError"
            message = time_limit_message(self.timeout_ms)
        else:
            kind = type(error).__name__
            message = str(error)
            if phase == "compile" and isinstance(error, SyntaxError):
                code = "INVALID_ARGUMENT"
            elif _is_resource_exhaustion(error):
                code = "RESOURCE_EXHAUSTED"
            else:
                code = "ABORTED"
        if phase == "compile":
            formatted = "".join(traceback.format_exception_only(type(error), error))
        else:
            # The kernel's own frames (the exec call, the timer handler) are noise to the model.
            summary = traceback.TracebackException(type(error), error, error.__traceback__)
            summary.stack = traceback.StackSummary.from_list(
                [frame for frame in summary.stack if frame.filename != KERNEL_FILE]
            )
            formatted = "".join(summary.format())
        return {"code": code, "type": kind, "message": message, "traceback": formatted}


class BetweenCells(io.TextIOBase):
    """sys.stdout/sys.stderr between cells: the kernel's own writes (its main thread) go where they always went;
    writes of threads a cell left running are dropped, so they never wait in a buffer that a later cell flushes."""

    def __init__(self, target, main_ident):
        super().__init__()
        self.target = target
        self.main_ident = main_ident

    @property
    def encoding(self):
        return getattr(self.target, "encoding", "utf-8")

    def writable(self):
        return True

    def write(self, text):
        if threading.get_ident() != self.main_ident:
            return len(text)
        return self.target.write(text)

    def flush(self):
        self.target.flush()


def _between_cells_stream(saved):
    return saved if isinstance(saved, BetweenCells) else BetweenCells(saved, threading.get_ident())


def _threads_of_earlier_cells():
    """Idents of the threads alive as a cell begins, except the one running it: their writes are not its."""
    return frozenset(sys._current_frames()) - {threading.get_ident()}


def _is_resource_exhaustion(error):
    if isinstance(error, MemoryError):
        return True
    if isinstance(error, OSError) and error.errno in (errno.EAGAIN, errno.EFBIG, errno.EMFILE, errno.ENOSPC):
        return True
    return isinstance(error, RuntimeError) and "can't start new thread" in str(error)


def _capped_repr(value, cap):
    text = repr(value)
    if len(text.encode("utf-8", "replace")) <= cap:
        return text
    kept = text.encode("utf-8", "replace")[:cap].decode("utf-8", "ignore")
    return f"{kept}\n[result truncated: the cap is {cap} bytes (max_output_bytes)]"


def _vm_size_bytes():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("VmSize missing from /proc/self/status")


def _reap_stray_processes():
    """Kills what the cell left running (background children, fork bombs) and waits until it is gone.

    The kernel is pid 2 in its own pid namespace (bubblewrap's init is pid 1), so
    kill(-1) reaches exactly the processes model code started. Repeated, because a
    process caught mid-fork can leave a child that the first sweep did not see.
    """
    own = os.getpid()
    for _attempt in range(200):
        try:
            os.kill(-1, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _reap_children()
        others = [pid for pid in os.listdir("/proc") if pid.isdigit() and int(pid) not in (1, own)]
        if not others:
            return
        time.sleep(0.005)


def _reap_children():
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


BLOCK_CONTINUATIONS = ("except", "elif", "else", "finally")


def fix_indentation(code):
    """Repairs the indentation of model code, as the DeepEyesV2 reference client does.

    Code that already compiles is returned unchanged (re-indenting valid code can
    change its meaning). Otherwise a uniform indent is removed; if that is not
    enough, every line is re-indented from block openers (`...:`) and block
    continuations (else/elif/except/finally), like the reference client.
    """
    if _compiles(code):
        return code
    dedented = textwrap.dedent(code).strip("\n")
    if _compiles(dedented):
        return dedented
    lines = [line.strip() for line in code.split("\n") if line.strip()]
    fixed = []
    depth = 0
    for line in lines:
        if line.startswith(BLOCK_CONTINUATIONS):
            depth = max(0, depth - 1)
        fixed.append("    " * depth + line)
        if line.endswith(":"):
            depth += 1
    return "\n".join(fixed)


def reference_fix_indentation(code):
    """DeepEyesV2's fix_python_indentation, as its environment runs it on every cell.

    Visual-Agent/DeepEyesV2 @ 0373e6e0c923110fd6ff807b30474d8184785562,
    reinforcement_learning/verl/workers/agent/envs/deepeyesv2/deepeyesv2.py: every line
    stripped and re-indented from `:` and else/elif/except/finally, then autopep8 with
    aggressive level 2; on any failure the code is left as it was. Without the autopep8
    package (Debian python3-autopep8) the re-indented code runs unformatted.
    """
    try:
        lines = [line.strip() for line in code.split("\n") if line.strip()]
        fixed = []
        depth = 0
        for line in lines:
            if any(line.startswith(keyword) for keyword in ["except", "elif", "else", "finally"]):
                depth = max(0, depth - 1)
            fixed.append("    " * depth + line)
            if line.endswith(":"):
                depth += 1
        dedented = textwrap.dedent("\n".join(fixed)).strip()
        try:
            import autopep8
        except ImportError:
            return dedented
        return autopep8.fix_code(dedented, options={"aggressive": 2})
    except Exception:
        return code


def _compiles(code):
    try:
        compile(code, "<fix>", "exec", ast.PyCF_ONLY_AST)
    except (SyntaxError, ValueError):
        return False
    return True


# ---- checkpoints ------------------------------------------------------------------
#
# A session's state as data (docs/code-python.md, Checkpoints). After a cell, the service asks for a checkpoint:
# the user namespace is pickled here, inside the sandbox (it is the model's objects, and their __reduce__ is the
# model's code), with cloudpickle so lambdas, functions and classes defined in cells travel by value. Input images
# the code left untouched travel by name and modules by import name, as persistent references; names that cannot
# be pickled (open files, sockets, generators, ...) are listed and left out. Restoring unpickles, here again, into
# a fresh interpreter that already has the images bound. To the service a checkpoint is opaque bytes.

CHECKPOINT_VERSION = 1

try:
    # Imported once in the zygote: forked kernels checkpoint and restore without paying its import (~5 ms).
    import cloudpickle  # noqa: F401
except ImportError:  # pragma: no cover - a checkpoint then reports checkpoint_failed naming the module
    pass
# Module attributes of __main__ that every fresh namespace has anyway.
_NAMESPACE_DUNDERS = frozenset(("__name__", "__doc__", "__package__", "__loader__", "__spec__", "__builtins__"))


class CheckpointTooLarge(Exception):
    pass


class _CappedBuffer(io.RawIOBase):
    """Collects pickle output and gives up as soon as it passes the session's checkpoint size limit."""

    def __init__(self, limit):
        super().__init__()
        self.limit = limit
        self.parts = []
        self.size = 0

    def writable(self):
        return True

    def count(self, nbytes):
        self.size += nbytes
        if self.size > self.limit:
            raise CheckpointTooLarge(self.size)

    def write(self, data):
        view = memoryview(data)
        self.count(view.nbytes)
        self.parts.append(view.tobytes())
        return view.nbytes


# A checkpoint is a container: MAGIC, the number of out-of-band buffers, then the pickle's length and each
# buffer's, then the pickle and the buffers, each buffer at a 64-byte aligned offset. Protocol 5 hands large
# buffers (numpy arrays) out of band, so a restore builds the arrays on the received bytes instead of copying
# them out of the pickle stream. A blob without MAGIC is a plain pickle (version 1 checkpoints).
_CONTAINER_MAGIC = b"TPCK"
_CONTAINER_COUNT = struct.Struct("<I")
_CONTAINER_LENGTH = struct.Struct("<Q")
_CONTAINER_ALIGN = 64


class _ViewReader:
    """A read-only file over a memoryview, for the unpickler: unlike BytesIO it does not copy the view first."""

    def __init__(self, view):
        self.view = view
        self.position = 0

    def read(self, size=-1):
        end = len(self.view) if size is None or size < 0 else min(len(self.view), self.position + size)
        data = self.view[self.position : end].tobytes()
        self.position = end
        return data

    def readinto(self, target):
        target = memoryview(target).cast("B")
        count = min(len(target), len(self.view) - self.position)
        target[:count] = self.view[self.position : self.position + count]
        self.position += count
        return count

    def readline(self):
        end = self.position
        while end < len(self.view) and self.view[end] != 0x0A:
            end += 1
        return self.read(min(len(self.view), end + 1) - self.position)


def _pack_container(pickled, buffers):
    lengths = [len(pickled)] + [buffer.nbytes for buffer in buffers]
    head = _CONTAINER_MAGIC + _CONTAINER_COUNT.pack(len(buffers)) + b"".join(map(_CONTAINER_LENGTH.pack, lengths))
    parts = [head, pickled]
    offset = len(head) + len(pickled)
    for buffer in buffers:
        padding = -offset % _CONTAINER_ALIGN
        parts.extend((b"\0" * padding, buffer))
        offset += padding + buffer.nbytes
    return b"".join(parts)


def _unpack_container(blob):
    """(pickle bytes, [buffers]) of a checkpoint: memoryviews into `blob` (writable when it is)."""
    view = memoryview(blob)
    if view[: len(_CONTAINER_MAGIC)] != _CONTAINER_MAGIC:
        return view, []
    offset = len(_CONTAINER_MAGIC)
    (count,) = _CONTAINER_COUNT.unpack_from(view, offset)
    offset += _CONTAINER_COUNT.size
    if count > (len(view) - offset) // _CONTAINER_LENGTH.size - 1:
        raise ValueError("a checkpoint container with more buffers than bytes")
    lengths = [
        _CONTAINER_LENGTH.unpack_from(view, offset + index * _CONTAINER_LENGTH.size)[0] for index in range(count + 1)
    ]
    offset += (count + 1) * _CONTAINER_LENGTH.size
    pickled = view[offset : offset + lengths[0]]
    offset += lengths[0]
    buffers = []
    for length in lengths[1:]:
        offset += -offset % _CONTAINER_ALIGN
        if offset + length > len(view):
            raise ValueError("a checkpoint container shorter than its buffers")
        buffers.append(view[offset : offset + length])
        offset += length
    return pickled, buffers


class _Checkpoints:
    """Pickles and unpickles one kernel's namespace; remembers the digest of the last checkpoint."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.last_digest = None
        self._images = {}
        self._namespace_marker = {}

    def _pickler_class(self):
        import cloudpickle

        checkpoints = self

        class Pickler(cloudpickle.CloudPickler):
            def persistent_id(self, obj):
                return checkpoints._reference(obj)

        return Pickler

    def _untouched_images(self):
        """Input images still bound as they were: {id(obj): name}, stored by name instead of by value."""
        kernel = self.kernel
        untouched = {}
        for name, original in kernel.bound_images.items():
            current = kernel.namespace.get(name)
            if (
                isinstance(current, kernel.Image.Image)
                and current.size == original.size
                and current.mode == original.mode
                and current.tobytes() == original.tobytes()
            ):
                untouched[id(current)] = name
        return untouched

    def _reference(self, obj):
        if obj is self._namespace_marker:
            return ("namespace",)
        if isinstance(obj, types.ModuleType):
            name = getattr(obj, "__name__", None)
            if isinstance(name, str) and sys.modules.get(name) is obj:
                return ("module", name)
            return None
        name = self._images.get(id(obj))
        if name is not None:
            return ("image", name)
        return None

    def _dump(self, value, limit):
        buffer = _CappedBuffer(limit)
        out_of_band = []

        def keep(pickle_buffer):
            raw = pickle_buffer.raw()
            buffer.count(raw.nbytes)
            out_of_band.append(raw)

        pickler = self._pickler_class()(buffer, protocol=5, buffer_callback=keep)
        # Functions defined in cells keep the session's namespace as their globals after a restore, instead of
        # a private copy of the names they used (cloudpickle's default for functions pickled by value).
        pickler.globals_ref[id(self.kernel.namespace)] = self._namespace_marker
        pickler.dump(value)
        return _pack_container(b"".join(buffer.parts), out_of_band)

    def _user_names(self):
        kernel = self.kernel
        names = {}
        for name, value in kernel.namespace.items():
            if name in _NAMESPACE_DUNDERS or (name == "display" and value == kernel.display):
                continue
            names[name] = value
        return names

    def checkpoint(self, header):
        import hashlib

        limit = header["max_bytes"]
        self._images = self._untouched_images()
        self._namespace_marker = {}
        names = self._user_names()
        lost = {}
        payload = None
        try:
            try:
                payload = self._dump(self._payload(names, lost), limit)
            except CheckpointTooLarge:
                raise
            except Exception:  # noqa: BLE001 - some name cannot be pickled: find which, drop them, try again
                for name, value in names.items():
                    try:
                        self._dump(value, limit)
                    except CheckpointTooLarge:
                        pass
                    except Exception:  # noqa: BLE001 - any failure to pickle a name makes it lost
                        lost[name] = type(value).__name__
                kept = {name: value for name, value in names.items() if name not in lost}
                payload = self._dump(self._payload(kept, lost), limit)
        except CheckpointTooLarge as error:
            self.last_digest = None
            return {"op": "checkpoint_too_large", "size": error.args[0], "limit": limit}, []
        except (Exception, CellTimeout) as error:  # noqa: BLE001 - the namespace's own objects failed to pickle
            self.last_digest = None
            return {"op": "checkpoint_failed", "message": f"{type(error).__name__}: {error}"[:500]}, []
        finally:
            self._images = {}
            # What the model's __reduce__ code may have started ends with the checkpoint, as after a cell.
            _reap_stray_processes()
        digest = hashlib.sha256(payload).digest()
        if digest == self.last_digest:
            return {"op": "checkpoint_unchanged"}, []
        self.last_digest = digest
        return {"op": "checkpointed", "size": len(payload), "lost": sorted(lost)}, [payload]

    def _payload(self, names, lost):
        import random

        return {
            "version": CHECKPOINT_VERSION,
            "names": names,
            "lost": lost,
            "random": (random.getstate(), self.kernel.np.random.get_state()),
        }

    def restore(self, blob):
        """Loads a checkpoint into the (fresh, images bound) namespace; returns the names that are lost."""
        import importlib
        import pickle
        import random

        kernel = self.kernel
        namespace = kernel.namespace

        class Unpickler(pickle.Unpickler):
            def persistent_load(self, pid):
                kind = pid[0]
                if kind == "namespace":
                    return namespace
                if kind == "module":
                    return importlib.import_module(pid[1])
                if kind == "image":
                    return namespace[pid[1]]
                raise pickle.UnpicklingError(f"unknown reference {kind!r}")

        pickled, buffers = _unpack_container(blob)
        payload = Unpickler(_ViewReader(pickled), buffers=buffers).load()
        if not isinstance(payload, dict) or payload.get("version") != CHECKPOINT_VERSION:
            raise ValueError("not a checkpoint of this kernel version")
        namespace.update(payload["names"])
        random_state, numpy_state = payload["random"]
        random.setstate(random_state)
        kernel.np.random.set_state(numpy_state)
        self.last_digest = None
        return sorted(payload["lost"])


def _guarded(kernel, timeout_ms, work):
    """Runs checkpoint work (the model's own __reduce__/__setstate__ code) under the cell's timer."""
    kernel.timeout_ms = timeout_ms
    kernel.timed_out = False
    kernel._arm_timer()
    kernel.in_user_code = True
    try:
        return work()
    finally:
        kernel.in_user_code = False
        kernel._disarm_timer()


def serve_checkpoint(kernel, header):
    checkpoints = kernel.checkpoints
    reply = _guarded(kernel, header["timeout_ms"], lambda: checkpoints.checkpoint(header))
    if os.getpid() != kernel.main_pid:
        # A process the model's pickling code forked must never speak on the protocol channel.
        os._exit(0)
    return reply


def serve_restore(kernel, header, blobs):
    try:
        lost = _guarded(kernel, header["timeout_ms"], lambda: kernel.checkpoints.restore(blobs[0]))
    except BaseException as error:  # noqa: BLE001 - a checkpoint is the model's data: any failure is reported
        if os.getpid() != kernel.main_pid:
            os._exit(1)
        kernel.reset_namespace()
        return {"op": "restore_failed", "message": f"{type(error).__name__}: {error}"[:500]}, []
    if os.getpid() != kernel.main_pid:
        os._exit(0)
    _reap_stray_processes()
    return {"op": "restored", "lost": lost}, []


def _prepare_matplotlib(build_cache):
    if build_cache:
        os.environ["MPLCONFIGDIR"] = FONT_CACHE_SOURCE
        return
    os.makedirs(MPL_DIR, exist_ok=True)
    if os.path.isdir(FONT_CACHE_SOURCE):
        for name in os.listdir(FONT_CACHE_SOURCE):
            if name.endswith(".json"):
                shutil.copy(os.path.join(FONT_CACHE_SOURCE, name), os.path.join(MPL_DIR, name))
    os.environ["MPLCONFIGDIR"] = MPL_DIR


# What the kernel itself uses (images, figures); always imported.
REQUIRED_MODULES = ("numpy", "PIL.Image", "PIL.ImageOps", "matplotlib.pyplot", "matplotlib.figure", "math")


def _import_libraries(preload):
    """Imports the kernel's own modules and the configured preload list (TOOLPLANE_CODE_PRELOAD).

    A preloaded module that is not installed is skipped: model code that imports
    it gets the ImportError, as it would anywhere else.
    """
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    modules = {name: importlib.import_module(name) for name in REQUIRED_MODULES}
    for name in preload:
        try:
            modules[name] = importlib.import_module(name)
        except ImportError:
            pass
    if "cv2" in sys.modules:
        sys.modules["cv2"].setNumThreads(1)
    _warm_up(modules)
    return modules


def preload_argument(argv):
    """The comma-separated module list after --preload."""
    if "--preload" not in argv:
        return []
    return [name for name in argv[argv.index("--preload") + 1].split(",") if name]


def _warm_up(modules):
    """Runs once what model code will run first, before any memory limit applies.

    OpenBLAS allocates its buffers on first use and, under a tight address-space
    limit, can hang instead of failing; drawing a first figure loads fonts and
    the Agg renderer. Both are done here, in the pool, not in a model's cell.
    """
    np = modules["numpy"]
    np.linalg.inv(np.eye(3))
    _ = np.eye(64) @ np.eye(64)
    plt = modules["matplotlib.pyplot"]
    figure = plt.figure()
    plt.plot([0, 1], [0, 1])
    plt.title("warm-up")
    figure.savefig(io.BytesIO(), format="png")
    plt.close("all")


def main():
    build_cache = "--build-font-cache" in sys.argv
    _prepare_matplotlib(build_cache)
    modules = _import_libraries(preload_argument(sys.argv))
    if build_cache:
        return
    _take_protocol_fds()
    serve(modules, {"op": "ready", "pid": os.getpid()})


def serve(modules, ready):
    """Answers the service's requests until the channel closes."""
    os.register_at_fork(after_in_child=_after_fork_in_child)
    kernel = Kernel(modules)
    write_frame(ready)
    while True:
        header, blobs = read_frame()
        if header is None:
            return
        op = header.get("op")
        try:
            if op == "bind":
                try:
                    kernel.bind(header, blobs)
                except (OSError, ValueError, SyntaxError) as error:
                    # PIL could not decode an input image: the caller's input is bad, not the kernel.
                    write_frame({"op": "bind_failed", "message": f"{type(error).__name__}: {error}"})
                else:
                    write_frame({"op": "bound"})
            elif op == "exec":
                # Model code runs after this frame and never before: the service blames a kernel that ends before
                # it on the system (a kernel that never started), one that ends after it on the code.
                write_frame({"op": "started"})
                kernel.execute(header)
            elif op == "checkpoint":
                write_frame(*serve_checkpoint(kernel, header))
            elif op == "restore":
                write_frame(*serve_restore(kernel, header, blobs))
            else:
                write_frame({"op": "error", "message": f"unknown op {op!r}"})
        except Exception as error:  # noqa: BLE001 - reported to the service as a kernel fault
            if os.getpid() != kernel.main_pid:
                os._exit(1)
            write_frame({"op": "error", "message": "".join(traceback.format_exception(error))})


if __name__ == "__main__":
    main()
