import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { pythonBackendOptions } from "../../../../test/support/python-backend.js";
import {
  CancelledError,
  createLogger,
  FailedPreconditionError,
  InvalidArgumentError,
  type ToolplaneError,
  UnavailableError,
} from "../../../runtime/src/index.js";
import type { ExecutionOutcome, LanguageSession, ResolvedLimits } from "../backend.js";
import { PythonBackend, type PythonBackendOptions, type PythonStart } from "./backend.js";
import { defaultKernelPath } from "./sandbox.js";

/** The repository this test runs from (kernel.py is in services/code/src/python): no sandbox may see its path. */
function repoRoot(): string {
  return dirname(dirname(dirname(dirname(dirname(defaultKernelPath())))));
}
const LIMITS: ResolvedLimits = { timeoutMs: 5000, memoryMb: 512, maxOutputBytes: 2000, maxImages: 2 };

function backendOptions(start: PythonStart = "zygote"): PythonBackendOptions {
  return pythonBackendOptions({ start });
}

for (const start of ["zygote", "sandbox"] as const) {
  describe(`PythonBackend (real sandboxes, start=${start})`, () => {
    const backend = new PythonBackend(backendOptions(start), createLogger("test", "silent"));
    let session: LanguageSession;
    const run = (code: string, extra: { timeoutMs?: number; fixIndentation?: boolean; signal?: AbortSignal } = {}) =>
      session.execute(code, {
        timeoutMs: extra.timeoutMs ?? LIMITS.timeoutMs,
        signal: extra.signal ?? new AbortController().signal,
        fixIndentation: extra.fixIndentation,
      });

    before(async () => {
      await backend.start();
      const png = await sharp({ create: { width: 40, height: 30, channels: 3, background: "#00ff00" } })
        .png()
        .toBuffer();
      session = await backend.createSession(
        [{ name: "image_1", data: png, mimeType: "image/png", width: 40, height: 30 }],
        LIMITS,
      );
    });
    after(() => backend.stop());

    it("binds np, Image, plt, cv2 and math, which model code uses without importing", async () => {
      const names = await run("(np.__name__, Image.__name__, plt.__name__, cv2.__name__, math.pi > 3)");
      assert.equal(names.failure, undefined, names.stderr);
      assert.equal(names.result, "('numpy', 'PIL.Image', 'matplotlib.pyplot', 'cv2', True)");
    });

    it("re-indents mis-indented model code when asked, and leaves valid code alone", async () => {
      const misindented = "    x = 3\n    if x > 2:\n    y = x * 2\n    print(y)";
      const plain = await run(misindented);
      assert.equal(plain.failure?.code, "INVALID_ARGUMENT");
      const fixed = await run(misindented, { fixIndentation: true });
      assert.equal(fixed.failure, undefined, fixed.stderr);
      assert.equal(fixed.stdout, "6\n");
      const uniform = await run("        a = 1\n        print(a + 1)", { fixIndentation: true });
      assert.equal(uniform.stdout, "2\n");
      const valid = await run("for i in range(2):\n    pass\nprint('after', i)", { fixIndentation: true });
      assert.equal(valid.stdout, "after 1\n");
    });

    it("captures what subprocesses, C code and forked workers write, not only Python's print", async () => {
      const outcome = await run(
        "import os, subprocess, multiprocessing as mp\n" +
          "subprocess.run(['sh', '-c', 'echo from-shell; echo shell-err >&2'])\n" +
          "os.write(1, b'raw-fd\\n')\n" +
          "def work(x):\n    print('worker', x)\n    return x\n" +
          "with mp.Pool(1) as pool:\n    pool.map(work, [7])\n" +
          "print('python')",
      );
      assert.equal(outcome.failure, undefined, outcome.stderr);
      for (const line of ["from-shell\n", "raw-fd\n", "worker 7\n", "python\n"])
        assert.ok(outcome.stdout.includes(line), outcome.stdout);
      assert.equal(outcome.stderr, "shell-err\n");
    });

    it("cuts stdout at max_output_bytes with an explicit marker and flag", async () => {
      const outcome = await run("print('y' * 10000)");
      assert.equal(outcome.stdoutTruncated, true);
      assert.match(outcome.stdout, /\[stdout truncated: 8001 more bytes not shown; the cap is 2000 bytes/);
      assert.ok(outcome.stdout.startsWith("y".repeat(2000)));
      assert.equal(outcome.failure, undefined);
    });

    it("returns display() images as PNG, at most max_images, flagging the rest", async () => {
      const outcome = await run(
        "import numpy as np\ndisplay(image_1.crop((0, 0, 10, 5)))\ndisplay(np.zeros((4, 6), dtype=np.uint8))\ndisplay(image_1)",
      );
      assert.equal(outcome.images.length, 2);
      assert.equal(outcome.imagesTruncated, true);
      const sizes = await Promise.all(outcome.images.map((png) => sharp(png).metadata()));
      assert.deepEqual(
        sizes.map((m) => [m.format, m.width, m.height]),
        [
          ["png", 10, 5],
          ["png", 6, 4],
        ],
      );
    });

    it("drops an oversized returned image with a note instead of failing the call", async () => {
      const outcome = await run("from PIL import Image\ndisplay(Image.new('L', (10000, 6000)))\ndisplay(image_1)");
      assert.equal(outcome.failure, undefined, outcome.stderr);
      assert.equal(outcome.images.length, 1);
      assert.equal(outcome.imagesTruncated, true);
      assert.match(outcome.stderr, /\[image dropped: 10000x6000 is above the 50000000 pixel limit/);
    });

    it("kills a cell that ignores the timer signal, reports DEADLINE_EXCEEDED, then restarts with a note", async () => {
      await run("kept = 1");
      const outcome = await run(
        "import signal\nsignal.signal(signal.SIGALRM, signal.SIG_IGN)\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True: pass",
        { timeoutMs: 300 },
      );
      assert.equal(outcome.failure?.code, "DEADLINE_EXCEEDED");
      assert.match(outcome.failure?.message ?? "", /did not stop; the interpreter was killed/);
      const next = await run("print('kept' in globals(), image_1.size)");
      assert.match(next.stderr, /interpreter of this session was restarted/);
      assert.equal(next.stdout, "False (40, 30)\n");
      const quiet = await run("print(2)");
      assert.equal(quiet.stderr, "");
    });

    it("code that kills its own interpreter is the model's failure (ABORTED, InterpreterDied), and the session recovers", async () => {
      const killed = await run("import os\nos.kill(os.getpid(), 9)");
      assert.equal(killed.failure?.code, "ABORTED");
      assert.equal(killed.failure?.type, "InterpreterDied");
      assert.match(killed.failure?.message ?? "", /state was lost/);
      // The reply pipe is one of the kernel's descriptors; hostile code can find it by trying them all.
      const forged = await run(
        "import os\nfor fd in range(10):\n    try: os.write(fd, b'\\x7f\\xff\\xff\\xff' + b'x' * 64)\n    except OSError: pass",
      );
      assert.equal(
        forged.failure?.type,
        "InterpreterDied",
        "forged reply frames end the interpreter as the model's failure",
      );
      assert.match(forged.failure?.message ?? "", /protocol/);
      const next = await run("1 + 1");
      assert.equal(next.result, "2");
      assert.match(next.stderr, /restarted/);
    });

    it("a kernel that ends before it starts the model's code is UNAVAILABLE with a retry hint; one that ran the model's code before is replaced and the cell runs", async () => {
      const options = { timeoutMs: LIMITS.timeoutMs, signal: new AbortController().signal };
      const fresh = await backend.createSession([], LIMITS);
      // The Python process itself, so that it dies before it can read the cell (a sandbox's pid is bubblewrap's
      // init, whose end takes the interpreter down only a moment later).
      const kernelPid = () => {
        const pid = (fresh as LanguageSession & { pid?: number }).pid;
        assert.ok(pid, "the session's kernel pid is known");
        if (readFileSync(`/proc/${pid}/comm`, "utf8").trim() !== "bwrap") return pid;
        const [python] = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).map(Number);
        assert.ok(python, "bubblewrap's init has the interpreter as its child");
        return python;
      };
      try {
        // Killed from outside before its first cell, and the cell sent before the service heard of the death:
        // no model code ever ran in that kernel.
        process.kill(kernelPid(), "SIGKILL");
        await assert.rejects(fresh.execute("print(1)", options), (error: ToolplaneError) => {
          assert.ok(error instanceof UnavailableError, String(error));
          assert.ok((error.retryAfterMs ?? 0) > 0, "a retry hint");
          assert.match(error.message, /starting the code/);
          return true;
        });
        const recovered = await fresh.execute("print(2)", options);
        assert.equal(recovered.failure, undefined, recovered.stderr);
        assert.equal(recovered.stdout, "2\n");
        assert.doesNotMatch(recovered.stderr, /restarted/, "no state was lost: the model never used that kernel");
        // The same death between cells after the kernel ran the model's code: the cell was not started, so it is
        // not the cell's fault however late the service hears of the death; it runs in a fresh interpreter (restored
        // from the checkpoint when the session has one) whose stderr says the state was lost.
        process.kill(kernelPid(), "SIGKILL");
        const after = await fresh.execute("print(3)", options);
        assert.equal(after.failure, undefined, after.stderr);
        assert.equal(after.stdout, "3\n");
        assert.match(after.stderr, /restarted/);
      } finally {
        await fresh.close();
      }
    });

    it("the seccomp filter answers ptrace, unshare, bpf and personality changes with EPERM, and /proc names no host path", async () => {
      const probe = await run(
        [
          "import ctypes, os, platform",
          "libc = ctypes.CDLL(None, use_errno=True)",
          "calls = {'ptrace': (101, 16, 1, 0, 0), 'unshare': (272, 0x10000000), 'bpf': (321, 0, 0, 0), 'personality': (135, 0x0040000)}",
          "if platform.machine() == 'x86_64':",
          "    for name, (nr, *args) in calls.items():",
          "        print(name, libc.syscall(nr, *args), ctypes.get_errno())",
          "seen = b''",
          "for path in ('/proc/1/cmdline', '/proc/1/environ', '/proc/self/mountinfo'):",
          "    try: seen += open(path, 'rb').read()",
          "    except PermissionError: pass  # a session's init is not dumpable",
          `print('repo path visible:', ${JSON.stringify(repoRoot())}.encode() in seen)`,
        ].join("\n"),
      );
      assert.equal(probe.failure, undefined, probe.stderr);
      if (process.arch === "x64") {
        for (const name of ["ptrace", "unshare", "bpf", "personality"])
          assert.match(probe.stdout, new RegExp(`${name} -1 1\\n`));
      }
      assert.match(probe.stdout, /repo path visible: False/);
    });

    it("a thread left burning CPU between cells costs the interpreter, not the host", async () => {
      const started = await run(
        "import threading\ndef burn():\n    while True:\n        pass\nthreading.Thread(target=burn, daemon=True).start()",
        {
          timeoutMs: 300,
        },
      );
      assert.equal(started.failure, undefined, started.stderr);
      // The CPU budget is the cell's timeout plus 2 s; past it the kernel is ended by SIGXCPU.
      const [pid] = backend.sessionPids();
      assert.ok(pid, "the session's kernel pid is known");
      // Wait until the interpreter is gone and the backend has heard of it (a zygote kernel's exit is reported by
      // its watcher, which can lag the process's end under load).
      const running = () => existsSync(`/proc/${pid}`) || backend.sessionPids().includes(pid);
      for (let waited = 0; running() && waited < 30_000; waited += 250) {
        await new Promise((resolve) => setTimeout(resolve, 250));
      }
      const next = await run("print('fresh')");
      assert.equal(next.stdout, "fresh\n");
      assert.match(next.stderr, /restarted/);
    });

    it("the caller's cancellation stops the running code", async () => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 200);
      await assert.rejects(
        run("import time\ntime.sleep(30)", { signal: controller.signal }),
        (error: ToolplaneError) => error instanceof CancelledError && /stopped/.test(error.message),
      );
      assert.equal((await run("3")).result, "3");
    });

    it("reset drops variables and binds the images again", async () => {
      await run("secret = 42\nimage_1 = None");
      await session.reset();
      const outcome: ExecutionOutcome = await run("print('secret' in globals(), image_1.size)");
      assert.equal(outcome.stdout, "False (40, 30)\n");
    });

    it("an image Python cannot open is INVALID_ARGUMENT", async () => {
      await assert.rejects(
        backend.createSession(
          [{ name: "image_1", data: Buffer.from("not an image"), mimeType: "image/png", width: 1, height: 1 }],
          LIMITS,
        ),
        (error: ToolplaneError) => error instanceof InvalidArgumentError && /images/.test(error.message),
      );
    });

    it("at the smallest memory limit, plotting and linear algebra work and a big array is RESOURCE_EXHAUSTED", async () => {
      const tight = await backend.createSession([], { ...LIMITS, memoryMb: 64 });
      const cell = (code: string) => tight.execute(code, { timeoutMs: 5000, signal: new AbortController().signal });
      const plot = await cell("import matplotlib.pyplot as plt\nplt.plot([1, 2])\nplt.show()");
      assert.equal(plot.failure, undefined, plot.stderr);
      assert.equal(plot.images.length, 1);
      const algebra = await cell("import numpy as np\nround(float(np.linalg.inv(np.eye(50) * 2).sum()), 1)");
      assert.equal(algebra.result, "25.0");
      const big = await cell("np.zeros((4000, 4000, 3))");
      assert.equal(big.failure?.code, "RESOURCE_EXHAUSTED");
      await tight.close();
    });

    it("close during a running cell stops it; the session then refuses work", async () => {
      const other = await backend.createSession([], LIMITS);
      const running = other.execute("import time\ntime.sleep(30)", {
        timeoutMs: 10_000,
        signal: new AbortController().signal,
      });
      await new Promise((resolve) => setTimeout(resolve, 200));
      // The running call is answered as soon as the kernel is killed, before close has seen the process gone.
      const refused = assert.rejects(running, FailedPreconditionError);
      await other.close();
      await refused;
      await assert.rejects(
        other.execute("1", { timeoutMs: 1000, signal: new AbortController().signal }),
        FailedPreconditionError,
      );
      await other.close();
    });
  });
}

describe("PythonBackend whose sandboxes cannot start", () => {
  it("reports UNAVAILABLE/INFRASTRUCTURE, never a model error", async () => {
    const backend = new PythonBackend(
      { ...backendOptions(), pythonPath: "/nonexistent/python3" },
      createLogger("test", "silent"),
    );
    await backend.start().catch(() => undefined);
    await assert.rejects(backend.createSession([], LIMITS), (error: ToolplaneError) => {
      assert.ok(error instanceof UnavailableError, String(error));
      assert.equal(error.errorClass, "INFRASTRUCTURE");
      return true;
    });
    await backend.stop();
  });
});
