import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import type { ServerUnaryCall, sendUnaryData } from "@grpc/grpc-js";
import sharp from "sharp";
import { Language } from "../../generated/toolplane/code/v1/code.js";
import {
  ImageServiceService,
  type ProcessRequest,
  type ProcessResponse,
} from "../../generated/toolplane/image/v1/image.js";
import {
  createLogger,
  InvalidArgumentError,
  invoke,
  type RunningServer,
  startGrpcServer,
  toServiceError,
} from "../../services/runtime/src/index.js";
import { assertModelFailure, assertRpcError, codeClient } from "../support/code.js";
import { type SpawnedService, spawnService } from "../support/processes.js";

const INVALID_ARGUMENT = 3;
const NOT_FOUND = 5;
/** Small heaps keep the memory bombs quick and the machine's memory untouched. */
const LIMITS = { timeoutMs: 2000, memoryMb: 64, maxOutputBytes: 0, maxImages: 0 };

describe("code service, JavaScript, over a real socket", () => {
  let service: SpawnedService;
  let api: ReturnType<typeof codeClient>;

  before(async () => {
    service = await spawnService("code", {
      // No Python kernels are needed here; one sandbox host keeps the crash test deterministic.
      TOOLPLANE_CODE_POOL_SIZE: "0",
      TOOLPLANE_CODE_JS_POOL_SIZE: "2",
      TOOLPLANE_CODE_JS_HOST_PROCESSES: "1",
    });
    api = codeClient(service.address, Language.LANGUAGE_JAVASCRIPT, { limits: LIMITS, label: "integration-js" });
  });
  after(async () => {
    api?.client.close();
    await service?.stop();
  });

  /** A fresh session proves the service still creates and runs sessions. */
  async function stillServes(): Promise<void> {
    const { sessionId } = await api.create();
    const response = await api.execute(sessionId, "6 * 7");
    assert.equal(response.error, undefined, response.stderr);
    assert.equal(response.result, "42");
    await api.close(sessionId);
  }

  it("keeps state across executes and renders the last expression", async () => {
    const { sessionId, language, limits } = await api.create();
    assert.equal(language, Language.LANGUAGE_JAVASCRIPT);
    assert.equal(limits?.memoryMb, 64);
    const first = await api.execute(sessionId, "let xs = [1, 2, 3]; console.log('sum', xs.reduce((a, b) => a + b))");
    assert.equal(first.stdout, "sum 6\n");
    assert.equal(first.hasResult, false);
    const second = await api.execute(sessionId, "xs.map((x) => ({ x, label: 'n' + x }))");
    assert.equal(second.hasResult, true);
    assert.equal(second.result, '[ { x: 1, label: "n1" }, { x: 2, label: "n2" }, { x: 3, label: "n3" } ]');
    assert.equal((await api.execute(sessionId, "'quoted'")).result, '"quoted"');
    assert.ok(second.timing && second.timing.totalMs >= second.timing.executeMs);
    await api.close(sessionId);
  });

  it("binds input images and returns displayed images as PNG with their size", async () => {
    const jpeg = await sharp({ create: { width: 64, height: 48, channels: 3, background: "#c81e1e" } })
      .jpeg()
      .toBuffer();
    const { sessionId } = await api.create({
      images: [{ name: "image_1", image: { data: jpeg, mimeType: "", width: 0, height: 0 } }],
    });
    const described = await api.execute(sessionId, "[image_1.width, image_1.height, image_1.mime]");
    assert.equal(described.result, '[ 64, 48, "image/jpeg" ]');
    const shown = await api.execute(sessionId, "display(image_1)");
    assert.equal(shown.error, undefined, shown.stderr);
    assert.equal(shown.images.length, 1);
    assert.deepEqual(
      [shown.images[0]?.mimeType, shown.images[0]?.width, shown.images[0]?.height],
      ["image/png", 64, 48],
    );
    const helper = await api.execute(sessionId, "image.process(image_1, [{ invert: {} }])");
    assertModelFailure(helper, "ABORTED", /^ReferenceError$/);
    assert.match(helper.error?.message ?? "", /TOOLPLANE_IMAGE_ADDR/);
    await api.close(sessionId);
  });

  it("reports syntax errors and exceptions as MODEL failures and keeps the session", async () => {
    const { sessionId } = await api.create();
    await api.execute(sessionId, "let kept = 'still here'");
    assertModelFailure(await api.execute(sessionId, "let = ;"), "INVALID_ARGUMENT", /^SyntaxError$/);
    assertModelFailure(await api.execute(sessionId, "undefinedFunction()"), "ABORTED", /^ReferenceError$/);
    assert.equal((await api.execute(sessionId, "kept")).result, '"still here"');
    await api.close(sessionId);
  });

  it("stops an infinite loop with DEADLINE_EXCEEDED (MODEL) and keeps serving", async () => {
    const { sessionId } = await api.create();
    await api.execute(sessionId, "let before = 1");
    const looped = await api.execute(sessionId, "while (true) {}", 300);
    assertModelFailure(looped, "DEADLINE_EXCEEDED", /^TimeoutError$/);
    assert.equal((await api.execute(sessionId, "before")).result, "1", "a timeout keeps the state");
    await api.close(sessionId);
    await stillServes();
  });

  it("cuts a cell at the caller's gRPC deadline so the answer arrives and the state survives", async () => {
    const { sessionId } = await api.create({ limits: { ...LIMITS, timeoutMs: 10_000 } });
    await api.execute(sessionId, "let kept = 'yes'");
    const response = await invoke(
      api.client,
      api.client.execute,
      { sessionId, code: "while (true) {}", timeoutMs: 0, fixIndentation: false },
      { deadlineMs: Date.now() + 1000 },
    );
    assertModelFailure(response, "DEADLINE_EXCEEDED", /^TimeoutError$/);
    assert.equal((await api.execute(sessionId, "kept")).result, '"yes"');
    await api.close(sessionId);
  });

  it("disposes an isolate over its memory limit with RESOURCE_EXHAUSTED (MODEL); the next cell is told", async () => {
    const { sessionId } = await api.create();
    await api.execute(sessionId, "let before = 1");
    const bomb = await api.execute(sessionId, "const hoard = []; while (true) hoard.push({ n: hoard.length })", 20_000);
    assertModelFailure(bomb, "RESOURCE_EXHAUSTED", /^MemoryLimitError$/);
    const next = await api.execute(sessionId, "typeof before");
    assert.equal(next.result, '"undefined"');
    assert.match(next.stderr, /exceeded the memory limit of 64 MB; the JavaScript state was lost/);
    await api.close(sessionId);
    await stillServes();
  });

  it("contains a heap exhaustion V8 cannot stop: RESOURCE_EXHAUSTED for the culprit only, the bystander keeps its state", async () => {
    const bystander = (await api.create()).sessionId;
    await api.execute(bystander, "let mine = 1");
    const { sessionId } = await api.create();
    const bomb = await api.execute(sessionId, "new Array(2 ** 30).fill(0)", 60_000);
    assertModelFailure(bomb, "RESOURCE_EXHAUSTED", /^MemoryLimitError$/);
    const after = await api.execute(bystander, "typeof mine");
    assert.equal(after.error, undefined, after.stderr);
    assert.equal(after.result, '"number"');
    assert.equal(after.stderr, "");
    await api.close(sessionId);
    await api.close(bystander);
    await stillServes();
  });

  it("keeps prototype pollution inside the polluting session", async () => {
    const polluter = (await api.create()).sessionId;
    const neighbour = (await api.create()).sessionId;
    await api.execute(polluter, "Object.prototype.isAdmin = true; Array.prototype.includes = () => true; 0");
    assert.equal((await api.execute(polluter, "({}).isAdmin")).result, "true");
    assert.equal((await api.execute(neighbour, "[({}).isAdmin, [1].includes(2)]")).result, "[ undefined, false ]");
    await api.close(polluter);
    const fresh = (await api.create()).sessionId;
    // The polluter's isolate went back to the pool with a fresh context: nothing of it may show.
    assert.equal((await api.execute(fresh, "typeof ({}).isAdmin")).result, '"undefined"');
    await api.close(fresh);
    await api.close(neighbour);
  });

  it("offers no process, require, fetch, timers or escape through constructors", async () => {
    const { sessionId } = await api.create();
    const types = await api.execute(
      sessionId,
      "[typeof process, typeof require, typeof globalThis.fetch, typeof setTimeout, typeof Buffer]",
    );
    assert.equal(types.result, '[ "undefined", "undefined", "undefined", "undefined", "undefined" ]');
    assertModelFailure(await api.execute(sessionId, "process.exit(1)"), "ABORTED", /^ReferenceError$/);
    assertModelFailure(await api.execute(sessionId, "require('child_process')"), "ABORTED", /^ReferenceError$/);
    assertModelFailure(await api.execute(sessionId, "fetch('http://127.0.0.1:1')"), "ABORTED", /^ReferenceError$/);
    assertModelFailure(
      await api.execute(sessionId, "constructor.constructor('return process')().exit(1)"),
      "ABORTED",
      /^ReferenceError$/,
    );
    assertModelFailure(await api.execute(sessionId, "import('node:fs')"), "ABORTED");
    await api.close(sessionId);
    await stillServes();
  });

  it("cuts stdout and stderr at max_output_bytes with a marker", async () => {
    const { sessionId } = await api.create({ limits: { ...LIMITS, maxOutputBytes: 64 } });
    const response = await api.execute(sessionId, "console.log('x'.repeat(1000)); console.error('y'.repeat(1000))");
    assert.equal(response.stdoutTruncated, true);
    assert.equal(response.stderrTruncated, true);
    assert.match(response.stdout, /^x{64}\n\[output truncated: stdout exceeded the limit of 64 bytes\]\n$/);
    assert.match(response.stderr, /^y{64}\n\[output truncated: stderr exceeded the limit of 64 bytes\]\n$/);
    await api.close(sessionId);
  });

  it("rejects a memory limit below the isolate minimum as INVALID_ARGUMENT naming it", async () => {
    await assert.rejects(api.create({ limits: { ...LIMITS, memoryMb: 4 } }), (error) =>
      assertRpcError(error, INVALID_ARGUMENT, "MODEL", /memory_mb=4 is below the JavaScript minimum of 8/),
    );
  });

  it("runs cells of many sessions at once, each in its own state", async () => {
    const sessions = await Promise.all(Array.from({ length: 8 }, () => api.create()));
    await Promise.all(sessions.map(({ sessionId }, index) => api.execute(sessionId, `let mine = ${index}`)));
    const results = await Promise.all(
      sessions.map(({ sessionId }) =>
        api.execute(sessionId, "const until = Date.now() + 100; while (Date.now() < until) {} mine"),
      ),
    );
    assert.deepEqual(
      results.map((response) => response.result),
      sessions.map((_session, index) => String(index)),
    );
    await Promise.all(sessions.map(({ sessionId }) => api.close(sessionId)));
  });

  it("resets state on ResetSession and answers NOT_FOUND after CloseSession", async () => {
    const { sessionId } = await api.create();
    await api.execute(sessionId, "let temporary = 1");
    await api.reset(sessionId);
    assert.equal((await api.execute(sessionId, "typeof temporary")).result, '"undefined"');
    await api.close(sessionId);
    await assert.rejects(api.execute(sessionId, "1"), (error) => assertRpcError(error, NOT_FOUND, "MODEL"));
  });
});

describe("code service, JavaScript, image.process through the sandbox host", () => {
  const requests: ProcessRequest[] = [];
  let imageService: RunningServer;
  let service: SpawnedService;
  let api: ReturnType<typeof codeClient>;

  before(async () => {
    // A stand-in for the image service (built in its own service): it crops with sharp and nothing else.
    imageService = await startGrpcServer({
      host: "127.0.0.1",
      port: 0,
      services: [
        {
          name: "toolplane.image.v1.ImageService",
          definition: ImageServiceService,
          implementation: {
            process(call: ServerUnaryCall<ProcessRequest, ProcessResponse>, callback: sendUnaryData<ProcessResponse>) {
              requests.push(call.request);
              const box = call.request.operations[0]?.crop?.box;
              if (!box) {
                callback(toServiceError(new InvalidArgumentError("operations[0]: only crop here")) as never, null);
                return;
              }
              const [width, height] = [box.right - box.left, box.bottom - box.top];
              sharp(call.request.image?.data)
                .extract({ left: box.left, top: box.top, width, height })
                .png()
                .toBuffer()
                .then((data) =>
                  callback(null, {
                    image: { data, mimeType: "image/png", width, height },
                    input: undefined,
                    timing: undefined,
                  }),
                );
            },
          },
        },
      ],
      protoFiles: ["toolplane/image/v1/image.proto"],
      logger: createLogger("stand-in-image", "silent"),
    });
    service = await spawnService("code", {
      TOOLPLANE_CODE_POOL_SIZE: "0",
      TOOLPLANE_CODE_JS_POOL_SIZE: "1",
      TOOLPLANE_CODE_JS_HOST_PROCESSES: "1",
      TOOLPLANE_IMAGE_ADDR: imageService.address,
    });
    api = codeClient(service.address, Language.LANGUAGE_JAVASCRIPT, { limits: LIMITS, label: "integration-js" });
  });
  after(async () => {
    api?.client.close();
    await service?.stop();
    await imageService?.shutdown(1000);
  });

  it("crops through the image service and displays the result; its MODEL errors stay catchable", async () => {
    const png = await sharp({ create: { width: 40, height: 30, channels: 3, background: "#1e1ec8" } })
      .png()
      .toBuffer();
    const { sessionId } = await api.create({
      images: [{ name: "image_1", image: { data: png, mimeType: "", width: 0, height: 0 } }],
    });
    const cropped = await api.execute(
      sessionId,
      "const crop = image.process(image_1, [{ crop: { box: { left: 10, top: 5, right: 30, bottom: 25 } } }]); display(crop); [crop.width, crop.height]",
    );
    assert.equal(cropped.error, undefined, cropped.stderr);
    assert.equal(cropped.result, "[ 20, 20 ]");
    assert.deepEqual([cropped.images[0]?.width, cropped.images[0]?.height], [20, 20]);
    assert.equal(requests.at(-1)?.image?.data?.length, png.length, "the input image's bytes were sent");
    const refused = await api.execute(
      sessionId,
      "try { image.process(image_1, [{ invert: {} }]) } catch (e) { e.name + ': ' + e.message }",
    );
    assert.equal(refused.result, '"ImageProcessError: image.process: operations[0]: only crop here"');
    await api.close(sessionId);
  });
});

describe("code service, JavaScript, shutdown", () => {
  it("stops its sandbox host processes on SIGTERM and exits 0", async () => {
    const service = await spawnService("code", {
      TOOLPLANE_CODE_POOL_SIZE: "0",
      TOOLPLANE_CODE_JS_HOST_PROCESSES: "2",
    });
    const api = codeClient(service.address, Language.LANGUAGE_JAVASCRIPT, { limits: LIMITS, label: "integration-js" });
    const { sessionId } = await api.create();
    assert.equal((await api.execute(sessionId, "1 + 1")).result, "2");
    api.client.close();
    const hosts = childPids(service.child.pid ?? 0).filter((pid) => commandLine(pid).includes("host-process.js"));
    assert.equal(hosts.length, 2, "one child per sandbox host");
    assert.equal(await service.stop("SIGTERM"), 0);
    for (const pid of hosts) assert.equal(isAlive(pid), false, `sandbox host ${pid} outlived the service`);
  });
});

/** Direct children of a process (Linux /proc): the sandbox hosts among them are found by their command line. */
function childPids(parent: number): number[] {
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
        return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === parent;
      } catch {
        return false; // the process ended while we looked
      }
    })
    .map(Number);
}

function commandLine(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8");
  } catch {
    return "";
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}
