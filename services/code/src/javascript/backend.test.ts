import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type ServerUnaryCall, type sendUnaryData, status } from "@grpc/grpc-js";
import sharp from "sharp";
import {
  ImageServiceService,
  type ProcessRequest,
  type ProcessResponse,
} from "../../../../generated/toolplane/image/v1/image.js";
import { waitFor } from "../../../../test/support/processes.js";
import {
  createLogger,
  DeadlineExceededError,
  InvalidArgumentError,
  type RunningServer,
  startGrpcServer,
  type ToolplaneError,
  toServiceError,
  UnavailableError,
} from "../../../runtime/src/index.js";
import type { ExecutionOutcome, InputImage, LanguageBackend, LanguageSession, ResolvedLimits } from "../backend.js";
import { createJavaScriptBackend, type JavaScriptBackendOptions } from "./backend.js";

const BASE: JavaScriptBackendOptions = {
  isolation: "in-process",
  poolSize: 2,
  poolMemoryMb: 64,
  imageServiceHint: "TOOLPLANE_IMAGE_SERVICE_ADDRESS",
  maxDisplayBytes: 16 * 1024 * 1024,
  maxDisplayPixels: 50_000_000,
  hardKillGraceMs: 1000,
};
const LIMITS: ResolvedLimits = { timeoutMs: 2000, memoryMb: 64, maxOutputBytes: 4096, maxImages: 3 };

async function run(session: LanguageSession, code: string, timeoutMs = LIMITS.timeoutMs): Promise<ExecutionOutcome> {
  return session.execute(code, { timeoutMs, signal: new AbortController().signal });
}

async function value(session: LanguageSession, code: string): Promise<string | undefined> {
  const outcome = await run(session, code);
  assert.equal(outcome.failure, undefined, `unexpected failure: ${JSON.stringify(outcome.failure)}`);
  return outcome.result;
}

async function testImage(format: "png" | "jpeg", width = 40, height = 20): Promise<Buffer> {
  const image = sharp({ create: { width, height, channels: 3, background: { r: 200, g: 30, b: 30 } } });
  return format === "png" ? image.png().toBuffer() : image.jpeg().toBuffer();
}

describe("JavaScript backend, in process", () => {
  let backend: LanguageBackend;
  let jpeg: Buffer;
  let images: InputImage[];

  before(async () => {
    backend = createJavaScriptBackend(BASE);
    await backend.start();
    jpeg = await testImage("jpeg");
    images = [{ name: "image_1", data: jpeg, mimeType: "image/jpeg", width: 40, height: 20 }];
  });
  after(() => backend.stop());

  it("keeps variables, functions and classes between cells", async () => {
    const session = await backend.createSession([], LIMITS);
    await value(session, "let counter = 1; const fixed = 'x'; function twice(n) { return 2 * n } class Box { v = 3 }");
    await value(session, "counter += 1");
    assert.equal(await value(session, "[counter, fixed, twice(counter), new Box().v]"), '[ 2, "x", 4, 3 ]');
    await session.close();
  });

  it("renders the last expression as JSON-ish text and gives no result for undefined", async () => {
    const session = await backend.createSession([], LIMITS);
    assert.equal(await value(session, "1 + 1"), "2");
    assert.equal(await value(session, "'it\\'s'"), '"it\'s"');
    assert.equal(await value(session, "undefined"), undefined);
    assert.equal(await value(session, "let declared = 5"), undefined);
    assert.equal(await value(session, "null"), "null");
    assert.equal(await value(session, "-0"), "-0");
    assert.equal(await value(session, "10n ** 20n"), "100000000000000000000n");
    assert.equal(
      await value(session, "({ a: 1, 'b-c': [true, undefined], m: new Map([['k', 1]]), s: new Set([2]) })"),
      '{ a: 1, "b-c": [ true, undefined ], m: Map(1) { "k" => 1 }, s: Set(1) { 2 } }',
    );
    assert.equal(
      await value(session, "const loop = { name: 'x' }; loop.self = loop; loop"),
      '{ name: "x", self: [Circular] }',
    );
    assert.equal(await value(session, "function named() {}; named"), "[Function: named]");
    assert.equal(await value(session, "new Uint8Array(3)"), "Uint8Array(3) [ 0, 0, 0 ]");
    assert.equal(
      await value(session, "({ deep: { er: { still: { deeper: { x: 1 } } } } })"),
      "{ deep: { er: { still: { deeper: [Object] } } } }",
    );
    const long = await value(session, "Array.from({ length: 500 }, (_, i) => i)");
    assert.match(long ?? "", /\.\.\. 400 more items \]$/);
    await session.close();
  });

  it("sends console.log/info/debug to stdout and console.error/warn to stderr", async () => {
    const session = await backend.createSession([], LIMITS);
    const outcome = await run(
      session,
      "console.log('a', 1, { b: [2] }); console.info('i'); console.debug('d'); console.error('e'); console.warn('w')",
    );
    assert.equal(outcome.stdout, "a 1 { b: [ 2 ] }\ni\nd\n");
    assert.equal(outcome.stderr, "e\nw\n");
    assert.equal(outcome.result, undefined);
    await session.close();
  });

  it("prints a 50k-line loop within the cell's time (output is sent to the host in chunks), in order", async () => {
    const session = await backend.createSession([], { ...LIMITS, maxOutputBytes: 1024 * 1024 });
    const outcome = await run(
      session,
      "for (let i = 0; i < 50000; i++) { console.log(i); if (i % 10000 === 0) console.error('e' + i) }",
    );
    assert.equal(outcome.failure, undefined, outcome.failure?.message);
    const lines = outcome.stdout.trimEnd().split("\n");
    assert.equal(lines.length, 50000);
    assert.deepEqual([lines[0], lines[49999]], ["0", "49999"]);
    assert.equal(outcome.stderr, "e0\ne10000\ne20000\ne30000\ne40000\n");
    await session.close();
  });

  it("cuts each stream at max_output_bytes with an explicit marker", async () => {
    const session = await backend.createSession([], { ...LIMITS, maxOutputBytes: 100 });
    const outcome = await run(
      session,
      "for (let i = 0; i < 1000; i++) console.log('é'.repeat(30)); console.error('short')",
    );
    assert.equal(outcome.stdoutTruncated, true);
    assert.equal(outcome.stderrTruncated, false);
    const [kept, marker] = outcome.stdout.split("\n[output truncated");
    assert.ok(Buffer.byteLength(kept ?? "") <= 100, "kept text stays within the cap");
    assert.ok(!(kept ?? "").includes("\uFFFD"), "no broken UTF-8 sequence at the cut");
    assert.equal(marker, ": stdout exceeded the limit of 100 bytes]\n");
    assert.equal(outcome.stderr, "short\n");
    // The cap is per cell: the next cell starts from zero.
    assert.equal((await run(session, "console.log('again')")).stdout, "again\n");
    await session.close();
  });

  it("reports a syntax error as INVALID_ARGUMENT and a thrown error as ABORTED, keeping the state", async () => {
    const session = await backend.createSession([], LIMITS);
    await value(session, "let kept = 42");
    const syntax = await run(session, "let x = ;");
    assert.equal(syntax.failure?.code, "INVALID_ARGUMENT");
    assert.equal(syntax.failure?.type, "SyntaxError");
    assert.match(syntax.stderr, /SyntaxError: Unexpected token/);
    const thrown = await run(session, "console.log('before'); function inner() { return null.x } inner()");
    assert.equal(thrown.failure?.code, "ABORTED");
    assert.equal(thrown.failure?.type, "TypeError");
    assert.equal(thrown.stdout, "before\n");
    assert.match(thrown.failure?.traceback ?? "", /at inner \(cell-\d+\.js:1:\d+\)/);
    assert.ok(!(thrown.failure?.traceback ?? "").includes("isolated-vm"), "no host frames in the traceback");
    assert.ok(thrown.stderr.includes(thrown.failure?.traceback ?? "?"), "the traceback is also on stderr");
    const primitive = await run(session, "throw 'plain'");
    assert.deepEqual(
      [primitive.failure?.code, primitive.failure?.type, primitive.failure?.message],
      ["ABORTED", "Uncaught", '"plain"'],
    );
    assert.equal(await value(session, "kept"), "42");
    await session.close();
  });

  it("stops an infinite loop with DEADLINE_EXCEEDED and keeps the session usable", async () => {
    const session = await backend.createSession([], LIMITS);
    await value(session, "let survivor = 'yes'");
    const outcome = await run(session, "console.log('spinning'); while (true) {}", 200);
    assert.equal(outcome.failure?.code, "DEADLINE_EXCEEDED");
    assert.equal(outcome.failure?.type, "TimeoutError");
    assert.match(outcome.failure?.message ?? "", /time limit of 200 ms \(wall \d+ ms, CPU \d+ ms\)/);
    assert.equal(outcome.stdout, "spinning\n");
    assert.equal(await value(session, "survivor"), '"yes"');
    await session.close();
  });

  it("also times out regex backtracking, Atomics.wait, microtask chains and getters in the result", async () => {
    const session = await backend.createSession([], LIMITS);
    const regex = await run(session, "/(a+)+$/.test('a'.repeat(40) + 'b')", 200);
    assert.equal(regex.failure?.code, "DEADLINE_EXCEEDED");
    const wait = await run(session, "Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0)", 200);
    assert.equal(wait.failure?.code, "DEADLINE_EXCEEDED");
    const microtasks = await run(session, "(function again() { Promise.resolve().then(again) })()", 200);
    assert.equal(microtasks.failure?.code, "DEADLINE_EXCEEDED", "an endless microtask chain cannot outlive the cell");
    const getter = await run(session, "({ get trap() { while (true) {} } })", 200);
    assert.equal(getter.failure?.code, "DEADLINE_EXCEEDED", "rendering the result is held to the time limit too");
    assert.equal(await value(session, "'alive'"), '"alive"');
    await session.close();
  });

  it("disposes an isolate that hit its memory limit, says so, and starts the next cell fresh", async () => {
    const session = await backend.createSession(images, LIMITS);
    await value(session, "let before = 1");
    const bomb = await run(
      session,
      "const hoard = []; while (true) hoard.push({ n: hoard.length, s: 'x' + hoard.length })",
      10_000,
    );
    assert.equal(bomb.failure?.code, "RESOURCE_EXHAUSTED");
    assert.equal(bomb.failure?.type, "MemoryLimitError");
    assert.match(bomb.failure?.message ?? "", /memory limit of 64 MB; the session's state was lost/);
    const next = await run(session, "[typeof before, image_1.width]");
    assert.match(
      next.stderr,
      /^\[toolplane\] the previous cell exceeded the memory limit of 64 MB; the JavaScript state was lost/,
    );
    assert.equal(next.result, '[ "undefined", 40 ]');
    const third = await run(session, "1");
    assert.equal(third.stderr, "", "the notice is given once");
    await session.close();
  });

  it("treats allocations the heap refuses as ordinary exceptions", async () => {
    const session = await backend.createSession([], LIMITS);
    const outcome = await run(session, "let s = 'x'; while (true) s += s");
    assert.equal(outcome.failure?.type, "RangeError");
    const buffer = await run(session, "new ArrayBuffer(2 ** 31)");
    assert.equal(buffer.failure?.type, "RangeError");
    assert.equal(await value(session, "'still here'"), '"still here"');
    await session.close();
  });

  it("closes the allocations isolated-vm would not count: WebAssembly memories and resizable buffers", async () => {
    const session = await backend.createSession([], LIMITS);
    assert.equal(await value(session, "typeof WebAssembly"), '"undefined"');
    for (const code of [
      "new ArrayBuffer(16, { maxByteLength: 2 ** 30 })",
      "new SharedArrayBuffer(16, { maxByteLength: 2 ** 30 })",
      "new (new Uint8Array(4).buffer.constructor)(16, { maxByteLength: 2 ** 30 })",
      "class Sneaky extends ArrayBuffer {}; new Sneaky(16, { maxByteLength: 2 ** 30 })",
    ]) {
      const outcome = await run(session, code);
      assert.equal(outcome.failure?.type, "TypeError", code);
      assert.match(outcome.failure?.message ?? "", /resizable buffers \(maxByteLength\) are not available/);
    }
    assert.equal(
      await value(
        session,
        "const plain = new ArrayBuffer(8); [plain.byteLength, plain instanceof ArrayBuffer, plain.slice(2).byteLength, new Uint8Array(plain).buffer === plain]",
      ),
      "[ 8, true, 6, true ]",
    );
    const bomb = await run(session, "const held = []; while (true) held.push(new ArrayBuffer(8 << 20))");
    assert.equal(bomb.failure?.type, "RangeError", "plain buffers stay within the memory limit");
    await session.close();
  });

  it("keeps prototype pollution inside the session's own context", async () => {
    const polluter = await backend.createSession([], LIMITS);
    await value(
      polluter,
      `Object.prototype.polluted = 'yes'; Array.prototype.map = () => 'hijacked';
       JSON.stringify = () => 'hijacked'; String.prototype.slice = () => 'hijacked';
       Object.defineProperty(Object.prototype, 'then', { get() { return 'hijacked' } });`,
    );
    const host = {} as Record<string, unknown>;
    assert.equal(host.polluted, undefined);
    assert.deepEqual(
      [1, 2].map((n) => n * 2),
      [2, 4],
    );
    assert.equal(JSON.stringify({ a: 1 }), '{"a":1}');
    // The polluted session's own console and renderer still work: they captured the intrinsics first.
    const outcome = await run(polluter, "console.log({ k: 'v' }); ({ k: 'v' })");
    assert.equal(outcome.stdout, '{ k: "v" }\n');
    assert.equal(outcome.result, '{ k: "v" }');
    const neighbour = await backend.createSession([], LIMITS);
    assert.equal(
      await value(neighbour, "[({}).polluted, typeof ({}).then, [1].map(n => n + 1)]"),
      '[ undefined, "undefined", [ 2 ] ]',
    );
    await polluter.close();
    await neighbour.close();
  });

  it("offers no way to process, require, fetch, timers or the host's Function", async () => {
    const session = await backend.createSession([], LIMITS);
    assert.equal(
      await value(
        session,
        `[typeof process, typeof require, typeof fetch, typeof globalThis.fetch, typeof setTimeout,
          typeof setInterval, typeof setImmediate, typeof queueMicrotask === 'function' ? 'micro' : 'none',
          typeof module, typeof Buffer, typeof XMLHttpRequest, typeof WebSocket]`,
      ),
      '[ "undefined", "undefined", "undefined", "undefined", "undefined", "undefined", "undefined", "none", "undefined", "undefined", "undefined", "undefined" ]',
    );
    assert.equal(await value(session, "constructor.constructor('return typeof process')()"), '"undefined"');
    assert.equal(await value(session, "this.constructor.constructor('return this')() === globalThis"), "true");
    const viaFunction = await run(session, "Function('return process')()");
    assert.equal(viaFunction.failure?.type, "ReferenceError");
    const viaRequire = await run(session, "require('fs')");
    assert.equal(viaRequire.failure?.type, "ReferenceError");
    const viaImport = await run(session, "import('node:fs')");
    assert.equal(viaImport.failure?.message, "Not supported");
    // The helpers are plain functions: no Reference whose .get('constructor') would reach the host.
    assert.equal(
      await value(session, "[typeof display.get, typeof display.applySync, Object.keys(image)]"),
      '[ "undefined", "undefined", [ "process" ] ]',
    );
    // The helpers are strict code: no Function#caller walk from them.
    assert.equal(await value(session, "try { display.caller; 'sloppy' } catch { 'strict' }"), '"strict"');
    // Stack inspection from a console callback cannot see the host references the prelude closes over.
    assert.equal(
      await value(
        session,
        `Error.prepareStackTrace = (_, frames) => frames
           .filter((f) => !String(f.getFileName()).startsWith('cell-'))
           .map((f) => [f.getThis(), f.getFunction()]);
         let seen;
         console.log({ get probe() { seen = new Error().stack; return 1 } });
         seen.length > 0 && seen.every(([self, fn]) => self === undefined && fn === undefined) ? 'ok' : 'leak'`,
      ),
      '"ok"',
    );
    await session.close();
  });

  it("runs promise callbacks within the cell and no timers exist to outlive it", async () => {
    const session = await backend.createSession([], LIMITS);
    await value(session, "let settled = 'no'; Promise.resolve(1).then(() => { settled = 'yes' })");
    assert.equal(await value(session, "settled"), '"yes"');
    await session.close();
  });

  it("binds input images as image_1.. with bytes, width, height and mime", async () => {
    const session = await backend.createSession(images, LIMITS);
    assert.equal(
      await value(
        session,
        "[image_1.width, image_1.height, image_1.mime, image_1.bytes.length, image_1.bytes[0], image_1.bytes[1]]",
      ),
      `[ 40, 20, "image/jpeg", ${jpeg.length}, 255, 216 ]`,
    );
    // Model code may shadow the names with its own declarations.
    await value(session, "let image_1_copy = image_1; var image_1 = 'replaced'");
    assert.equal(await value(session, "image_1"), '"replaced"');
    await session.close();
  });

  it("returns display() images as PNG, validates them and caps their count", async () => {
    const session = await backend.createSession(images, { ...LIMITS, maxImages: 2 });
    const png = await testImage("png", 8, 8);
    const shown = await run(session, "display(image_1); display(image_1.bytes, 'image/jpeg')");
    assert.equal(shown.failure, undefined);
    assert.equal(shown.images.length, 2);
    for (const image of shown.images) {
      const metadata = await sharp(image).metadata();
      assert.deepEqual([metadata.format, metadata.width, metadata.height], ["png", 40, 20]);
    }
    const capped = await run(session, "for (let i = 0; i < 4; i++) display(image_1)");
    assert.equal(capped.images.length, 2);
    assert.equal(capped.imagesTruncated, true);
    const garbage = await run(session, "display(new Uint8Array([1, 2, 3]), 'image/png')");
    assert.equal(garbage.failure?.type, "TypeError");
    assert.match(
      garbage.failure?.message ?? "",
      /not an image of an accepted type \(image\/jpeg, image\/png, image\/webp, image\/gif, image\/tiff\) by their first bytes/,
    );
    const truncated = await run(session, "display(image_1.bytes.slice(0, 200), 'image/jpeg')");
    assert.match(truncated.failure?.message ?? "", /not a decodable image/);
    const mismatch = await run(session, "display(image_1, 'image/png')");
    assert.match(mismatch.failure?.message ?? "", /mime is image\/png but the bytes are image\/jpeg/);
    const badMime = await run(session, "display(image_1.bytes, 'text/html')");
    assert.match(badMime.failure?.message ?? "", /use one of image\/jpeg, image\/png, image\/webp/);
    const notBytes = await run(session, "display('a string')");
    assert.match(notBytes.failure?.message ?? "", /expected an image object/);
    const caught = await run(session, `try { display(new Uint8Array(4)) } catch (e) { 'caught ' + e.name }`);
    assert.equal(caught.result, '"caught TypeError"');
    const fromPng = await backend.createSession(
      [{ name: "image_1", data: png, mimeType: "image/png", width: 8, height: 8 }],
      LIMITS,
    );
    assert.equal((await run(fromPng, "display(image_1)")).images.length, 1);
    await fromPng.close();
    await session.close();
  });

  it("has image.process throw a ReferenceError naming the setting when no image service is configured", async () => {
    const session = await backend.createSession(images, LIMITS);
    const outcome = await run(session, "image.process(image_1, [{ rotate: { angle_degrees: 90 } }])");
    assert.equal(outcome.failure?.type, "ReferenceError");
    assert.match(outcome.failure?.message ?? "", /no image service configured \(TOOLPLANE_IMAGE_SERVICE_ADDRESS\)/);
    await session.close();
  });

  it("reset drops the state and binds the images again", async () => {
    const session = await backend.createSession(images, LIMITS);
    await value(session, "let gone = 1; image_1 = null");
    await session.reset();
    assert.equal(await value(session, "[typeof gone, image_1.width]"), '[ "undefined", 40 ]');
    await session.close();
  });

  it("close is idempotent and a closed session refuses to run", async () => {
    const session = await backend.createSession([], LIMITS);
    await session.close();
    await session.close();
    await assert.rejects(run(session, "1"), (error: ToolplaneError) => {
      assert.equal(error.code, status.FAILED_PRECONDITION);
      return true;
    });
  });

  it("stops a cell whose caller went away, and the next cell is told the state was lost", async () => {
    const session = await backend.createSession([], LIMITS);
    const controller = new AbortController();
    const running = session.execute("while (true) {}", { timeoutMs: 10_000, signal: controller.signal });
    setTimeout(() => controller.abort(), 50);
    await assert.rejects(running, (error: ToolplaneError) => {
      assert.equal(error.code, status.CANCELLED);
      return true;
    });
    const next = await run(session, "1");
    assert.match(next.stderr, /cancelled by its caller; the JavaScript state was lost/);
    assert.equal(next.result, "1");
    await session.close();
  });

  it("gives sessions with a non-default memory limit an isolate of their own size", async () => {
    const session = await backend.createSession([], { ...LIMITS, memoryMb: 16 });
    const bomb = await run(session, "const hoard = []; while (true) hoard.push({ n: hoard.length })", 10_000);
    assert.equal(bomb.failure?.code, "RESOURCE_EXHAUSTED");
    assert.match(bomb.failure?.message ?? "", /memory limit of 16 MB/);
    await session.close();
    await assert.rejects(backend.createSession([], { ...LIMITS, memoryMb: 4 }), /memory_mb=4 is below/);
  });
});

/** A stand-in ImageService (the real one is another service): crops with sharp, rejects empty pipelines. */
function fakeImageService(requests: ProcessRequest[]) {
  return {
    process(call: ServerUnaryCall<ProcessRequest, ProcessResponse>, callback: sendUnaryData<ProcessResponse>) {
      requests.push(call.request);
      if (call.request.operations[0]?.grayscale) {
        // Slower than any cell's time limit in these tests.
        setTimeout(() => callback(toServiceError(new InvalidArgumentError("too late")) as never, null), 3000);
        return;
      }
      const crop = call.request.operations[0]?.crop?.box;
      if (!crop) {
        callback(toServiceError(new InvalidArgumentError("operations[0]: only crop is supported here")) as never, null);
        return;
      }
      const data = call.request.image?.data ?? Buffer.alloc(0);
      sharp(data)
        .extract({ left: crop.left, top: crop.top, width: crop.right - crop.left, height: crop.bottom - crop.top })
        .png()
        .toBuffer()
        .then((png) =>
          callback(null, {
            image: { data: png, mimeType: "image/png", width: crop.right - crop.left, height: crop.bottom - crop.top },
            input: undefined,
            timing: undefined,
          }),
        );
    },
    getMetadata(_call: unknown, callback: sendUnaryData<unknown>) {
      callback({ code: status.UNIMPLEMENTED }, null);
    },
  };
}

describe("JavaScript backend, image.process over gRPC", () => {
  const requests: ProcessRequest[] = [];
  let server: RunningServer;
  let backend: LanguageBackend;
  let images: InputImage[];

  before(async () => {
    server = await startGrpcServer({
      host: "127.0.0.1",
      port: 0,
      services: [
        {
          name: "toolplane.image.v1.ImageService",
          definition: ImageServiceService,
          implementation: fakeImageService(requests),
        },
      ],
      protoFiles: ["toolplane/image/v1/image.proto"],
      logger: createLogger("test-image", "silent"),
    });
    backend = createJavaScriptBackend({ ...BASE, imageServiceAddress: server.address });
    await backend.start();
    const png = await testImage("png");
    images = [{ name: "image_1", data: png, mimeType: "image/png", width: 40, height: 20 }];
  });
  after(async () => {
    await backend.stop();
    await server.shutdown(1000);
  });

  it("sends the pipeline (snake_case and short enum names accepted) and returns an image object", async () => {
    const session = await backend.createSession(images, LIMITS);
    const result = await value(
      session,
      `const crop = image.process(image_1, [{ crop: { box: { left: 5, top: 2, right: 25, bottom: 12, unit: 'pixels' } } }],
         { min_short_side: 0 });
       display(crop); [crop.width, crop.height, crop.mime, crop.bytes instanceof Uint8Array]`,
    );
    assert.equal(result, '[ 20, 10, "image/png", true ]');
    const sent = requests.at(-1);
    assert.deepEqual(sent?.operations[0]?.crop?.box, { left: 5, top: 2, right: 25, bottom: 12, unit: 1 });
    assert.equal(sent?.image?.mimeType, "image/png");
    await session.close();
  });

  it("turns the image service's INVALID_ARGUMENT into an ImageProcessError the code can catch", async () => {
    const session = await backend.createSession(images, LIMITS);
    const outcome = await run(session, "image.process(image_1, [{ rotate: { angle_degrees: 90 } }])");
    assert.equal(outcome.failure?.type, "ImageProcessError");
    assert.match(outcome.failure?.message ?? "", /only crop is supported here/);
    const caught = await value(session, "try { image.process(image_1, [{ invert: {} }]) } catch (e) { e.name }");
    assert.equal(caught, '"ImageProcessError"');
    await session.close();
  });

  it("holds a slow image service call to the cell's wall deadline, even when the code catches the error", async () => {
    const session = await backend.createSession(images, LIMITS);
    const outcome = await run(session, "try { image.process(image_1, [{ grayscale: {} }]) } catch {} 'finished'", 300);
    assert.equal(outcome.failure?.code, "DEADLINE_EXCEEDED");
    assert.equal(outcome.failure?.type, "TimeoutError");
    assert.equal(await value(session, "'usable'"), '"usable"');
    await session.close();
  });

  it("rejects unknown operations and fields before calling the service", async () => {
    const session = await backend.createSession(images, LIMITS);
    const before = requests.length;
    const unknownField = await run(session, "image.process(image_1, [{ rotate: { angel: 90 } }])");
    assert.match(unknownField.failure?.message ?? "", /operations\[0\]\.rotate has an unknown field "angel"/);
    const unknownEnum = await run(session, "image.process(image_1, [{ flip: { axis: 'diagonal' } }])");
    assert.match(
      unknownEnum.failure?.message ?? "",
      /operations\[0\]\.flip\.axis has an unknown value "AXIS_DIAGONAL"/,
    );
    const two = await run(session, "image.process(image_1, [{ invert: {}, grayscale: {} }])");
    assert.match(two.failure?.message ?? "", /must be an object with exactly one of: crop, zoom/);
    assert.equal(requests.length, before);
    await session.close();
  });

  it("fails the call as UNAVAILABLE/INFRASTRUCTURE when the image service is down, even if the code caught it", async () => {
    const down = createJavaScriptBackend({ ...BASE, poolSize: 0, imageServiceAddress: "127.0.0.1:1" });
    await down.start();
    const session = await down.createSession(images, LIMITS);
    await assert.rejects(
      run(session, "try { image.process(image_1, [{ invert: {} }]) } catch { 'swallowed' }"),
      (error: ToolplaneError) => {
        assert.ok(error instanceof UnavailableError || error.code === status.UNAVAILABLE, String(error));
        assert.equal(error.errorClass, "INFRASTRUCTURE");
        return true;
      },
    );
    assert.equal(await value(session, "'the session survives'"), '"the session survives"');
    await down.stop();
  });
});

describe("JavaScript backend, sandbox host processes", () => {
  let backend: LanguageBackend;
  const events: string[] = [];

  before(async () => {
    backend = createJavaScriptBackend({
      ...BASE,
      isolation: "process",
      hostProcesses: 1,
      hostMemoryMb: 2048,
      onHostEvent: (event) => events.push(event.detail),
    });
    await backend.start();
  });
  after(() => backend.stop());

  it("keeps state across cells through the IPC hop, with images out and in", async () => {
    const png = await testImage("png", 10, 10);
    const session = await backend.createSession(
      [{ name: "image_1", data: png, mimeType: "image/png", width: 10, height: 10 }],
      LIMITS,
    );
    await value(session, "let total = 20");
    const outcome = await run(session, "console.log('out'); display(image_1); total + 1");
    assert.equal(outcome.result, "21");
    assert.equal(outcome.stdout, "out\n");
    assert.ok(Buffer.isBuffer(outcome.images[0]));
    assert.equal((await sharp(outcome.images[0]).metadata()).width, 10);
    await session.close();
  });

  it("fails start() with UNAVAILABLE when a host cannot start, without restarting it in a loop", async () => {
    const broken = createJavaScriptBackend({ ...BASE, isolation: "process", hostProcesses: 1, poolMemoryMb: 4 });
    await assert.rejects(broken.start(), (error: ToolplaneError) => {
      assert.equal(error.code, status.UNAVAILABLE);
      assert.match(error.message, /sandbox host exited at start/);
      return true;
    });
    await broken.stop();
  });

  it("forwards a caller's cancellation to the host, which stops the cell", async () => {
    const session = await backend.createSession([], LIMITS);
    const controller = new AbortController();
    const running = session.execute("while (true) {}", { timeoutMs: 10_000, signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    await assert.rejects(running, (error: ToolplaneError) => {
      assert.equal(error.code, status.CANCELLED);
      return true;
    });
    const next = await run(session, "'after'");
    assert.equal(next.result, '"after"');
    assert.match(next.stderr, /cancelled by its caller/);
    await session.close();
  });

  it("a cell stopped because its caller's deadline passed is DEADLINE_EXCEEDED, not CANCELLED", async () => {
    const session = await backend.createSession([], LIMITS);
    const controller = new AbortController();
    const running = session.execute("while (true) {}", { timeoutMs: 10_000, signal: controller.signal });
    // As the gRPC server layer aborts a call whose deadline passed.
    setTimeout(() => controller.abort(new DeadlineExceededError("deadline exceeded")), 100);
    await assert.rejects(running, (error: ToolplaneError) => {
      assert.equal(error.code, status.DEADLINE_EXCEEDED);
      assert.equal(error.errorClass, "INFRASTRUCTURE");
      return true;
    });
    await session.close();
  });

  it("contains a heap exhaustion isolated-vm cannot handle: the culprit alone gets RESOURCE_EXHAUSTED, others keep their state", async () => {
    const culprit = await backend.createSession([], LIMITS);
    const bystander = await backend.createSession([], LIMITS);
    await value(bystander, "let mine = 'kept'");
    const started = performance.now();
    // A bystander cell runs on the same host while the bomb goes off.
    const [outcome, during] = await Promise.all([
      run(culprit, "new Array(2 ** 30).fill(0)", 60_000),
      run(bystander, "let spins = 0; const until = Date.now() + 300; while (Date.now() < until) spins++; mine", 5000),
    ]);
    const elapsedMs = performance.now() - started;
    assert.equal(outcome.failure?.code, "RESOURCE_EXHAUSTED", JSON.stringify(outcome));
    assert.equal(outcome.failure?.type, "MemoryLimitError");
    assert.match(outcome.failure?.message ?? "", /the session's state was lost/);
    assert.equal(during.result, '"kept"');
    assert.ok(
      events.some((detail) => detail.includes("lost an isolate")),
      events.join("; "),
    );
    process.stdout.write(`heap bomb (memory_mb ${LIMITS.memoryMb}) answered in ${Math.round(elapsedMs)} ms\n`);
    // The culprit carries on in a fresh context and is told why; the bystander keeps its variables.
    const next = await run(culprit, "1 + 1");
    assert.equal(next.result, "2");
    assert.match(next.stderr, /previous cell exhausted the JavaScript heap/);
    const other = await run(bystander, "mine");
    assert.equal(other.result, '"kept"');
    assert.equal(other.stderr, "");
    const fresh = await backend.createSession([], LIMITS);
    assert.equal(await value(fresh, "'serving'"), '"serving"');
    // The retired host ends when its last session leaves.
    await bystander.close();
    await waitFor(
      () => events.some((detail) => detail.startsWith("retired sandbox host process exited")),
      "the retired host to exit",
    );
    await Promise.all([culprit.close(), fresh.close()]);
  });

  it("ends the oldest retired host once more are retired than the cap, so lost heaps cannot pile up", async () => {
    const bystanders: LanguageSession[] = [];
    for (let round = 0; round < 2; round++) {
      const bystander = await backend.createSession([], LIMITS);
      await value(bystander, `let round = ${round}`);
      bystanders.push(bystander);
      const culprit = await backend.createSession([], LIMITS);
      const outcome = await run(culprit, "new Array(2 ** 30).fill(0)", 60_000);
      assert.equal(outcome.failure?.code, "RESOURCE_EXHAUSTED");
      await culprit.close();
    }
    // hostProcesses is 1, so one retired host may drain: the first one was ended, the second still serves.
    const [first, second] = bystanders as [LanguageSession, LanguageSession];
    const lost = await run(first, "typeof round");
    assert.equal(lost.result, '"undefined"');
    assert.match(lost.stderr, /the JavaScript state was lost/);
    assert.equal(await value(second, "round"), "1");
    await Promise.all(bystanders.map((session) => session.close()));
  });

  it("answers a cell stuck where isolated-vm cannot stop it as the model's timeout, inside the deadline", async () => {
    const culprit = await backend.createSession([], { ...LIMITS, memoryMb: 512 });
    const bystander = await backend.createSession([], LIMITS);
    await value(bystander, "let mine = 'still here'");
    const outcome = await culprit.execute("new Array(2 ** 30).fill(0)", {
      timeoutMs: 300,
      killGraceMs: 400,
      signal: new AbortController().signal,
    });
    assert.equal(outcome.failure?.code, "DEADLINE_EXCEEDED", JSON.stringify(outcome));
    assert.equal(await value(bystander, "mine"), '"still here"');
    const next = await run(culprit, "'fresh'");
    assert.equal(next.result, '"fresh"');
    await Promise.all([culprit.close(), bystander.close()]);
  });

  it("a stuck cell's heap that gives out after its session closed costs no other session's running cell", async () => {
    const culprit = await backend.createSession([], { ...LIMITS, memoryMb: 512 });
    const bystander = await backend.createSession([], LIMITS);
    const stuck = await culprit.execute("new Array(2 ** 30).fill(0)", {
      timeoutMs: 300,
      killGraceMs: 400,
      signal: new AbortController().signal,
    });
    assert.equal(stuck.failure?.code, "DEADLINE_EXCEEDED", JSON.stringify(stuck));
    // The caller leaves at once (as the gateway closes a finished trajectory); the abandoned thread keeps filling
    // until its heap gives out, while the bystander's cell runs on the retired host.
    await culprit.close();
    const during = await run(
      bystander,
      "let spins = 0; const until = Date.now() + 6000; while (Date.now() < until) spins++; 'done'",
      20_000,
    );
    assert.equal(during.failure, undefined, JSON.stringify(during));
    assert.equal(during.result, '"done"');
    assert.ok(
      events.some((detail) => detail.includes("did not stop")),
      events.join("; "),
    );
    await bystander.close();
  });
});
