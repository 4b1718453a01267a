import { createRequire } from "node:module";
import type IsolatedVM from "isolated-vm";
import {
  type ImageServiceClient,
  ImageServiceClient as ImageServiceClientCtor,
} from "../../../../generated/toolplane/image/v1/image.js";
import {
  asToolplaneError,
  createClient,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  type ToolplaneError,
  UnavailableError,
} from "../../../runtime/src/index.js";
import type {
  CodeFailure,
  ExecuteOptions,
  ExecutionOutcome,
  InputImage,
  LanguageSession,
  ResolvedLimits,
} from "../backend.js";
import { type HostReply, parseProcessArguments, processWithImageService, toDisplayPng } from "./host-images.js";
import { installPrelude, type PreludeConfig, type PreludeImage } from "./prelude.js";

// isolated-vm is a CommonJS native addon.
const ivm = createRequire(import.meta.url)("isolated-vm") as typeof IsolatedVM;

/** Smallest memoryLimit isolated-vm accepts. */
export const MIN_MEMORY_MB = 8;

export interface EngineOptions {
  /** Ready isolates kept warm (each with a context and the prelude installed). */
  poolSize: number;
  /** memoryLimit of pooled isolates: the service's default memory_mb. Other limits get a fresh isolate. */
  poolMemoryMb: number;
  /** host:port of the image service for image.process(); absent = the helper throws a ReferenceError. */
  imageServiceAddress?: string;
  /** Name of the setting that enables image.process, quoted in the error when it is absent. */
  imageServiceHint: string;
  /** Encoded bytes one display() call may pass. */
  maxDisplayBytes: number;
  /** Decoded pixels one display() image may have (decompression-bomb guard). */
  maxDisplayPixels: number;
  /**
   * Extra wall time after a cell's timeout before the isolate is disposed from
   * outside (the cell is then stuck where isolated-vm's own timeout cannot reach it).
   */
  hardKillGraceMs: number;
  /**
   * isolated-vm lost control of an isolate (a V8 heap OOM it could not turn into
   * a clean disposal). The process must exit; `session` is the session whose code did it.
   */
  onCatastrophicError(session: EngineSession | undefined, message: string): void;
}

const TRUNCATION_NOTE = (stream: string, cap: number) =>
  `\n[output truncated: ${stream} exceeded the limit of ${cap} bytes]\n`;
const LOST_NOTE = (reason: string) =>
  `[toolplane] ${reason}; the JavaScript state was lost: this cell runs in a fresh context (earlier variables are gone, input images are bound again)\n`;
const MAX_TRACEBACK_CHARS = 8192;
/** Time a failed cell's buffered output gets to reach the host. */
const FLUSH_TIMEOUT_MS = 100;

/** One isolate with a context whose prelude is installed; host callbacks route to whichever session owns it. */
interface ReadyIsolate {
  isolate: IsolatedVM.Isolate;
  context: IsolatedVM.Context;
  render: IsolatedVM.Reference<(value: unknown) => string | undefined>;
  slot: { owner?: EngineSession };
  memoryMb: number;
  /** Sessions this isolate has served before the current context. */
  served: number;
}

/** An isolate is given fresh contexts this many times, then disposed (bounds whatever its heap accumulates). */
const MAX_SESSIONS_PER_ISOLATE = 64;

/** Collects what one Execute produced, applying the caps as it goes. */
class RunState {
  private readonly streams = [
    { name: "stdout", text: "", bytes: 0, truncated: false },
    { name: "stderr", text: "", bytes: 0, truncated: false },
  ];
  readonly images: Buffer[] = [];
  imagesTruncated = false;
  /** Set when a host call ran into the wall deadline: the cell failed with a timeout even if it caught it. */
  deadlineHit = false;
  /** An infrastructure failure a host call met (the image service down): the RPC fails, whatever the code did. */
  infrastructureError: ToolplaneError | undefined;
  readonly started = performance.now();

  constructor(
    readonly limits: ResolvedLimits,
    readonly deadline: number,
    readonly signal: AbortSignal,
  ) {}

  /** Appends to a stream; false once the stream is at its cap (the sandbox then stops sending). */
  write(stream: number, text: string): boolean {
    const target = this.streams[stream === 2 ? 1 : 0];
    if (target === undefined || target.truncated || typeof text !== "string") return false;
    const cap = this.limits.maxOutputBytes;
    const size = Buffer.byteLength(text);
    if (target.bytes + size <= cap) {
      target.text += text;
      target.bytes += size;
      return true;
    }
    // Cut on a byte boundary, then drop a trailing partial UTF-8 sequence.
    const kept = Buffer.from(text)
      .subarray(0, cap - target.bytes)
      .toString("utf8")
      .replace(/\uFFFD$/, "");
    target.text += kept;
    target.bytes = cap;
    target.truncated = true;
    return false;
  }

  outcome(result: string | undefined, failure: CodeFailure | undefined): ExecutionOutcome {
    const [out, err] = this.streams as [(typeof this.streams)[0], (typeof this.streams)[0]];
    const finish = (stream: typeof out) =>
      stream.truncated ? stream.text + TRUNCATION_NOTE(stream.name, this.limits.maxOutputBytes) : stream.text;
    let stderr = finish(err);
    if (failure?.traceback) stderr += `${stderr === "" || stderr.endsWith("\n") ? "" : "\n"}${failure.traceback}\n`;
    return {
      stdout: finish(out),
      stderr,
      stdoutTruncated: out.truncated,
      stderrTruncated: err.truncated,
      ...(result === undefined ? {} : { result }),
      images: this.images,
      imagesTruncated: this.imagesTruncated,
      ...(failure === undefined ? {} : { failure }),
    };
  }
}

/**
 * Isolates are the expensive part (1-2 ms of the event loop to construct, ~1 ms
 * to dispose) and carry the memory limit, so they are created ahead of demand,
 * each with a context and the prelude ready (built on the isolate's own thread
 * with the async API). A session takes one; when it ends cleanly, its context
 * is released and the isolate gets a fresh context for the pool (at most
 * MAX_SESSIONS_PER_ISOLATE times). An isolate that hit its memory limit, was
 * killed, or has a non-default limit is disposed instead.
 */
export class IsolateEngine {
  private readonly idle: ReadyIsolate[] = [];
  private refilling = false;
  /** Isolates getting a fresh context after their session ended; they count as pooled. */
  private recycling = 0;
  private stopped = false;
  private readonly sessions = new Set<EngineSession>();
  private readonly imageClient: ImageServiceClient | undefined;
  // Function#toString drops the module's strictness: the directive makes the prelude strict again.
  private readonly preludeSource = `"use strict"; return (${installPrelude.toString()})($0, $1, $2, $3, $4)`;

  constructor(readonly options: EngineOptions) {
    if (options.poolMemoryMb < MIN_MEMORY_MB) {
      throw new InvalidArgumentError(
        `pool memory ${options.poolMemoryMb} MB is below the minimum of ${MIN_MEMORY_MB} MB`,
      );
    }
    this.imageClient =
      options.imageServiceAddress === undefined
        ? undefined
        : createClient(ImageServiceClientCtor, options.imageServiceAddress);
  }

  async start(): Promise<void> {
    this.stopped = false;
    while (this.idle.length < this.options.poolSize) this.idle.push(await this.prepare(this.options.poolMemoryMb, []));
  }

  async createSession(images: InputImage[], limits: ResolvedLimits): Promise<EngineSession> {
    if (this.stopped) throw new UnavailableError("the JavaScript backend is stopped");
    if (limits.memoryMb < MIN_MEMORY_MB) {
      throw new InvalidArgumentError(
        `memory_mb=${limits.memoryMb} is below the JavaScript minimum of ${MIN_MEMORY_MB}`,
      );
    }
    const session = new EngineSession(this, images, limits);
    await session.open();
    this.sessions.add(session);
    return session;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await Promise.allSettled([...this.sessions].map((session) => session.close()));
    for (const ready of this.idle.splice(0)) dispose(ready);
    this.imageClient?.close();
  }

  /** @internal A ready isolate for a session (from the pool when its memory limit matches). */
  async take(owner: EngineSession, images: ReadonlyArray<InputImage>, memoryMb: number): Promise<ReadyIsolate> {
    let ready: ReadyIsolate;
    const pooled = memoryMb === this.options.poolMemoryMb ? this.idle.pop() : undefined;
    if (pooled !== undefined && !pooled.isolate.isDisposed) {
      ready = pooled;
      if (images.length > 0) await bindImages(ready, images);
    } else {
      ready = await this.prepare(memoryMb, images);
    }
    ready.slot.owner = owner;
    // Below half the pool, new isolates are built; above it, ending sessions are expected to top it up.
    if (this.idle.length + this.recycling < Math.ceil(this.options.poolSize / 2)) this.refillSoon();
    return ready;
  }

  /** @internal An ended session's isolate: back to the pool with a fresh context, or disposed. */
  recycle(ready: ReadyIsolate): void {
    ready.slot.owner = undefined;
    const reusable =
      !this.stopped &&
      !ready.isolate.isDisposed &&
      ready.memoryMb === this.options.poolMemoryMb &&
      ready.served + 1 < MAX_SESSIONS_PER_ISOLATE &&
      this.idle.length + this.recycling < this.options.poolSize;
    if (!reusable) {
      disposeLater(ready);
      return;
    }
    ready.render.release();
    ready.context.release();
    this.recycling += 1;
    this.prepareContext(ready.isolate, ready.slot, ready.memoryMb, [], ready.served + 1)
      .then(
        (fresh) => (this.stopped ? dispose(fresh) : this.idle.push(fresh)),
        () => dispose(ready),
      )
      // Only disposing an isolate that is already gone can fail here; it is out of the pool either way.
      .catch(() => undefined)
      .finally(() => {
        this.recycling -= 1;
      });
  }

  /** @internal */
  forget(session: EngineSession): void {
    this.sessions.delete(session);
  }

  /** One isolate at a time, after the current call has had its turn. */
  private refillSoon(): void {
    if (this.refilling || this.stopped) return;
    this.refilling = true;
    const step = async () => {
      while (!this.stopped && this.idle.length + this.recycling < this.options.poolSize) {
        const ready = await this.prepare(this.options.poolMemoryMb, []);
        if (this.stopped) dispose(ready);
        else this.idle.push(ready);
      }
    };
    setImmediate(() =>
      step()
        // A failed refill (the process short of memory) is tried again by the next take; sessions then
        // build their own isolate meanwhile.
        .catch(() => undefined)
        .finally(() => {
          this.refilling = false;
        }),
    );
  }

  private prepare(memoryMb: number, images: ReadonlyArray<InputImage>): Promise<ReadyIsolate> {
    const slot: { owner?: EngineSession } = {};
    const isolate = new ivm.Isolate({
      memoryLimit: memoryMb,
      onCatastrophicError: (message) => this.options.onCatastrophicError(slot.owner, message),
    });
    return this.prepareContext(isolate, slot, memoryMb, images, 0);
  }

  private async prepareContext(
    isolate: IsolatedVM.Isolate,
    slot: { owner?: EngineSession },
    memoryMb: number,
    images: ReadonlyArray<InputImage>,
    served: number,
  ): Promise<ReadyIsolate> {
    const context = await isolate.createContext();
    const config: PreludeConfig = {
      maxPieceChars: 8 * 1024 * 1024,
      flushChars: 16 * 1024,
      maxRenderChars: 64 * 1024,
      imageServiceHint: this.options.imageServiceHint,
    };
    const write = new ivm.Callback((stream: number, text: string) => slot.owner?.hostWrite(stream, text) ?? false);
    // applySyncPromise takes no result options: replies go back as an explicit copy.
    const display = new ivm.Reference(async (bytes: Uint8Array, mime: string) =>
      copyReply(slot.owner ? await slot.owner.hostDisplay(bytes, mime) : notRunning()),
    );
    const processImage =
      this.imageClient === undefined
        ? undefined
        : new ivm.Reference(async (bytes: Uint8Array, mime: string, operations: string, output: string) =>
            copyReply(slot.owner ? await slot.owner.hostProcess(bytes, mime, operations, output) : notRunning()),
          );
    const render = (await context.evalClosure(
      this.preludeSource,
      [write, display, processImage, copyOf(images), new ivm.ExternalCopy(config).copyInto()],
      { result: { reference: true } },
    )) as IsolatedVM.Reference<(value: unknown) => string | undefined>;
    // The first cell of a context pays for lazy compilation of the prelude and the first run of an isolate
    // (~2 ms): a warm-up cell on the same path, while the isolate waits in the pool, takes that off the session.
    const warmUp = await isolate.compileScript("[1, 'a', { b: 2 }]", { filename: "warm-up.js" });
    const value = await warmUp.run(context, { timeout: 1000, reference: true, release: true });
    await render.apply(undefined, [value.derefInto({ release: true })], { timeout: 1000, result: { copy: true } });
    return { isolate, context, render, slot, memoryMb, served };
  }

  /** @internal */
  get imageService(): ImageServiceClient | undefined {
    return this.imageClient;
  }
}

function copyOf(images: ReadonlyArray<InputImage>): IsolatedVM.Copy<PreludeImage[]> {
  const plain: PreludeImage[] = images.map((image) => ({
    name: image.name,
    bytes: new Uint8Array(image.data),
    width: image.width,
    height: image.height,
    mime: image.mimeType,
  }));
  return new ivm.ExternalCopy(plain).copyInto({ release: true });
}

/** Sends the console output the sandbox still buffers (the success path does this while rendering). */
async function flushOutput(ready: ReadyIsolate): Promise<void> {
  try {
    await ready.render.apply(undefined, [undefined], { timeout: FLUSH_TIMEOUT_MS });
  } catch {
    // The isolate cannot run any more (disposed, or stuck again): its last buffered output is lost.
  }
}

function copyReply(reply: HostReply): IsolatedVM.Copy<HostReply> {
  return new ivm.ExternalCopy(reply).copyInto({ release: true });
}

async function bindImages(ready: ReadyIsolate, images: ReadonlyArray<InputImage>): Promise<void> {
  await ready.context.evalClosure(
    `for (const image of $0) Object.defineProperty(globalThis, image.name, {
       value: { bytes: image.bytes, width: image.width, height: image.height, mime: image.mime },
       writable: true, configurable: true, enumerable: false });`,
    [copyOf(images)],
  );
}

function dispose(ready: ReadyIsolate): void {
  ready.slot.owner = undefined;
  if (!ready.isolate.isDisposed) ready.isolate.dispose();
}

/** Disposal costs ~1 ms of the event loop: done after the current reply went out. */
function disposeLater(ready: ReadyIsolate): void {
  ready.slot.owner = undefined;
  setImmediate(() => dispose(ready));
}

function notRunning(): HostReply {
  return { ok: false, type: "Error", message: "image helpers may only be called while a cell runs" };
}

/** Frames past the isolate boundary are the host's; prelude frames (console, display) are noise to the model. */
const isBoundary = (line: string) => line.includes("<isolated-vm boundary>");
const isPreludeFrame = (line: string) => line.includes("(<isolated-vm>:");

/** The model-facing form of an exception the cell let escape. */
function describeThrown(thrown: unknown): CodeFailure {
  if (thrown instanceof Error) {
    const stack = typeof thrown.stack === "string" ? thrown.stack : `${thrown.name}: ${thrown.message}`;
    const lines = stack.split("\n");
    const cut = lines.findIndex(isBoundary);
    const traceback = (cut === -1 ? lines : lines.slice(0, cut))
      .filter((line) => !isPreludeFrame(line))
      .join("\n")
      .slice(0, MAX_TRACEBACK_CHARS);
    // A subclass (class MyError extends Error) arrives as a plain Error; its stack still names it.
    const named = /^([A-Za-z_$][\w$]*):/.exec(lines[0] ?? "")?.[1];
    return { code: "ABORTED", type: named ?? thrown.name, message: thrown.message, traceback };
  }
  let rendered: string;
  try {
    rendered = JSON.stringify(thrown) ?? String(thrown);
  } catch {
    rendered = String(thrown);
  }
  return { code: "ABORTED", type: "Uncaught", message: rendered, traceback: `Uncaught ${rendered}` };
}

/**
 * One model trajectory's JavaScript state: a context in an isolate of its own
 * (the memory limit is per isolate). Calls are serialised by the session
 * manager; this class still refuses overlapping executes.
 */
export class EngineSession implements LanguageSession {
  private ready: ReadyIsolate | undefined;
  private lostReason: string | undefined;
  private run: RunState | undefined;
  private cells = 0;
  private closed = false;

  constructor(
    private readonly engine: IsolateEngine,
    private readonly images: ReadonlyArray<InputImage>,
    readonly limits: ResolvedLimits,
  ) {}

  /** @internal Takes the session's first isolate. */
  async open(): Promise<void> {
    this.ready = await this.engine.take(this, this.images, this.limits.memoryMb);
  }

  /** Whether the current isolate still holds the session's state (false after a memory kill until the next cell). */
  get alive(): boolean {
    return this.ready !== undefined && !this.ready.isolate.isDisposed;
  }

  async execute(code: string, options: ExecuteOptions): Promise<ExecutionOutcome> {
    if (this.closed) throw new FailedPreconditionError("the JavaScript session is closed");
    if (this.run) throw new FailedPreconditionError("the JavaScript session is already running a cell");
    const run = new RunState(this.limits, Date.now() + options.timeoutMs, options.signal);
    if (!this.alive) {
      await this.replaceIsolate();
      if (this.lostReason !== undefined) run.write(2, LOST_NOTE(this.lostReason));
      this.lostReason = undefined;
    }
    this.run = run;
    try {
      const { result, failure } = await this.runCell(code, run, options.timeoutMs);
      if (run.infrastructureError) throw run.infrastructureError;
      return run.outcome(result, failure);
    } finally {
      this.run = undefined;
    }
  }

  async reset(): Promise<void> {
    if (this.closed) throw new FailedPreconditionError("the JavaScript session is closed");
    await this.replaceIsolate();
    this.lostReason = undefined;
    this.cells = 0;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ready) this.engine.recycle(this.ready);
    this.ready = undefined;
    this.engine.forget(this);
  }

  /** Throws the live isolate away (its state with it) and takes a fresh one with the images bound. */
  private async replaceIsolate(): Promise<void> {
    if (this.ready) this.engine.recycle(this.ready);
    this.ready = undefined;
    this.ready = await this.engine.take(this, this.images, this.limits.memoryMb);
  }

  /** Disposes the isolate from outside: the only way to stop a cell isolated-vm's timeout cannot. */
  private discard(reason: string): void {
    this.lostReason = reason;
    if (this.ready) dispose(this.ready);
  }

  private async runCell(
    code: string,
    run: RunState,
    timeoutMs: number,
  ): Promise<{ result?: string; failure?: CodeFailure }> {
    const ready = this.ready as ReadyIsolate;
    const { isolate } = ready;
    this.cells += 1;
    let script: IsolatedVM.Script;
    try {
      script = await isolate.compileScript(code, { filename: `cell-${this.cells}.js` });
    } catch (error) {
      if (isolate.isDisposed) return this.afterDisposal(error);
      const failure = describeThrown(error);
      return { failure: { ...failure, code: "INVALID_ARGUMENT", traceback: failure.traceback.split("\n")[0] ?? "" } };
    }
    let cancelled = false;
    let hardKilled = false;
    const onAbort = () => {
      cancelled = true;
      this.discard("the previous cell was cancelled by its caller");
    };
    if (run.signal.aborted) onAbort();
    run.signal.addEventListener("abort", onAbort, { once: true });
    const watchdog = setTimeout(() => {
      hardKilled = true;
      this.discard(`the previous cell did not stop at its time limit of ${timeoutMs} ms and was killed`);
    }, timeoutMs + this.engine.options.hardKillGraceMs);
    const cpuBefore = isolate.cpuTime;
    try {
      const value = await script.run(ready.context, { timeout: timeoutMs, reference: true, release: true });
      const remaining = Math.max(1, run.deadline - Date.now());
      const result = await ready.render.apply(undefined, [value.derefInto({ release: true })], {
        timeout: remaining,
        result: { copy: true },
      });
      if (run.deadlineHit) return { failure: this.timeoutFailure(run, timeoutMs, isolate, cpuBefore) };
      return typeof result === "string" ? { result } : {};
    } catch (error) {
      if (cancelled) {
        throw new DeadlineExceededError("the execution was cancelled by the caller; the session's state was lost");
      }
      if (hardKilled) {
        run.deadlineHit = true;
        return {
          failure: {
            code: "DEADLINE_EXCEEDED",
            type: "TimeoutError",
            message: `execution exceeded the time limit of ${timeoutMs} ms and was killed; the session's state was lost`,
            traceback: `TimeoutError: execution exceeded the time limit of ${timeoutMs} ms`,
          },
        };
      }
      if (isolate.isDisposed) return this.afterDisposal(error);
      const timedOut =
        error instanceof Error &&
        error.message === "Script execution timed out." &&
        performance.now() - run.started >= timeoutMs * 0.9;
      const failure =
        timedOut || run.deadlineHit ? this.timeoutFailure(run, timeoutMs, isolate, cpuBefore) : describeThrown(error);
      await flushOutput(ready);
      return { failure };
    } finally {
      clearTimeout(watchdog);
      run.signal.removeEventListener("abort", onAbort);
    }
  }

  private timeoutFailure(
    run: RunState,
    timeoutMs: number,
    isolate: IsolatedVM.Isolate,
    cpuBefore: bigint,
  ): CodeFailure {
    const wall = Math.round(performance.now() - run.started);
    const cpu = isolate.isDisposed ? "?" : String(Math.round(Number(isolate.cpuTime - cpuBefore) / 1e6));
    const message = `execution exceeded the time limit of ${timeoutMs} ms (wall ${wall} ms, CPU ${cpu} ms)`;
    return { code: "DEADLINE_EXCEEDED", type: "TimeoutError", message, traceback: `TimeoutError: ${message}` };
  }

  /** The isolate vanished under the cell: the memory limit, or the backend stopping. */
  private afterDisposal(error: unknown): { failure: CodeFailure } {
    const message = error instanceof Error ? error.message : String(error);
    if (/memory limit/i.test(message)) {
      this.lostReason = `the previous cell exceeded the memory limit of ${this.limits.memoryMb} MB`;
      const text = `JavaScript heap exceeded the memory limit of ${this.limits.memoryMb} MB; the session's state was lost and the next cell starts in a fresh context`;
      return {
        failure: {
          code: "RESOURCE_EXHAUSTED",
          type: "MemoryLimitError",
          message: text,
          traceback: `MemoryLimitError: ${text}`,
        },
      };
    }
    if (this.closed) throw new FailedPreconditionError("the JavaScript session was closed while its cell ran");
    throw new UnavailableError(`the JavaScript isolate was disposed during execution: ${message}`);
  }

  /** @internal console.* from the sandbox. */
  hostWrite(stream: number, text: string): boolean {
    return this.run?.write(stream, text) ?? false;
  }

  /** @internal display(bytes, mime) from the sandbox. */
  async hostDisplay(bytes: Uint8Array, mime: string): Promise<HostReply> {
    const run = this.run;
    if (!run) return notRunning();
    if (!(bytes instanceof Uint8Array) || typeof mime !== "string") {
      return { ok: false, type: "TypeError", message: "display(bytes, mime): bytes must be a Uint8Array" };
    }
    const converted = await this.beforeDeadline(run, () =>
      toDisplayPng(bytes, mime, {
        maxBytes: this.engine.options.maxDisplayBytes,
        maxPixels: this.engine.options.maxDisplayPixels,
      }),
    );
    if ("ok" in converted) return converted;
    if ("error" in converted) return converted.error;
    if (run.images.length >= run.limits.maxImages) run.imagesTruncated = true;
    else run.images.push(converted.png);
    return { ok: true };
  }

  /** @internal image.process(image, operations, output) from the sandbox. */
  async hostProcess(bytes: Uint8Array, mime: string, operations: string, output: string): Promise<HostReply> {
    const run = this.run;
    const client = this.engine.imageService;
    if (!run || !client) return notRunning();
    let parsed: ReturnType<typeof parseProcessArguments>;
    try {
      parsed = parseProcessArguments(operations, output);
    } catch (error) {
      return { ok: false, type: "TypeError", message: `image.process: arguments are not JSON data: ${String(error)}` };
    }
    if ("ok" in parsed) return parsed;
    return this.beforeDeadline(run, async () => {
      try {
        return await processWithImageService({
          client,
          bytes,
          mime,
          arguments: parsed,
          deadlineMs: run.deadline,
          signal: run.signal,
        });
      } catch (error) {
        // The call carries the cell's deadline: running out of it is the cell's timeout, not a fault of the service.
        if (Date.now() >= run.deadline || run.signal.aborted) {
          run.deadlineHit = true;
          return { ok: false, type: "TimeoutError", message: "the cell's time limit ran out during image.process" };
        }
        run.infrastructureError ??= asToolplaneError(error);
        return { ok: false, type: "ImageServiceError", message: `image.process: ${asToolplaneError(error).message}` };
      }
    });
  }

  /**
   * isolated-vm's timeout counts only time the isolate runs, not time it waits
   * on a host call, so host calls are held to the cell's wall deadline here.
   */
  private async beforeDeadline<T extends object>(run: RunState, work: () => Promise<T>): Promise<T | HostReply> {
    const remaining = run.deadline - Date.now();
    let timer: NodeJS.Timeout | undefined;
    const expired = new Promise<HostReply>((resolve) => {
      timer = setTimeout(
        () => {
          run.deadlineHit = true;
          resolve({ ok: false, type: "TimeoutError", message: "the cell's time limit ran out during a host call" });
        },
        Math.max(0, remaining),
      );
    });
    try {
      return await Promise.race([work(), expired]);
    } finally {
      clearTimeout(timer);
    }
  }
}
