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
import os
import resource
import shutil
import signal
import struct
import sys
import textwrap
import time
import traceback

FONT_CACHE_SOURCE = "/opt/toolplane/mplcache"
MPL_DIR = "/tmp/.matplotlib"
HEADER = struct.Struct(">II")
KERNEL_FILE = os.path.abspath(__file__)

_proto_in = None
_proto_out = None


def _take_protocol_fds():
    global _proto_in, _proto_out
    # os.dup() returns non-inheritable descriptors, so subprocesses of model code never get them.
    _proto_in = os.fdopen(os.dup(0), "rb", buffering=0)
    _proto_out = os.dup(1)
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


def read_frame():
    head = _read_exact(HEADER.size)
    if head is None:
        return None, []
    json_len, blob_len = HEADER.unpack(head)
    header = json.loads(_read_exact(json_len))
    data = _read_exact(blob_len) if blob_len else b""
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


class CappedText(io.TextIOBase):
    """A text stream that keeps the first `cap` UTF-8 bytes and counts the rest."""

    def __init__(self, cap):
        super().__init__()
        self.cap = cap
        self.parts = []
        self.size = 0
        self.dropped = 0

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
        data = text.encode("utf-8", "replace")
        room = self.cap - self.size
        if room > 0:
            kept = data[:room]
            self.parts.append(kept)
            self.size += len(kept)
            self.dropped += len(data) - len(kept)
        else:
            self.dropped += len(data)
        return len(text)

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
        self.bound_images = {}
        self.namespace = {}
        self.cell = 0
        self.in_user_code = False
        self.timed_out = False
        self.timeout_ms = 0
        self.main_pid = os.getpid()
        self.images = []
        self.max_images = 0
        self.images_dropped = False
        self.stdout = None
        self._patch_display_hooks()
        signal.signal(signal.SIGALRM, self._on_time_limit)
        # CPU rlimit is a backstop for forked children; the kernel itself turns SIGXCPU into a timeout.
        signal.signal(signal.SIGXCPU, self._on_time_limit)

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

    def _room_for_image(self):
        if len(self.images) >= self.max_images:
            self.images_dropped = True
            return False
        return True

    def add_pil(self, image):
        if not self._room_for_image():
            return
        buffer = io.BytesIO()
        try:
            image.save(buffer, format="PNG", compress_level=1)
        except (OSError, ValueError):
            # Modes PNG cannot store (CMYK, YCbCr, F, ...) go through RGB.
            buffer = io.BytesIO()
            image.convert("RGB").save(buffer, format="PNG", compress_level=1)
        self.images.append(buffer.getvalue())

    def add_figure(self, fig):
        if self._room_for_image():
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png")
            self.images.append(buffer.getvalue())

    def capture_figures(self):
        plt = self.plt
        for number in plt.get_fignums():
            self.add_figure(plt.figure(number))
        plt.close("all")

    # ---- session state ----------------------------------------------------------

    def bind(self, header, blobs):
        limits = header["limits"]
        self.bound_images = {}
        for spec in header["images"]:
            image = self.Image.open(io.BytesIO(blobs[spec["blob"]]))
            image = self.ImageOps.exif_transpose(image)
            image.load()
            self.bound_images[spec["name"]] = image
        self._apply_limits(limits)
        self.reset_namespace()

    def reset_namespace(self):
        self.namespace = {"__name__": "__main__", "__builtins__": builtins, "display": self.display}
        for name, image in self.bound_images.items():
            self.namespace[name] = image.copy()

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
        raise CellTimeout(f"execution exceeded the time limit of {self.timeout_ms} ms")

    def execute(self, header):
        code = header["code"]
        if header.get("fix_indentation"):
            code = fix_indentation(code)
        self.cell += 1
        filename = f"<cell-{self.cell}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        cap = header["max_output_bytes"]
        self.timeout_ms = header["timeout_ms"]
        self.max_images = header["max_images"]
        self.images = []
        self.images_dropped = False
        self.timed_out = False
        stdout = CappedText(cap)
        stderr = CappedText(cap)
        saved = sys.stdout, sys.stderr
        sys.stdout, sys.stderr = stdout, stderr
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
            stderr.write(failure["traceback"])
            try:
                self.capture_figures()
            except Exception:  # noqa: BLE001 - a broken figure must not hide the original error
                pass
        finally:
            sys.stdout, sys.stderr = saved
        if os.getpid() != self.main_pid:
            # A forked child finished the cell: it must never speak on the protocol pipe.
            os._exit(0)
        if self.timed_out and failure is None:
            failure = {
                "code": "DEADLINE_EXCEEDED",
                "type": "TimeoutError",
                "message": f"execution exceeded the time limit of {self.timeout_ms} ms",
                "traceback": "",
            }
        _reap_stray_processes()
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
        signal.setitimer(signal.ITIMER_REAL, self.timeout_ms / 1000)
        used = resource.getrusage(resource.RUSAGE_SELF)
        cpu = int(used.ru_utime + used.ru_stime) + self.timeout_ms // 1000 + 2
        hard = resource.getrlimit(resource.RLIMIT_CPU)[1]
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, hard))

    def _disarm_timer(self):
        signal.setitimer(signal.ITIMER_REAL, 0)

    def _describe_failure(self, error, phase):
        if isinstance(error, CellTimeout) or self.timed_out:
            code = "DEADLINE_EXCEEDED"
            kind = "TimeoutError"
            message = f"execution exceeded the time limit of {self.timeout_ms} ms"
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


def _compiles(code):
    try:
        compile(code, "<fix>", "exec", ast.PyCF_ONLY_AST)
    except (SyntaxError, ValueError):
        return False
    return True


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


def _import_libraries():
    import importlib

    import matplotlib

    matplotlib.use("Agg")
    names = ["numpy", "PIL.Image", "PIL.ImageOps", "cv2", "matplotlib.pyplot", "matplotlib.figure", "math"]
    modules = {name: importlib.import_module(name) for name in names}
    for optional in ("scipy", "scipy.ndimage"):
        try:
            importlib.import_module(optional)
        except ImportError:
            pass
    modules["cv2"].setNumThreads(1)
    # Build the font list now (it is what makes the first plot slow).
    import matplotlib.font_manager  # noqa: F401

    return modules


def main():
    build_cache = "--build-font-cache" in sys.argv
    _prepare_matplotlib(build_cache)
    modules = _import_libraries()
    if build_cache:
        return
    _take_protocol_fds()
    kernel = Kernel(modules)
    write_frame({"op": "ready", "pid": os.getpid()})
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
                kernel.execute(header)
            else:
                write_frame({"op": "error", "message": f"unknown op {op!r}"})
        except Exception as error:  # noqa: BLE001 - reported to the service as a kernel fault
            if os.getpid() != kernel.main_pid:
                os._exit(1)
            write_frame({"op": "error", "message": "".join(traceback.format_exception(error))})


if __name__ == "__main__":
    main()
