import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import { pino } from "pino";
import { pythonBackendOptions } from "../../../../test/support/python-backend.js";
import { createLogger, type ToolplaneError, UnavailableError } from "../../../runtime/src/index.js";
import type { ExecutionOutcome, LanguageSession, ResolvedLimits } from "../backend.js";
import { PythonBackend, type PythonBackendOptions } from "./backend.js";

const MIB = 1024 * 1024;
const LIMITS: ResolvedLimits = { timeoutMs: 5000, memoryMb: 512, maxOutputBytes: 8000, maxImages: 2 };

/** The shared test options, with this file's smaller preload, fork pool and temp size. */
function options(overrides: Partial<PythonBackendOptions> = {}): PythonBackendOptions {
  return pythonBackendOptions({
    preload: ["numpy", "PIL.Image", "matplotlib.pyplot"],
    forkPoolSize: 2,
    retryAfterMs: 300,
    tmpBytes: 16 * MIB,
    ...overrides,
  });
}

function run(session: LanguageSession, code: string): Promise<ExecutionOutcome> {
  return session.execute(code, { timeoutMs: LIMITS.timeoutMs, signal: new AbortController().signal });
}

async function ok(session: LanguageSession, code: string): Promise<string> {
  const outcome = await run(session, code);
  assert.equal(outcome.failure, undefined, outcome.stderr);
  return outcome.stdout.trim();
}

async function until(condition: () => boolean, what: string, ms = 15_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describe("Python sessions forked from one zygote", () => {
  const backend = new PythonBackend(options(), createLogger("test", "silent"));
  let a: LanguageSession;
  let b: LanguageSession;

  before(async () => {
    await backend.start();
    a = await backend.createSession([], LIMITS);
    b = await backend.createSession([], LIMITS);
  });
  after(() => backend.stop());

  it("really forks: the zygote is running and each kernel is pid 2 of its own pid namespace", async () => {
    assert.ok(backend.zygoteSupervisor?.current, "sessions come from the zygote here");
    // Its parent (the session's watcher) lives outside its pid namespace, so getppid() is 0.
    assert.equal(await ok(a, "import os; print(os.getpid(), os.getppid())"), "2 0");
    const [pidA, pidB] = backend.sessionPids();
    assert.ok(pidA && pidB && pidA !== pidB, "two distinct host processes");
  });

  it("two sessions cannot see each other's /tmp, /dev/shm, processes or memory", async () => {
    await ok(
      a,
      "open('/tmp/a-secret', 'w').write('a'); open('/dev/shm/a-shm', 'w').write('a'); data = bytearray(b'A' * 4096)",
    );
    assert.equal(await ok(b, "import os; print(sorted(os.listdir('/tmp')), sorted(os.listdir('/dev/shm')))"), "[] []");
    // Only its own init (1), itself (2) and what the listing itself started: no sibling, no zygote.
    const visible = await ok(b, "import os; print(sorted(int(p) for p in os.listdir('/proc') if p.isdigit()))");
    assert.equal(visible, "[1, 2]");
    // The other kernel's memory is unreachable: its pid does not exist here, and pid 1 is this session's own init.
    const hostPidA = backend.sessionPids()[0];
    const probe = await ok(
      b,
      `import os\ntry:\n    open('/proc/${hostPidA}/mem', 'rb')\n    print('opened')\nexcept OSError as e:\n    print(type(e).__name__)`,
    );
    assert.notEqual(probe, "opened");
    assert.equal(await ok(a, "print(len(data), open('/tmp/a-secret').read())"), "4096 a");
  });

  it("a session cannot signal or ptrace the zygote or a sibling", async () => {
    const zygotePid = backend.zygoteSupervisor?.current?.hostPid();
    assert.ok(zygotePid, "the zygote's host pid is known");
    const attack = await run(
      b,
      [
        "import ctypes, os, signal",
        "libc = ctypes.CDLL(None, use_errno=True)",
        "results = set()",
        "own = {int(tid) for tid in os.listdir('/proc/self/task')}",
        "for pid in range(1, 4096):",
        "    if pid in own:",
        "        continue",
        "    try:",
        "        os.kill(pid, signal.SIGKILL)",
        "        results.add(('kill', pid))",
        "    except OSError:",
        "        pass",
        "    if libc.ptrace(16, pid, None, None) == 0:",
        "        results.add(('ptrace', pid))",
        "print(sorted(results))",
      ].join("\n"),
    );
    assert.equal(attack.failure, undefined, attack.stderr);
    // kill(1) reaches only the session's own init, which as pid 1 ignores it; it cannot be traced (not
    // dumpable); nothing else exists to name.
    assert.equal(attack.stdout.trim(), "[('kill', 1)]");
    assert.ok(existsSync(`/proc/${zygotePid}`), "the zygote survived");
    assert.equal(await ok(a, "print(len(data))"), "4096", "the sibling survived with its state");
    assert.equal(await ok(b, "print('still here')"), "still here");
  });

  it("random streams differ per session unless the caller seeds them", async () => {
    const draw = "import random, numpy as np; print(random.random(), np.random.rand())";
    assert.notEqual(await ok(a, draw), await ok(b, draw));
    const seeded = [
      await backend.createSession([], LIMITS, { seed: 1234 }),
      await backend.createSession([], LIMITS, { seed: 1234 }),
    ];
    const [first, second] = await Promise.all(seeded.map((session) => ok(session, draw)));
    assert.equal(first, second);
    // A reset starts a fresh kernel with the same seed: the trajectory replays the same draws.
    await seeded[0]?.reset();
    assert.equal(await ok(seeded[0] as LanguageSession, draw), first);
    await Promise.all(seeded.map((session) => session.close()));
  });

  it("inherits no descriptor, capability, socket or matplotlib state from the zygote", async () => {
    const report = await ok(
      a,
      [
        "import os, matplotlib, matplotlib.pyplot as plt",
        "fds = sorted(int(fd) for fd in os.listdir('/proc/self/fd'))",
        "kinds = set()",
        "for fd in fds:",
        "    try:",
        "        kinds.add(os.readlink(f'/proc/self/fd/{fd}').split(':')[0])",
        "    except FileNotFoundError:",
        "        pass  # the listing's own descriptor",
        "kinds = sorted(kinds)",
        "caps = [line.split()[1] for line in open('/proc/self/status') if line.startswith(('CapEff', 'CapPrm'))]",
        "print(kinds, caps, os.listdir('/opt/toolplane/socket'), plt.get_fignums(), matplotlib.get_backend())",
      ].join("\n"),
    );
    // Descriptors: /dev/null on 0-2, the protocol socket, the output pumps' pipes; nothing of the zygote's.
    assert.match(
      report,
      /^\['\/dev\/null', 'pipe', 'socket'\] \['0000000000000000', '0000000000000000'\] \[\] \[\] agg$/i,
    );
  });

  it("a kernel that crashes takes neither the zygote nor the other sessions with it", async () => {
    const died = await run(a, "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)");
    assert.equal(died.failure?.type, "InterpreterDied", died.stderr);
    assert.equal(await ok(b, "print('b fine')"), "b fine");
    assert.match((await run(a, "print('a again')")).stderr, /restarted/);
    assert.ok(backend.zygoteSupervisor?.current);
  });

  it("a zygote killed with SIGKILL is replaced: running cells fail INFRASTRUCTURE, then sessions work again", async () => {
    const supervisor = backend.zygoteSupervisor;
    const zygotePid = supervisor?.current?.hostPid();
    assert.ok(supervisor && zygotePid);
    const generation = supervisor.generation;
    const running = run(b, "import time; time.sleep(20)");
    await new Promise((resolve) => setTimeout(resolve, 200));
    process.kill(zygotePid, "SIGKILL");
    await assert.rejects(running, (error: ToolplaneError) => {
      assert.ok(error instanceof UnavailableError, String(error));
      assert.equal(error.errorClass, "INFRASTRUCTURE");
      assert.equal(error.retryAfterMs, 300);
      assert.match(error.message, /zygote died/);
      return true;
    });
    await until(() => supervisor.generation > generation && supervisor.current !== undefined, "a new zygote");
    let fresh: LanguageSession | undefined;
    // Forks taken from the pool before the new zygote was ready may still fail once, with a retry hint.
    for (let attempt = 0; attempt < 10 && !fresh; attempt += 1) {
      fresh = await backend.createSession([], LIMITS).catch((error: ToolplaneError) => {
        assert.equal(error.errorClass, "INFRASTRUCTURE");
        return new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), error.retryAfterMs ?? 300));
      });
    }
    assert.ok(fresh, "CreateSession succeeds after the replacement");
    assert.equal(await ok(fresh, "print(6 * 7)"), "42");
    const again = await run(b, "print('b restarted')");
    assert.match(again.stderr, /restarted/);
    assert.equal(again.stdout, "b restarted\n");
    await fresh.close();
  });
});

describe("PythonBackend start choice", () => {
  it("falls back to one sandbox per session when the zygote cannot run (start=auto)", async () => {
    const lines: string[] = [];
    const logger = pino(
      { level: "info" },
      {
        write: (line: string) => {
          lines.push(line);
        },
      },
    );
    const backend = new PythonBackend(options({ start: "auto", unsharePath: "/nonexistent/unshare" }), logger);
    await backend.start();
    try {
      assert.equal(backend.zygoteSupervisor, undefined);
      const modeLines = lines.filter((line) => line.includes("python sessions:"));
      assert.equal(modeLines.length, 1, lines.join("\n"));
      assert.match(modeLines[0] ?? "", /one bubblewrap sandbox per session \(the zygote cannot fork sessions/);
      const session = await backend.createSession([], LIMITS);
      assert.equal(await ok(session, "print(1 + 1)"), "2");
    } finally {
      await backend.stop();
    }
  });

  it("start=zygote refuses to start where the zygote cannot run", async () => {
    const backend = new PythonBackend(options({ unsharePath: "/nonexistent/unshare" }), createLogger("test", "silent"));
    await assert.rejects(backend.start());
    await backend.stop();
  });
});
