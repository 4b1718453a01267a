import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { type ExecuteResponse, Language } from "../../generated/toolplane/code/v1/code.js";
import { ErrorClass } from "../../generated/toolplane/common/v1/common.js";
import { invoke, ToolplaneError } from "../../services/runtime/src/index.js";
import { assertModelFailure, codeClient } from "../support/code.js";
import { type SpawnedService, spawnService } from "../support/processes.js";

/**
 * Issue #18, code service rows: whatever model code does, its call ends with a MODEL result (or OK with a
 * note), never an INFRASTRUCTURE error, and no other session loses anything.
 */
describe("code service blame (issue #18)", () => {
  let service: SpawnedService;
  let python: ReturnType<typeof codeClient>;
  let javascript: ReturnType<typeof codeClient>;

  before(async () => {
    // One JS host: the bomb and the bystander share it, the case that used to lose the bystander's state.
    service = await spawnService("code", {
      TOOLPLANE_CODE_JS_HOST_PROCESSES: "1",
      TOOLPLANE_CODE_KILL_GRACE_MS: "1000",
    });
    const limits = { timeoutMs: 10_000, memoryMb: 0, maxOutputBytes: 64 * 1024, maxImages: 10 };
    python = codeClient(service.address, Language.LANGUAGE_PYTHON, { limits, label: "blame" });
    javascript = codeClient(service.address, Language.LANGUAGE_JAVASCRIPT, { limits, label: "blame" });
  });
  after(async () => {
    python?.client.close();
    javascript?.client.close();
    await service?.stop();
  });

  /**
   * Sends a cell with a 300 ms deadline while the code service is SIGSTOPped (the service this test spawned, by its
   * pid), resumes it after the deadline, and returns how the call ended (undefined when it succeeded).
   */
  async function executeWhileStopped(
    client: ReturnType<typeof codeClient>["client"],
    sessionId: string,
    code: string,
  ): Promise<unknown> {
    const pid = service.child.pid;
    assert.ok(pid !== undefined);
    process.kill(pid, "SIGSTOP");
    const late = invoke(
      client,
      client.execute,
      { sessionId, code, timeoutMs: 0, fixIndentation: false },
      { deadlineMs: Date.now() + 300 },
    ).then(
      () => undefined,
      (error: unknown) => error,
    );
    await new Promise((resolve) => setTimeout(resolve, 800));
    process.kill(pid, "SIGCONT");
    return late;
  }

  /** A cell with a 5 s timeout under the caller's own deadline `deadlineInMs` from now. */
  function executeUnderDeadline(
    target: ReturnType<typeof codeClient>,
    sessionId: string,
    code: string,
    deadlineInMs: number,
  ): Promise<ExecuteResponse> {
    return invoke(
      target.client,
      target.client.execute,
      { sessionId, code, timeoutMs: 5000, fixIndentation: false },
      { deadlineMs: Date.now() + deadlineInMs },
    );
  }

  it("JS: a heap bomb V8 cannot stop ends its own cell with MODEL RESOURCE_EXHAUSTED; a session on the same host keeps its variables", async () => {
    const bystander = (await javascript.create()).sessionId;
    await javascript.execute(bystander, "globalThis.kept = 'mine'");
    // The service's default memory limit (1 GiB): V8 alone would take ~20 s to give up on this heap.
    const culprit = (
      await javascript.create({ limits: { timeoutMs: 30_000, memoryMb: 0, maxOutputBytes: 4096, maxImages: 1 } })
    ).sessionId;
    const started = performance.now();
    const bomb = await javascript.execute(culprit, "new Array(2 ** 30).fill(0)");
    const elapsedMs = performance.now() - started;
    assertModelFailure(bomb, "RESOURCE_EXHAUSTED", /MemoryLimitError/);
    process.stdout.write(
      `JS heap bomb (default memory_mb) answered as MODEL RESOURCE_EXHAUSTED in ${Math.round(elapsedMs)} ms\n`,
    );
    const still = await javascript.execute(bystander, "kept");
    assert.equal(still.result, '"mine"', JSON.stringify(still));
    const next = await javascript.execute(culprit, "6 * 7");
    assert.equal(next.result, "42");
    assert.match(next.stderr, /exhausted the JavaScript heap/);
    await Promise.all([javascript.close(bystander), javascript.close(culprit)]);
  });

  it("Python: a cell that swallows its timeout is the model's timeout, inside the caller's deadline", async () => {
    const session = (await python.create()).sessionId;
    await python.execute(session, "kept = 7");
    const code = "import time\nwhile True:\n    try:\n        time.sleep(10)\n    except BaseException:\n        pass";
    // Past the caller's deadline the client itself would fail the call with DEADLINE_EXCEEDED (no MODEL error).
    const response = await executeUnderDeadline(python, session, code, 5000);
    assertModelFailure(response, "DEADLINE_EXCEEDED", /TimeoutError/);
    await python.close(session);
  });

  it("Python: heavy open figures then a sleep are the model's timeout, inside the caller's deadline", async () => {
    const session = (await python.create()).sessionId;
    const code = [
      "import time, numpy as np, matplotlib.pyplot as plt",
      "for i in range(5):",
      "    fig = plt.figure(figsize=(12, 9), dpi=100)",
      "    plt.scatter(np.random.rand(200000), np.random.rand(200000), s=1)",
      "time.sleep(60)",
    ].join("\n");
    const response = await executeUnderDeadline(python, session, code, 5000);
    assert.equal(response.error?.errorClass, ErrorClass.ERROR_CLASS_MODEL, JSON.stringify(response.error));
    assert.equal(response.error?.code, "DEADLINE_EXCEEDED");
    await python.close(session);
  });

  it("JS: a stuck cell under a caller deadline is the model's timeout too", async () => {
    const session = (await javascript.create()).sessionId;
    const response = await executeUnderDeadline(javascript, session, "while (true) {}", 3000);
    assertModelFailure(response, "DEADLINE_EXCEEDED", /TimeoutError/);
    await javascript.close(session);
  });

  it("Python: junk, SVG and oversized images slipped into the kernel's own list are dropped with a note; the call is OK", async () => {
    const session = (await python.create()).sessionId;
    const code = [
      "import gc, io, zlib, struct",
      "from PIL import Image",
      "display(Image.new('RGB', (8, 8)))",
      "k = next(o for o in gc.get_objects() if type(o).__name__ == 'Kernel')",
      "k.images.append(b'\\x89PNG\\r\\n\\x1a\\n' + b'junk' * 100)",
      'k.images.append(b\'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>\')',
      "def chunk(t, d): return struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))",
      "c = zlib.compressobj(1); row = b'\\x00' * (16000 // 8 + 1)",
      "raw = b''.join(c.compress(row) for _ in range(16000)) + c.flush()",
      "k.images.append(b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', 16000, 16000, 1, 0, 0, 0, 0)) + chunk(b'IDAT', raw) + chunk(b'IEND', b''))",
    ].join("\n");
    const response = await python.execute(session, code);
    assert.equal(response.error, undefined, JSON.stringify(response.error));
    assert.equal(response.images.length, 1, response.stderr);
    assert.equal(response.images[0]?.width, 8);
    assert.match(response.stderr, /image 2 dropped: it does not decode/);
    assert.match(response.stderr, /image 3 dropped: its bytes are not a PNG/);
    assert.match(response.stderr, /image 4 dropped: 16000x16000 is above the 50000000 pixel limit/);
    await python.close(session);
  });

  it("Python: savefig.dpi cannot push a figure past the pixel cap, and later cells still capture figures", async () => {
    const session = (await python.create()).sessionId;
    const big = await python.execute(
      session,
      "import matplotlib.pyplot as plt\nplt.rcParams['savefig.dpi'] = 2000\nplt.plot([1, 2])\nplt.show()",
    );
    assert.equal(big.error, undefined, JSON.stringify(big.error));
    assert.equal(big.images.length, 0);
    assert.match(big.stderr, /12800x9600 is above the 50000000 pixel limit/);
    const later = await python.execute(session, "plt.rcParams['savefig.dpi'] = 100\nplt.plot([3, 1])\nplt.show()");
    assert.equal(later.error, undefined, JSON.stringify(later.error));
    assert.equal(later.images.length, 1);
    const size = await sharp(Buffer.from(later.images[0]?.data ?? [])).metadata();
    assert.equal(size.width, 640);
    await python.close(session);
  });

  it("JS: display() refuses SVG before any decoder sees it", async () => {
    const session = (await javascript.create()).sessionId;
    const response = await javascript.execute(
      session,
      'display(Uint8Array.from(\'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>\', (c) => c.charCodeAt(0)), \'\')',
    );
    assertModelFailure(response, "ABORTED", /TypeError/);
    assert.match(response.stderr, /not an image of an accepted type/);
    await javascript.close(session);
  });

  it("Python: a background thread's prints do not appear in later cells", async () => {
    const session = (await python.create()).sessionId;
    const first = await python.execute(
      session,
      "import threading, time\ndef chatter():\n    for i in range(40):\n        print('BACKGROUND', i)\n        time.sleep(0.02)\nthreading.Thread(target=chatter, daemon=True).start()\ntime.sleep(0.1)",
    );
    assert.match(first.stdout, /BACKGROUND 0/);
    const later = await python.execute(session, "import time\ntime.sleep(0.3)\nprint('mine')");
    assert.equal(later.stdout, "mine\n");
    await python.close(session);
  });

  it("a call whose deadline passed while the service was stopped is refused without touching the session", async () => {
    const session = (await python.create()).sessionId;
    await python.execute(session, "kept = 'state'");
    const error = await executeWhileStopped(python.client, session, "print('ran')");
    assert.ok(error instanceof ToolplaneError, String(error));
    assert.equal(error.code, 4 /* DEADLINE_EXCEEDED */);
    const next = await python.execute(session, "print(kept)");
    assert.equal(next.stdout, "state\n", JSON.stringify(next));
    assert.doesNotMatch(next.stderr, /restart|lost/);
    assert.equal(next.error?.errorClass ?? ErrorClass.ERROR_CLASS_MODEL, ErrorClass.ERROR_CLASS_MODEL);
    await python.close(session);
  });
  it("JS: a call whose deadline passed while the service was stopped leaves the session's state alone", async () => {
    const session = (await javascript.create()).sessionId;
    await javascript.execute(session, "globalThis.kept = 'js state'");
    const error = await executeWhileStopped(javascript.client, session, "console.log('ran')");
    assert.ok(error instanceof ToolplaneError, String(error));
    const next = await javascript.execute(session, "kept");
    assert.equal(next.result, '"js state"', JSON.stringify(next));
    assert.equal(next.stderr, "");
    await javascript.close(session);
  });
});
