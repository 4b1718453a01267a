import type IsolatedVM from "isolated-vm";
import {
  asToolplaneError,
  errorMessage,
  FailedPreconditionError,
  stoppedError,
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
import { javascriptStateLostNote, STATE_LOST, timeLimitExceeded } from "../texts.js";
import { dispose, type IsolateEngine, type ReadyIsolate } from "./engine.js";
import { type HostReply, parseProcessArguments, processWithImageService, toDisplayPng } from "./host-images.js";
import { RunState } from "./run-state.js";
import { describeThrown } from "./thrown.js";

/** Time a failed cell's buffered output gets to reach the host. */
const FLUSH_TIMEOUT_MS = 100;

/** Sends the console output the sandbox still buffers (the success path does this while rendering). */
async function flushOutput(ready: ReadyIsolate): Promise<void> {
  try {
    await ready.render.apply(undefined, [undefined], { timeout: FLUSH_TIMEOUT_MS });
  } catch {
    // The isolate cannot run any more (disposed, or stuck again): its last buffered output is lost.
  }
}

export function notRunning(): HostReply {
  return { ok: false, type: "Error", message: "image helpers may only be called while a cell runs" };
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
      if (this.lostReason !== undefined) run.write(2, javascriptStateLostNote(this.lostReason));
      this.lostReason = undefined;
    }
    this.run = run;
    try {
      const graceMs = options.killGraceMs ?? this.engine.options.hardKillGraceMs;
      const { result, failure } = await this.runCell(code, run, options.timeoutMs, graceMs);
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
    graceMs: number,
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
    let discarded = false;
    let hardKilled = false;
    const onAbort = () => {
      cancelled = true;
      // A cell whose own timeout is at most the configured grace away (a caller whose deadline passed, the usual case since
      // the timeout is fitted to the deadline) is left to stop at it and keeps the session's state; stopping
      // any earlier takes disposing the isolate, which isolated-vm offers as its only way.
      if (run.deadline - Date.now() <= this.engine.options.hardKillGraceMs) return;
      discarded = true;
      this.discard("the previous cell was cancelled by its caller");
    };
    if (run.signal.aborted) onAbort();
    run.signal.addEventListener("abort", onAbort, { once: true });
    const watchdog = setTimeout(() => {
      hardKilled = true;
      this.discard(`the previous cell did not stop at its time limit of ${timeoutMs} ms and was killed`);
    }, timeoutMs + graceMs);
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
        throw stoppedError(
          run.signal,
          discarded
            ? `the execution was stopped for its caller; ${STATE_LOST}`
            : "the execution was stopped for its caller at its time limit; the session keeps its state",
        );
      }
      if (hardKilled) {
        run.deadlineHit = true;
        return {
          failure: {
            code: "DEADLINE_EXCEEDED",
            type: "TimeoutError",
            message: `${timeLimitExceeded(timeoutMs)} and was killed; ${STATE_LOST}`,
            traceback: `TimeoutError: ${timeLimitExceeded(timeoutMs)}`,
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
    const message = `${timeLimitExceeded(timeoutMs)} (wall ${wall} ms, CPU ${cpu} ms)`;
    return { code: "DEADLINE_EXCEEDED", type: "TimeoutError", message, traceback: `TimeoutError: ${message}` };
  }

  /** The isolate vanished under the cell: the memory limit, or the backend stopping. */
  private afterDisposal(error: unknown): { failure: CodeFailure } {
    const message = errorMessage(error);
    if (/memory limit/i.test(message)) {
      this.lostReason = `the previous cell exceeded the memory limit of ${this.limits.memoryMb} MB`;
      const text = `JavaScript heap exceeded the memory limit of ${this.limits.memoryMb} MB; ${STATE_LOST} and the next cell starts in a fresh context`;
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
