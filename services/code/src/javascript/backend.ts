import { type ChildProcess, fork } from "node:child_process";
import { randomUUID } from "node:crypto";
import { fileURLToPath } from "node:url";
import { Language } from "../../../../generated/toolplane/code/v1/code.js";
import {
  CancelledError,
  errorOfStatus,
  FailedPreconditionError,
  InternalError,
  stoppedError,
  type ToolplaneError,
  UnavailableError,
} from "../../../runtime/src/index.js";
import type {
  ExecuteOptions,
  ExecutionOutcome,
  InputImage,
  LanguageBackend,
  LanguageSession,
  ResolvedLimits,
} from "../backend.js";
import { javascriptStateLostNote, STATE_LOST, timeLimitExceeded } from "../texts.js";
import { type EngineOptions, IsolateEngine } from "./engine.js";
import type { HostFailure, HostMessage, HostOptions, HostRequest } from "./host-process.js";

export interface JavaScriptBackendOptions extends HostOptions {
  /**
   * "process" (the default) runs the isolates in sandbox host processes, so a
   * V8 heap exhaustion isolated-vm cannot contain kills a host, not the
   * service. "in-process" runs them in this process (tests, benchmarks).
   */
  isolation?: "process" | "in-process";
  /** Sandbox host processes; sessions are spread over them (the blast radius of a crash). */
  hostProcesses?: number;
  /** Time a host process gets to start (node boot and the warm pool). */
  hostStartTimeoutMs?: number;
  /**
   * Memory a host process may commit (RLIMIT_DATA, set through prlimit): a bomb that V8 cannot stop ends in
   * that host's bound, never the machine's. 0 = unbounded. Counts committed memory only, so V8's large
   * reservations (WebAssembly guard regions) still work.
   */
  hostMemoryMb?: number;
  /** util-linux prlimit, which applies hostMemoryMb before node starts. */
  prlimitPath?: string;
  /**
   * How long a retired host (one whose isolate isolated-vm lost) keeps serving the sessions it holds before
   * it is ended; it ends earlier when its last session closes.
   */
  hostDrainMs?: number;
  /** Retired hosts kept draining at once (default: hostProcesses); past it the oldest ends at once. */
  maxRetiredHosts?: number;
  /** Called on events worth a log line (host crashes, retirements and restarts). */
  onHostEvent?: (event: { kind: "exit" | "retired"; detail: string }) => void;
  /** In-process only: what to do when isolated-vm loses an isolate. Default: abort the process. */
  onCatastrophicError?: EngineOptions["onCatastrophicError"];
}

export function createJavaScriptBackend(options: JavaScriptBackendOptions): LanguageBackend {
  return options.isolation === "in-process" ? new InProcessBackend(options) : new ProcessBackend(options);
}

/** Runs isolates in this process: a catastrophic isolated-vm error takes the process down. */
class InProcessBackend implements LanguageBackend {
  readonly language = Language.LANGUAGE_JAVASCRIPT;
  readonly killGraceMs: number;
  private readonly engine: IsolateEngine;

  constructor(options: JavaScriptBackendOptions) {
    this.killGraceMs = options.hardKillGraceMs;
    this.engine = new IsolateEngine({
      ...engineOptions(options),
      ...(options.imageServiceSecurity === undefined ? {} : { imageServiceSecurity: options.imageServiceSecurity }),
      onCatastrophicError:
        options.onCatastrophicError ??
        ((_session, message) => {
          process.stderr.write(`isolated-vm lost control of an isolate (${message}); aborting\n`);
          process.abort();
        }),
    });
  }

  start(): Promise<void> {
    return this.engine.start();
  }

  createSession(images: InputImage[], limits: ResolvedLimits): Promise<LanguageSession> {
    return this.engine.createSession(images, limits);
  }

  stop(): Promise<void> {
    return this.engine.stop();
  }
}

function engineOptions(options: JavaScriptBackendOptions): HostOptions {
  return {
    poolSize: options.poolSize,
    poolMemoryMb: options.poolMemoryMb,
    imageServiceHint: options.imageServiceHint,
    maxDisplayBytes: options.maxDisplayBytes,
    maxDisplayPixels: options.maxDisplayPixels,
    hardKillGraceMs: options.hardKillGraceMs,
    ...(options.imageServiceAddress === undefined ? {} : { imageServiceAddress: options.imageServiceAddress }),
  };
}

function fromHostFailure(failure: HostFailure): ToolplaneError {
  return errorOfStatus(failure.code, failure.message, { errorClass: failure.errorClass });
}

/** A request without its correlation id (added when sent). */
type HostCall =
  Exclude<HostRequest, { op: "cancel" }> extends infer Request
    ? Request extends { id: number }
      ? Omit<Request, "id">
      : never
    : never;

/** The host process ended while a request was outstanding. */
class HostExited extends Error {
  constructor(
    readonly reason: "catastrophic" | "killed" | "crashed",
    message: string,
  ) {
    super(message);
  }
}

/** Why a host stopped serving one session's cell: the session's own code, never a neighbour's. */
type Culprit = { cause: "catastrophic" | "killed"; detail: string };

/**
 * One sandbox host process and the requests waiting on it.
 *
 * When isolated-vm loses an isolate (a V8 heap exhaustion inside a C++ builtin, e.g.
 * `new Array(2**30).fill(0)`, which no termination request interrupts) or a cell will not stop, the thread
 * running it is lost for good, but the other isolates of the host are unaffected (isolated-vm's own advice:
 * stop serving requests, finish outstanding work, then end the process). So the culprit's call is answered at
 * once, the host is retired (no new sessions; its slot gets a fresh host) and it keeps serving the sessions
 * it holds, with their state, until the last one closes or the drain time ends.
 */
class HostProcess {
  private readonly pending = new Map<
    number,
    { resolve: (value: unknown) => void; reject: (error: Error) => void; sessionId: string | undefined }
  >();
  private nextId = 1;
  exited = false;
  started = false;
  /** No longer given sessions: isolated-vm lost an isolate here (or a cell would not stop). */
  retired = false;
  /** Being ended by us: no new call may start here (its sessions move to the slot's current host). */
  ending = false;
  sessions = 0;
  readonly gone: Promise<void>;
  private drainTimer: NodeJS.Timeout | undefined;
  /** Sessions whose isolate this host lost (each loss counted once). */
  private readonly culprits = new Set<string>();
  private killWhenIdle = false;

  private constructor(
    private readonly child: ChildProcess,
    private readonly onExit: (host: HostProcess, detail: string) => void,
    private readonly onRetire: (host: HostProcess, detail: string) => void,
  ) {
    this.gone = new Promise((resolve) => {
      child.once("exit", (code, signal) => {
        this.exited = true;
        clearTimeout(this.drainTimer);
        const detail = `sandbox host process exited (${signal ?? `code ${code}`})`;
        for (const [, waiter] of this.pending)
          waiter.reject(new HostExited("crashed", `${detail} while this call ran`));
        this.pending.clear();
        // A host that died while starting is reported by start(); restarting it here could loop forever.
        if (this.started) this.onExit(this, detail);
        resolve();
      });
    });
    // Failed kills and sends surface as 'error' events; the host's death is handled on 'exit' above.
    child.on("error", () => undefined);
    child.on("message", (message: HostMessage) => {
      if ("event" in message) {
        if (message.event === "catastrophic") this.lostIsolate(message.sessionId, message.message);
        return;
      }
      const waiter = this.pending.get(message.id);
      if (!waiter) return;
      this.pending.delete(message.id);
      if (message.ok) waiter.resolve(message.value);
      else waiter.reject(fromHostFailure(message.error));
      if (this.killWhenIdle && this.pending.size === 0) this.child.kill("SIGKILL");
    });
  }

  static async start(
    options: JavaScriptBackendOptions,
    onExit: (host: HostProcess, detail: string) => void,
    onRetire: (host: HostProcess, detail: string) => void,
  ): Promise<HostProcess> {
    const entry = fileURLToPath(new URL("./host-process.js", import.meta.url));
    const startTimeoutMs = options.hostStartTimeoutMs ?? 30_000;
    const bounded = (options.hostMemoryMb ?? 0) > 0;
    const child = fork(entry, [JSON.stringify(engineOptions(options))], {
      serialization: "advanced",
      stdio: ["ignore", "ignore", "inherit", "ipc"],
      // prlimit sets the bound, then execs node with the IPC channel still open.
      ...(bounded
        ? {
            execPath: options.prlimitPath ?? "/usr/bin/prlimit",
            execArgv: [`--data=${(options.hostMemoryMb ?? 0) * 1024 * 1024}`, "--", process.execPath],
          }
        : {}),
    });
    const ready = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        child.kill("SIGKILL");
        reject(new UnavailableError(`the JavaScript sandbox host did not start within ${startTimeoutMs} ms`));
      }, startTimeoutMs);
      child.on("message", (message: HostMessage) => {
        if ("event" in message && message.event === "ready") {
          clearTimeout(timer);
          resolve();
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new UnavailableError(`the JavaScript sandbox host exited at start (${signal ?? `code ${code}`})`));
      });
      child.once("error", (error) => {
        clearTimeout(timer);
        reject(new UnavailableError(`the JavaScript sandbox host could not be started: ${error.message}`));
      });
    });
    const host = new HostProcess(child, onExit, onRetire);
    await ready;
    host.started = true;
    return host;
  }

  request(message: HostCall, sessionId?: string): Promise<unknown> {
    if (this.exited) return Promise.reject(new HostExited("crashed", "sandbox host process is gone"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, sessionId });
      // With a callback, a send on a channel that just closed reports here instead of as an 'error' event.
      this.child.send({ ...message, id } as HostRequest, (error) => {
        if (!error || !this.pending.has(id)) return;
        this.pending.delete(id);
        reject(new HostExited("crashed", `sandbox host process is gone: ${error.message}`));
      });
    });
  }

  cancel(sessionId: string): void {
    // A host that is going away stops the cell anyway: a failed send needs no handling.
    if (!this.exited) this.child.send({ op: "cancel", sessionId } satisfies HostRequest, () => undefined);
  }

  /** A session's cell would not stop: it is answered as the culprit and the host retired (its thread is lost). */
  abandon(sessionId: string, detail: string): void {
    this.answerCulprit(sessionId, { cause: "killed", detail });
    this.retire(`a cell of session ${sessionId} did not stop (${detail})`);
  }

  /** The session no longer lives here (closed, or its isolate was lost); the last one out ends a retired host. */
  release(): void {
    this.sessions -= 1;
    if (this.retired && this.sessions <= 0) this.endWhenIdle();
  }

  async stop(graceMs: number): Promise<void> {
    if (this.exited) return;
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    this.request({ op: "stop" }).catch(() => undefined);
    await this.gone;
    clearTimeout(timer);
  }

  /** Ends the host once no call is outstanding (a retired host's sessions keep their calls). */
  endWhenIdle(): void {
    if (this.exited) return;
    this.ending = true;
    if (this.pending.size === 0) this.child.kill("SIGKILL");
    else this.killWhenIdle = true;
  }

  /** Stops giving this host sessions and ends it after drainMs at the latest. */
  drainFor(drainMs: number): void {
    if (this.sessions <= 0) this.endWhenIdle();
    else this.drainTimer = setTimeout(() => this.endWhenIdle(), drainMs);
  }

  private lostIsolate(sessionId: string | undefined, detail: string): void {
    // The memory watch names a culprit before V8 gives up on its heap: that later catastrophic error is the same loss.
    if (sessionId !== undefined && this.culprits.has(sessionId)) return;
    if (sessionId !== undefined) this.answerCulprit(sessionId, { cause: "catastrophic", detail });
    if (this.retired) {
      // Two lost heaps are as much memory as a host is sized for: no call starts here any more and the host
      // ends as soon as the cells already running are answered (their sessions then lose their state, and are
      // told so), so one trajectory's second bomb never fails another's running cell.
      this.endWhenIdle();
      return;
    }
    this.retire(`isolated-vm lost an isolate${sessionId === undefined ? "" : ` of session ${sessionId}`} (${detail})`);
  }

  private answerCulprit(sessionId: string, culprit: Culprit): void {
    this.culprits.add(sessionId);
    for (const [id, waiter] of this.pending) {
      if (waiter.sessionId !== sessionId) continue;
      this.pending.delete(id);
      waiter.reject(new HostExited(culprit.cause, culprit.detail));
    }
  }

  private retire(detail: string): void {
    if (this.retired) return;
    this.retired = true;
    this.onRetire(this, detail);
  }
}

/** A retired host serves its sessions this long at most (an idle session's TTL by default). */
const DEFAULT_DRAIN_MS = 600_000;

const STATE_LOST_FRESH_CONTEXT = `${STATE_LOST} and the next cell starts in a fresh context`;

/** Runs isolates in sandbox host processes and restarts a host that died. */
class ProcessBackend implements LanguageBackend {
  readonly language = Language.LANGUAGE_JAVASCRIPT;
  private hosts: Array<Promise<HostProcess>> = [];
  private stopping = false;
  /** Hosts that lost an isolate and still serve their sessions, oldest first. */
  private retired: HostProcess[] = [];

  constructor(private readonly options: JavaScriptBackendOptions) {}

  async start(): Promise<void> {
    this.stopping = false;
    const count = this.options.hostProcesses ?? 1;
    this.hosts = Array.from({ length: count }, (_unused, index) => this.spawn(index));
    await Promise.all(this.hosts);
  }

  private spawn(index: number): Promise<HostProcess> {
    const replace = () => {
      if (this.stopping) return;
      this.hosts[index] = this.spawn(index);
      this.hosts[index]?.catch((error: unknown) =>
        this.options.onHostEvent?.({ kind: "exit", detail: `restart failed: ${String(error)}` }),
      );
    };
    return HostProcess.start(
      this.options,
      (host, detail) => {
        this.options.onHostEvent?.({ kind: "exit", detail: host.retired ? `retired ${detail}` : detail });
        this.retired = this.retired.filter((candidate) => candidate !== host);
        // A retired host's slot already has its successor; its remaining sessions re-create their state there.
        if (!host.retired) replace();
      },
      (host, detail) => {
        this.options.onHostEvent?.({ kind: "retired", detail });
        replace();
        host.drainFor(this.options.hostDrainMs ?? DEFAULT_DRAIN_MS);
        // Each retired host may hold a lost heap until it ends: past the cap, the oldest ends now (its sessions
        // lose their state), so repeated bombs cannot pile up memory.
        this.retired.push(host);
        const excess = this.retired.length - (this.options.maxRetiredHosts ?? this.hosts.length);
        for (const oldest of this.retired.slice(0, Math.max(0, excess))) oldest.endWhenIdle();
      },
    );
  }

  /** @internal The live host at a slot (waiting for a restart if one is under way). */
  async host(index: number): Promise<HostProcess> {
    if (this.stopping) throw new UnavailableError("the JavaScript backend is stopping");
    let host: HostProcess | undefined;
    try {
      host = await this.hosts[index];
    } catch {
      // The last (re)start failed: try again now rather than leave the slot dead.
      this.hosts[index] = this.spawn(index);
      host = await this.hosts[index];
    }
    if (!host) throw new InternalError(`no sandbox host at slot ${index}`);
    return host;
  }

  async createSession(images: InputImage[], limits: ResolvedLimits): Promise<LanguageSession> {
    const settled = await Promise.all(this.hosts.map((_host, index) => this.host(index).catch(() => undefined)));
    let index = -1;
    for (const [candidate, host] of settled.entries()) {
      if (host && !host.exited && !host.retired && (index === -1 || host.sessions < (settled[index]?.sessions ?? 0)))
        index = candidate;
    }
    if (index === -1) throw new UnavailableError("no JavaScript sandbox host is running", { retryAfterMs: 1000 });
    const session = new ProcessSession(this, index, images, limits);
    await session.open();
    return session;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    const hosts = await Promise.all(this.hosts.map((host) => host.catch(() => undefined)));
    // A retired host may hold a parked isolate that would never finish a clean stop.
    await Promise.all([...hosts.map((host) => host?.stop(5000)), ...this.retired.map((host) => host.stop(0))]);
  }

  /** Default grace after a cell's timeout before it is taken for stuck (the session manager may shorten it). */
  get killGraceMs(): number {
    return this.options.hardKillGraceMs;
  }
}

/** A session whose isolate lives in a sandbox host process. */
class ProcessSession implements LanguageSession {
  private readonly id = randomUUID();
  private host: HostProcess | undefined;
  /** Why the state is gone, when the host it lived in died; told to the model on the next cell. */
  private lostReason: string | undefined;
  private closed = false;

  constructor(
    private readonly backend: ProcessBackend,
    private readonly slot: number,
    private readonly images: InputImage[],
    private readonly limits: ResolvedLimits,
  ) {}

  /** Creates the session's state in the slot's current host. */
  async open(): Promise<HostProcess> {
    const host = await this.backend.host(this.slot);
    try {
      await host.request({ op: "create", sessionId: this.id, images: this.images, limits: this.limits }, this.id);
    } catch (error) {
      throw error instanceof HostExited
        ? new UnavailableError(`the JavaScript sandbox host died: ${error.message}`)
        : error;
    }
    host.sessions += 1;
    this.host = host;
    return host;
  }

  async execute(code: string, options: ExecuteOptions): Promise<ExecutionOutcome> {
    if (this.closed) throw new FailedPreconditionError("the JavaScript session is closed");
    let notice: string | undefined;
    if (!this.host || this.host.exited || this.host.ending) {
      notice = javascriptStateLostNote(this.lostReason ?? "the JavaScript sandbox process was restarted");
      this.lostReason = undefined;
      await this.open();
    }
    const host = this.host as HostProcess;
    const onAbort = () => host.cancel(this.id);
    options.signal.addEventListener("abort", onAbort, { once: true });
    // The host disposes a stuck isolate itself within the first half of the grace; at its end the cell's thread
    // is taken for lost (a C++ builtin that ignores termination) and the host retired, all inside the deadline.
    const graceMs = options.killGraceMs ?? this.backend.killGraceMs;
    const watchdog = setTimeout(
      () => host.abandon(this.id, `the cell did not stop within ${options.timeoutMs} ms`),
      options.timeoutMs + graceMs,
    );
    try {
      const outcome = (await host.request(
        { op: "execute", sessionId: this.id, code, timeoutMs: options.timeoutMs, hardKillGraceMs: graceMs / 2 },
        this.id,
      )) as ExecutionOutcome;
      outcome.images = outcome.images.map((image) => Buffer.from(image.buffer, image.byteOffset, image.byteLength));
      if (notice) outcome.stderr = notice + outcome.stderr;
      return outcome;
    } catch (error) {
      // The host hears only "cancel": whether the caller's deadline or its leaving stopped the cell, this side knows.
      if (error instanceof CancelledError && options.signal.aborted) {
        throw stoppedError(options.signal, error.message, error);
      }
      if (!(error instanceof HostExited)) throw error;
      return this.afterHostExit(error, options, notice);
    } finally {
      clearTimeout(watchdog);
      options.signal.removeEventListener("abort", onAbort);
    }
  }

  private afterHostExit(error: HostExited, options: ExecuteOptions, notice: string | undefined): ExecutionOutcome {
    const outcome = (failure: ExecutionOutcome["failure"] & object): ExecutionOutcome => ({
      stdout: "",
      stderr: `${notice ?? ""}${failure.traceback}\n`,
      stdoutTruncated: false,
      stderrTruncated: false,
      images: [],
      imagesTruncated: false,
      failure,
    });
    if (error.reason !== "crashed") {
      // The culprit's isolate is lost with its thread; the next cell starts in the slot's current host.
      this.host?.release();
      this.host = undefined;
    }
    if (error.reason === "catastrophic") {
      this.lostReason = `the previous cell exhausted the JavaScript heap (memory limit ${this.limits.memoryMb} MB)`;
      const message = `JavaScript heap exhausted (memory limit ${this.limits.memoryMb} MB: ${error.message}); ${STATE_LOST_FRESH_CONTEXT}`;
      return outcome({
        code: "RESOURCE_EXHAUSTED",
        type: "MemoryLimitError",
        message,
        traceback: `MemoryLimitError: ${message}`,
      });
    }
    if (error.reason === "killed") {
      this.lostReason = `the previous cell did not stop at its time limit of ${options.timeoutMs} ms and was killed`;
      const message = `${timeLimitExceeded(options.timeoutMs)} and was killed; ${STATE_LOST_FRESH_CONTEXT}`;
      return outcome({
        code: "DEADLINE_EXCEEDED",
        type: "TimeoutError",
        message,
        traceback: `TimeoutError: ${message}`,
      });
    }
    this.lostReason = "the JavaScript sandbox process was restarted after another session crashed it";
    if (options.signal.aborted)
      throw stoppedError(options.signal, "the execution stopped: its caller left or its deadline passed");
    throw new UnavailableError(
      `the JavaScript sandbox process died while this cell ran (not caused by this session); ${STATE_LOST_FRESH_CONTEXT}`,
      { retryAfterMs: 1000 },
    );
  }

  async reset(): Promise<void> {
    if (this.closed) throw new FailedPreconditionError("the JavaScript session is closed");
    const host = this.host;
    this.lostReason = undefined;
    if (!host || host.exited || host.ending) {
      await this.open();
      return;
    }
    await host.request({ op: "reset", sessionId: this.id }, this.id);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const host = this.host;
    this.host = undefined;
    if (!host || host.exited) return;
    host.release();
    await host.request({ op: "close", sessionId: this.id }, this.id).catch(() => undefined);
  }
}
