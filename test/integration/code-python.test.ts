import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { type CreateSessionRequest, Language } from "../../generated/toolplane/code/v1/code.js";
import { ErrorClass } from "../../generated/toolplane/common/v1/common.js";
import { invoke, type ToolplaneError } from "../../services/runtime/src/index.js";
import { assertModelFailure, assertRpcError, codeClient } from "../support/code.js";
import { descendants } from "../support/proc.js";
import { distRoot, metricValue, type SpawnedService, scrapeMetrics, spawnService } from "../support/processes.js";

const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;
const RESOURCE_EXHAUSTED = 8;
const DEADLINE_EXCEEDED = 4;

describe("code service, Python, over a real socket", () => {
  let service: SpawnedService;
  let api: ReturnType<typeof codeClient>;
  let bystander: string;
  let jpeg: Buffer;

  before(async () => {
    service = await spawnService("code", {
      TOOLPLANE_CODE_FORK_POOL_SIZE: "2",
      TOOLPLANE_CODE_MAX_OUTPUT_BYTES: "1048576",
      TOOLPLANE_METRICS_PORT: "0",
    });
    api = codeClient(service.address, Language.LANGUAGE_PYTHON, { label: "integration" });
    // A session that must keep working while the others misbehave.
    bystander = (await api.create()).sessionId;
    await api.execute(bystander, "counter = 0");
    jpeg = await sharp({
      create: { width: 64, height: 48, channels: 3, background: { r: 200, g: 30, b: 30 } },
    })
      .jpeg()
      .toBuffer();
  });
  after(async () => {
    api?.client.close();
    await service?.stop();
  });

  async function bystanderStillServes(): Promise<void> {
    const response = await api.execute(bystander, "counter += 1\ncounter");
    assert.equal(response.error, undefined);
    assert.ok(Number(response.result) >= 1);
  }

  it("reports open sessions and the warm pool on /metrics", async () => {
    const sessions = 'toolplane_pool_size{pool="sessions_python",state="busy"}';
    const before = await scrapeMetrics(service);
    const { sessionId } = await api.create();
    const during = await scrapeMetrics(service);
    assert.equal(metricValue(during, sessions), (metricValue(before, sessions) ?? Number.NaN) + 1);
    // A taken kernel is replaced at once: ready plus starting always covers the pool size.
    const idle = metricValue(during, 'toolplane_pool_size{pool="python",state="idle"}') ?? Number.NaN;
    const starting = metricValue(during, 'toolplane_pool_size{pool="python",state="starting"}') ?? Number.NaN;
    assert.equal(idle + starting, 2, during);
    assert.equal(metricValue(during, 'toolplane_queue_depth{queue="python_pool"}'), 0);
    await api.close(sessionId);
    assert.equal(metricValue(await scrapeMetrics(service), sessions), metricValue(before, sessions));
  });

  it("keeps state across executes and returns the last expression's value", async () => {
    const { sessionId, limits } = await api.create();
    assert.ok(limits && limits.timeoutMs > 0 && limits.maxImages > 0, "limits in force are reported");
    const first = await api.execute(sessionId, "import numpy as np\nx = np.arange(5)\nprint('sum', x.sum())");
    assert.equal(first.stdout, "sum 10\n");
    assert.equal(first.hasResult, false);
    const second = await api.execute(sessionId, "y = x * 2\ny.tolist()");
    assert.equal(second.hasResult, true);
    assert.equal(second.result, "[0, 2, 4, 6, 8]");
    assert.ok(second.timing && second.timing.totalMs >= second.timing.executeMs);
    await api.close(sessionId);
  });

  it("binds input images as image_1.. and returns crops and displayed images as PNG", async () => {
    const png = await sharp({ create: { width: 20, height: 10, channels: 4, background: "#0000ff80" } })
      .png()
      .toBuffer();
    const { sessionId } = await api.create({
      images: [
        { name: "image_1", image: { data: jpeg, mimeType: "", width: 0, height: 0 } },
        { name: "image_2", image: { data: png, mimeType: "", width: 0, height: 0 } },
      ],
    });
    const sizes = await api.execute(sessionId, "image_1.size, image_1.mode, image_2.size, image_2.mode");
    assert.equal(sizes.result, "((64, 48), 'RGB', (20, 10), 'RGBA')");
    const crop = await api.execute(
      sessionId,
      "import numpy as np\nfrom PIL import Image\narr = np.array(image_1)[8:24, 16:48]\ncrop = Image.fromarray(arr)\ndisplay(crop)\nprint(arr.shape)",
    );
    assert.equal(crop.error, undefined, crop.stderr);
    assert.equal(crop.stdout, "(16, 32, 3)\n");
    assert.equal(crop.images.length, 1);
    const image = crop.images[0];
    assert.equal(image?.mimeType, "image/png");
    assert.equal(image?.width, 32);
    assert.equal(image?.height, 16);
    const decoded = await sharp(image?.data as Buffer)
      .raw()
      .toBuffer({ resolveWithObject: true });
    assert.equal(decoded.info.width, 32);
    assert.ok((decoded.data[0] as number) > 150, "the crop carries the input's red");
    await api.close(sessionId);
  });

  it("captures every open figure on plt.show() and figures left open at the end of a cell", async () => {
    const { sessionId } = await api.create();
    const shown = await api.execute(
      sessionId,
      "import matplotlib.pyplot as plt\nplt.figure(); plt.plot([1, 2, 3])\nplt.figure(); plt.bar([1, 2], [3, 4])\nplt.show()\nprint(len(plt.get_fignums()))",
    );
    assert.equal(shown.error, undefined, shown.stderr);
    assert.equal(shown.images.length, 2);
    assert.equal(shown.stdout, "0\n", "plt.show() closes what it captured");
    const left = await api.execute(sessionId, "fig, ax = plt.subplots(figsize=(3, 2), dpi=50)\nax.plot([0, 1])");
    assert.equal(left.images.length, 1);
    assert.deepEqual([left.images[0]?.width, left.images[0]?.height], [150, 100]);
    const none = await api.execute(sessionId, "1");
    assert.equal(none.images.length, 0, "captured figures are not returned twice");
    await api.close(sessionId);
  });

  it("runs concurrent calls on one session one after the other, in order", async () => {
    const { sessionId } = await api.create();
    await api.execute(sessionId, "log = []");
    const [slow, fast] = await Promise.all([
      api.execute(sessionId, "import time\ntime.sleep(0.3)\nlog.append('slow')"),
      api.execute(sessionId, "log.append('fast')\nlog"),
    ]);
    assert.equal(slow.error, undefined);
    assert.equal(fast.result, "['slow', 'fast']");
    assert.ok((fast.timing?.queueMs ?? 0) > 100, "the second call reports its wait as queue time");
    await api.close(sessionId);
  });

  it("keeps concurrent sessions apart", async () => {
    const sessions = await Promise.all([1, 2, 3].map(() => api.create()));
    await Promise.all(sessions.map(({ sessionId }, index) => api.execute(sessionId, `mine = ${index}`)));
    const results = await Promise.all(
      sessions.map(({ sessionId }) => api.execute(sessionId, "import time\ntime.sleep(0.05)\nmine")),
    );
    assert.deepEqual(
      results.map((response) => response.result),
      ["0", "1", "2"],
    );
    await Promise.all(sessions.map(({ sessionId }) => api.close(sessionId)));
  });

  it("re-indents model code when fix_indentation is set", async () => {
    const { sessionId } = await api.create();
    const code = "  for i in range(3):\n  total = i\n  print(total)";
    assertModelFailure(await api.execute(sessionId, code), "INVALID_ARGUMENT", /IndentationError/);
    const fixed = await api.execute(sessionId, code, 0, true);
    assert.equal(fixed.error, undefined, fixed.stderr);
    assert.equal(fixed.stdout, "0\n1\n2\n");
    await api.close(sessionId);
  });

  it("reports syntax errors and exceptions as MODEL failures with Python's traceback", async () => {
    const { sessionId } = await api.create();
    const syntax = await api.execute(sessionId, "def broken(:\n    pass");
    assertModelFailure(syntax, "INVALID_ARGUMENT", /^SyntaxError$/);
    assert.match(syntax.stderr, /File "<cell-1>", line 1/);
    const raised = await api.execute(sessionId, "def f(d):\n    return 1 / d\nprint('before')\nf(0)");
    assertModelFailure(raised, "ABORTED", /^ZeroDivisionError$/);
    assert.equal(raised.stdout, "before\n", "output before the exception is kept");
    assert.match(raised.error?.traceback ?? "", /Traceback \(most recent call last\):\n {2}File "<cell-2>", line 4/);
    assert.match(raised.error?.traceback ?? "", /ZeroDivisionError: division by zero\n$/);
    assert.doesNotMatch(raised.stderr, /kernel\.py/, "the kernel's frames are not shown");
    await api.close(sessionId);
  });

  it("times out an infinite loop with DEADLINE_EXCEEDED, keeping the session's state", async () => {
    const { sessionId } = await api.create();
    await api.execute(sessionId, "kept = 'yes'");
    const looped = await api.execute(sessionId, "while True:\n    try:\n        pass\n    except:\n        pass", 500);
    assertModelFailure(looped, "DEADLINE_EXCEEDED", /^TimeoutError$/);
    assert.match(looped.error?.message ?? "", /time limit of 500 ms/);
    const after = await api.execute(sessionId, "kept");
    assert.equal(after.result, "'yes'");
    await bystanderStillServes();
    await api.close(sessionId);
  });

  it("a caller's deadline shorter than the timeout ends the cell in time, keeping the session's state", async () => {
    const { sessionId } = await api.create();
    await api.execute(sessionId, "kept = 7");
    const response = await invoke(
      api.client,
      api.client.execute,
      { sessionId, code: "import time\nprint('started')\ntime.sleep(60)", timeoutMs: 0, fixIndentation: false },
      { deadlineMs: Date.now() + 1500 },
    );
    assertModelFailure(response, "DEADLINE_EXCEEDED", /^TimeoutError$/);
    assert.equal(response.stdout, "started\n");
    assert.equal((await api.execute(sessionId, "kept")).result, "7");
    await api.close(sessionId);
  });

  it("contains a memory bomb as RESOURCE_EXHAUSTED", async () => {
    const { sessionId } = await api.create({
      limits: { memoryMb: 256, timeoutMs: 0, maxOutputBytes: 0, maxImages: 0 },
    });
    assertModelFailure(await api.execute(sessionId, "x = bytearray(8 * 1024**3)"), "RESOURCE_EXHAUSTED", /MemoryError/);
    assertModelFailure(
      await api.execute(sessionId, "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 1024**2))"),
      "RESOURCE_EXHAUSTED",
      /MemoryError/,
    );
    const after = await api.execute(sessionId, "del chunks\nlen('still alive')");
    assert.equal(after.result, "11");
    await bystanderStillServes();
    await api.close(sessionId);
  });

  it("contains a fork bomb as RESOURCE_EXHAUSTED and reaps what it started", async () => {
    const { sessionId } = await api.create();
    const bomb = await api.execute(sessionId, "import os\nwhile True:\n    os.fork()", 5000);
    assertModelFailure(bomb, "RESOURCE_EXHAUSTED", /BlockingIOError/);
    const count = await api.execute(sessionId, "import os\nlen([p for p in os.listdir('/proc') if p.isdigit()])");
    assert.ok(Number(count.result) <= 3, `stray processes left: ${count.result}`);
    await bystanderStillServes();
    await api.close(sessionId);
  });

  it("has no network: loopback to the service itself and DNS both fail", async () => {
    const { sessionId } = await api.create();
    const port = Number(service.address.split(":").pop());
    const connect = await api.execute(
      sessionId,
      `import socket\nsocket.create_connection(("127.0.0.1", ${port}), timeout=2)`,
    );
    assertModelFailure(connect, "ABORTED", /Error$/);
    const dns = await api.execute(sessionId, "import socket\nsocket.getaddrinfo('example.com', 80)");
    assertModelFailure(dns, "ABORTED", /gaierror/);
    await api.close(sessionId);
  });

  it("sees no host files, no host environment, and cannot write outside /tmp", async () => {
    const { sessionId } = await api.create();
    assertModelFailure(await api.execute(sessionId, "open('/etc/passwd').read()"), "ABORTED", /FileNotFoundError/);
    const host = await api.execute(
      sessionId,
      `import os\n(os.path.exists(${JSON.stringify(process.cwd())}), sorted(os.listdir('/')), [k for k in os.environ if 'TOOLPLANE' in k or k == 'USER'], os.getuid())`,
    );
    assert.equal(host.result, "(False, ['bin', 'dev', 'etc', 'lib', 'lib64', 'opt', 'proc', 'tmp', 'usr'], [], 65534)");
    for (const path of ["/usr/lib/evil", "/evil", "/etc/evil", "/opt/toolplane/kernel.py"]) {
      assertModelFailure(await api.execute(sessionId, `open(${JSON.stringify(path)}, 'w')`), "ABORTED", /Error$/);
    }
    const tmp = await api.execute(sessionId, "open('/tmp/ok.txt', 'w').write('fine')\nopen('/tmp/ok.txt').read()");
    assert.equal(tmp.result, "'fine'");
    await api.close(sessionId);
  });

  it("cuts 50 MB of output at the cap with an explicit marker", async () => {
    const { sessionId } = await api.create({
      limits: { maxOutputBytes: 4096, timeoutMs: 0, memoryMb: 0, maxImages: 0 },
    });
    const flood = await api.execute(
      sessionId,
      "import sys\nfor _ in range(50):\n    sys.stdout.write('z' * 1024 * 1024)",
    );
    assert.equal(flood.error, undefined);
    assert.equal(flood.stdoutTruncated, true);
    assert.ok(flood.stdout.startsWith("z".repeat(4096)));
    assert.match(flood.stdout, /\[stdout truncated: 52424704 more bytes not shown; the cap is 4096 bytes/);
    assert.ok(flood.stdout.length < 4096 + 200);
    await bystanderStillServes();
    await api.close(sessionId);
  });

  it("code that kills its own interpreter is a MODEL failure (never a way out of a bad reward); the next call restarts it with a note", async () => {
    const { sessionId } = await api.create();
    const killed = await api.execute(sessionId, "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)");
    assert.equal(killed.error?.errorClass, ErrorClass.ERROR_CLASS_MODEL);
    assert.equal(killed.error?.code, "ABORTED");
    assert.equal(killed.error?.type, "InterpreterDied");
    assert.match(killed.error?.message ?? "", /signal SIGKILL|code 137/);
    const next = await api.execute(sessionId, "'back'");
    assert.equal(next.result, "'back'");
    assert.match(next.stderr, /restarted/);
    await bystanderStillServes();
    await api.close(sessionId);
  });

  it("reset drops state and rebinds the input images; close frees the session", async () => {
    const { sessionId } = await api.create({
      images: [{ name: "image_1", image: { data: jpeg, mimeType: "", width: 0, height: 0 } }],
    });
    await api.execute(sessionId, "z = 5\nimage_1 = image_1.resize((2, 2))");
    await api.reset(sessionId);
    const after = await api.execute(sessionId, "('z' in globals(), image_1.size)");
    assert.equal(after.result, "(False, (64, 48))");
    await api.close(sessionId);
    await assert.rejects(api.execute(sessionId, "1"), (error) => assertRpcError(error, NOT_FOUND, "MODEL"));
    await assert.rejects(api.close(sessionId), (error) => assertRpcError(error, NOT_FOUND, "MODEL"));
    await assert.rejects(api.reset(sessionId), (error) => assertRpcError(error, NOT_FOUND, "MODEL"));
  });

  it("closes a session after its idle TTL", async () => {
    const { sessionId } = await api.create({ idleTtlSeconds: 1 });
    await new Promise((resolve) => setTimeout(resolve, 2500));
    await assert.rejects(api.execute(sessionId, "1"), (error) => assertRpcError(error, NOT_FOUND, "MODEL", /idle TTL/));
  });

  it("rejects bad requests with INVALID_ARGUMENT naming the field", async () => {
    const cases: [Partial<CreateSessionRequest>, RegExp][] = [
      [{ limits: { timeoutMs: 10_000_000, memoryMb: 0, maxOutputBytes: 0, maxImages: 0 } }, /limits\.timeout_ms/],
      [{ limits: { timeoutMs: 0, memoryMb: 1_000_000, maxOutputBytes: 0, maxImages: 0 } }, /limits\.memory_mb/],
      [{ limits: { timeoutMs: 0, memoryMb: 8, maxOutputBytes: 0, maxImages: 0 } }, /limits\.memory_mb=8 is below/],
      [{ language: Language.LANGUAGE_UNSPECIFIED }, /language/],
      [
        { images: [{ name: "image_1", image: { data: Buffer.from("nope"), mimeType: "", width: 0, height: 0 } }] },
        /images\[0\]\.image\.data/,
      ],
      [{ images: [{ name: "1bad", image: { data: jpeg, mimeType: "", width: 0, height: 0 } }] }, /images\[0\]\.name/],
      [
        {
          images: [
            { name: "image_1", image: { data: jpeg, mimeType: "", width: 0, height: 0 } },
            { name: "image_1", image: { data: jpeg, mimeType: "", width: 0, height: 0 } },
          ],
        },
        /images\[1\]\.name .* repeated/,
      ],
      [
        { images: [{ name: "image_1", image: { sha256: "ab", mimeType: "", width: 0, height: 0 } }] },
        /images\[0\]\.image\.data is required/,
      ],
    ];
    for (const [request, message] of cases) {
      await assert.rejects(api.create(request), (error) => assertRpcError(error, INVALID_ARGUMENT, "MODEL", message));
    }
    await assert.rejects(api.execute(bystander, "1", 10_000_000), (error) =>
      assertRpcError(error, INVALID_ARGUMENT, "MODEL", /timeout_ms/),
    );
  });
});

describe("code service session cap", () => {
  let service: SpawnedService;
  let api: ReturnType<typeof codeClient>;
  let lastOpened = "";
  before(async () => {
    service = await spawnService("code", {
      TOOLPLANE_CODE_FORK_POOL_SIZE: "1",
      TOOLPLANE_CODE_MAX_SESSIONS: "2",
      TOOLPLANE_CODE_MAX_WAITING_CREATES: "1",
      TOOLPLANE_CODE_RETRY_AFTER_MS: "1500",
    });
    api = codeClient(service.address, Language.LANGUAGE_PYTHON, { label: "integration" });
  });
  after(async () => {
    api?.client.close();
    await service?.stop();
  });

  it("beyond max_sessions a creation waits for a slot; beyond the wait queue it is RESOURCE_EXHAUSTED with a retry hint", async () => {
    const first = await api.create();
    await api.create();
    const waiting = api.create();
    await new Promise((resolve) => setTimeout(resolve, 100));
    await assert.rejects(api.create(), (error) => {
      assertRpcError(error, RESOURCE_EXHAUSTED, "INFRASTRUCTURE", /max_sessions/);
      assert.equal((error as ToolplaneError).retryAfterMs, 1500);
      return true;
    });
    await api.close(first.sessionId);
    const third = await waiting;
    assert.ok((third.timing?.queueMs ?? 0) >= 50, "the wait for a slot is reported as queue_ms");
    assert.equal((await api.execute(third.sessionId, "6 * 7")).result, "42");
    lastOpened = third.sessionId;
  });

  it("a caller whose deadline passes while it waits for a slot gets DEADLINE_EXCEEDED and leaves nothing behind", async () => {
    // max_sessions are open (the previous test's): this caller can only wait, and gives up first.
    const request = {
      language: Language.LANGUAGE_PYTHON,
      images: [],
      limits: undefined,
      idleTtlSeconds: 0,
      label: "late",
    };
    await assert.rejects(
      invoke(api.client, api.client.createSession, request, { deadlineMs: Date.now() + 300 }),
      (error) => assertRpcError(error, DEADLINE_EXCEEDED, "INFRASTRUCTURE"),
    );
    // The departed caller took no slot: the one freed now goes to the next caller at once.
    await api.close(lastOpened);
    const next = await api.create();
    assert.equal((await api.execute(next.sessionId, "1 + 1")).result, "2");
  });
});

describe("code service CreateSession whose caller left", () => {
  let service: SpawnedService;
  let api: ReturnType<typeof codeClient>;
  before(async () => {
    // No warm kernels: every creation forks, so a short deadline passes while the kernel is being made.
    service = await spawnService("code", {
      TOOLPLANE_CODE_FORK_POOL_SIZE: "0",
      TOOLPLANE_CODE_MAX_SESSIONS: "3",
      TOOLPLANE_METRICS_PORT: "0",
    });
    api = codeClient(service.address, Language.LANGUAGE_PYTHON, { label: "integration" });
  });
  after(async () => {
    api?.client.close();
    await service?.stop();
  });

  it("closes at once the sessions created for callers who have gone, so they hold no slot", async () => {
    const request = {
      language: Language.LANGUAGE_PYTHON,
      images: [],
      limits: undefined,
      idleTtlSeconds: 0,
      label: "gone",
    };
    const calls = Array.from({ length: 6 }, () =>
      invoke(api.client, api.client.createSession, request, { deadlineMs: Date.now() + 5 }),
    );
    // Every rejection gets its handler at once: they arrive in separate ticks under load.
    await Promise.all(
      calls.map((call) => assert.rejects(call, (error) => assertRpcError(error, DEADLINE_EXCEEDED, "INFRASTRUCTURE"))),
    );
    const open = 'toolplane_pool_size{pool="sessions_python",state="busy"}';
    const deadline = Date.now() + 10_000;
    while ((metricValue(await scrapeMetrics(service), open) ?? 0) > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.equal(metricValue(await scrapeMetrics(service), open), 0, "no session is left owned by nobody");
    // Every slot is free: max_sessions sessions open at once, without waiting for an idle TTL.
    const sessions = await Promise.all([api.create(), api.create(), api.create()]);
    for (const { sessionId } of sessions) assert.equal((await api.execute(sessionId, "1 + 1")).result, "2");
  });
});

describe("code service shutdown", () => {
  async function serviceWithSandboxes(): Promise<{ service: SpawnedService; sandboxes: number[] }> {
    const service = await spawnService("code", { TOOLPLANE_CODE_POOL_SIZE: "1" });
    const api = codeClient(service.address, Language.LANGUAGE_PYTHON, { label: "integration" });
    const { sessionId } = await api.create();
    await api.execute(sessionId, "x = 1");
    api.client.close();
    const sandboxes = descendants(service.child.pid as number);
    assert.ok(sandboxes.length >= 2, "the session's and the pool's sandboxes are running");
    return { service, sandboxes };
  }

  async function assertGone(sandboxes: number[]): Promise<void> {
    const deadline = Date.now() + 5000;
    while (sandboxes.some((pid) => existsSync(`/proc/${pid}`)) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    assert.deepEqual(
      sandboxes.filter((pid) => existsSync(`/proc/${pid}`)),
      [],
    );
  }

  it("stops on SIGTERM with exit code 0 and leaves no sandbox behind", async () => {
    const { service, sandboxes } = await serviceWithSandboxes();
    assert.equal(await service.stop("SIGTERM"), 0);
    await assertGone(sandboxes);
  });

  it("leaves no sandbox behind even when killed outright", async () => {
    const { service, sandboxes } = await serviceWithSandboxes();
    await service.stop("SIGKILL");
    await assertGone(sandboxes);
  });
});

describe("code service start-up", () => {
  async function failedStart(env: Record<string, string>): Promise<{ code: number | null; stderr: string }> {
    const child = spawn(process.execPath, [join(distRoot, "services", "code", "src", "main.js")], {
      env: { ...process.env, TOOLPLANE_GRPC_PORT: "0", ...env },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    return { code, stderr };
  }

  it("refuses to start when bubblewrap is missing, naming the variable", async () => {
    const { code, stderr } = await failedStart({ TOOLPLANE_CODE_BWRAP_PATH: "/nonexistent/bwrap" });
    assert.equal(code, 1);
    assert.match(stderr, /TOOLPLANE_CODE_BWRAP_PATH=\/nonexistent\/bwrap/);
  });

  it("refuses a default above its maximum, naming both variables", async () => {
    const { code, stderr } = await failedStart({
      TOOLPLANE_CODE_DEFAULT_TIMEOUT_MS: "9000",
      TOOLPLANE_CODE_MAX_TIMEOUT_MS: "1000",
    });
    assert.equal(code, 1);
    assert.match(stderr, /TOOLPLANE_CODE_DEFAULT_TIMEOUT_MS=9000: above TOOLPLANE_CODE_MAX_TIMEOUT_MS=1000/);
  });
});
