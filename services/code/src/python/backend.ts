import { chmodSync, chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Language } from "../../../../generated/toolplane/code/v1/code.js";
import {
  errorMessage,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  type Logger,
  stoppedError,
  UnavailableError,
  withStage,
} from "../../../runtime/src/index.js";
import type {
  CodeFailure,
  CreateOptions,
  ExecuteOptions,
  ExecutionOutcome,
  InputImage,
  LanguageBackend,
  LanguageSession,
  PoolStats,
  RecoveredSession,
  ResolvedLimits,
  Restored,
  RestoreReason,
} from "../backend.js";
import type { SessionRecord } from "../checkpoint-store.js";
import { STATE_LOST, timeLimitExceeded } from "../texts.js";
import { type Kernel, SandboxExitedError } from "./channel.js";
import { type CheckpointConfig, restoredNote, SessionCheckpoints } from "./checkpoints.js";
import type { Frame } from "./framing.js";
import { KernelPool } from "./pool.js";
import { buildFontCache, SandboxedKernel, type SandboxOptions } from "./sandbox.js";
import { ZYGOTE_DIED, ZygoteSupervisor } from "./zygote.js";

/** How sessions get their kernel: forked from a warm zygote, one bubblewrap sandbox each, or the first that works. */
export type PythonStart = "zygote" | "sandbox" | "auto";

export interface PythonBackendOptions extends Omit<SandboxOptions, "fontCacheDir"> {
  start: PythonStart;
  /** util-linux `unshare`, for the zygote's outer sandbox. */
  unsharePath: string;
  /** The compiled session init (pid 1 of each forked session). */
  sessionInitPath: string;
  /** Warm kernels kept ready: whole sandboxes (sandbox start) or forks (zygote start). */
  poolSize: number;
  forkPoolSize: number;
  /** Kernels started at the same time: sandboxes (each ~1 s of imports) or forks. */
  warmupConcurrency: number;
  forkConcurrency: number;
  /** Retry hint of the UNAVAILABLE returned while a dead zygote is replaced. */
  retryAfterMs: number;
  /** Per-process limits applied inside the sandbox before model code runs. */
  maxProcesses: number;
  maxFileBytes: number;
  maxOpenFiles: number;
  /** How long past its timeout a cell may take to stop by itself before the sandbox is killed. */
  killGraceMs: number;
  /** Checkpoints of sessions' state, when configured (docs/code-python.md, Checkpoints). */
  checkpoints?: CheckpointConfig;
}

const RESTART_NOTE =
  "[toolplane] The Python interpreter of this session was restarted: variables and imports from earlier cells are lost; the input images are bound again.\n";

const MIN_MEMORY_MB = 64;
const FORKS_READY_AT_START = 8;

const FAILURE_CODES = new Set<CodeFailure["code"]>([
  "ABORTED",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "RESOURCE_EXHAUSTED",
]);

/** LANGUAGE_PYTHON: stateful kernels, forked from a warm zygote (or each in its own sandbox), taken from a pool. */
export class PythonBackend implements LanguageBackend {
  readonly language = Language.LANGUAGE_PYTHON;
  private pool: KernelPool | undefined;
  private zygote: ZygoteSupervisor | undefined;
  private fontCacheDir: string | undefined;
  private readonly sessions = new Set<PythonSession>();

  constructor(
    private readonly options: PythonBackendOptions,
    private readonly logger: Logger,
  ) {}

  /**
   * Builds matplotlib's font cache, starts the zygote (or, when forking in namespaces is not
   * allowed here and the start is "auto", falls back to one sandbox per session), fills the pool,
   * and says which in one log line.
   */
  async start(): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), "toolplane-mplcache-"));
    chmodSync(dir, 0o755);
    if (this.options.hostUid !== undefined) chownSync(dir, this.options.hostUid, this.options.hostUid);
    this.fontCacheDir = dir;
    const sandbox: SandboxOptions = { ...this.options, fontCacheDir: dir };
    await buildFontCache(sandbox);
    const fallback = await this.startZygote(sandbox);
    const poolLogger = this.logger.child({ component: "python-pool" });
    if (this.zygote) {
      const zygote = this.zygote;
      this.pool = new KernelPool(
        {
          size: this.options.forkPoolSize,
          warmupConcurrency: this.options.forkConcurrency,
          // A large pool fills in the background: the service is serving after the first few forks.
          readyAtStart: FORKS_READY_AT_START,
        },
        () => zygote.fork(),
        poolLogger,
      );
      this.logger.info(
        "python sessions: forked from a warm zygote, each in its own user, pid, mount, IPC, UTS and network namespaces",
      );
    } else {
      this.pool = new KernelPool(
        { size: this.options.poolSize, warmupConcurrency: this.options.warmupConcurrency },
        () => SandboxedKernel.start(sandbox),
        poolLogger,
      );
      this.logger.warn(
        `python sessions: one bubblewrap sandbox per session (${fallback ?? "TOOLPLANE_CODE_PYTHON_START=sandbox"})`,
      );
    }
    await this.pool.start();
  }

  /** Starts the zygote unless configured off; returns why not when it falls back. */
  private async startZygote(sandbox: SandboxOptions): Promise<string | undefined> {
    if (this.options.start === "sandbox") return undefined;
    const zygote = new ZygoteSupervisor(
      {
        ...sandbox,
        unsharePath: this.options.unsharePath,
        sessionInitPath: this.options.sessionInitPath,
        retryAfterMs: this.options.retryAfterMs,
      },
      this.logger.child({ component: "python-zygote" }),
    );
    try {
      await zygote.start();
      // A zygote that starts but cannot fork a session in new namespaces is no zygote.
      const probe = await zygote.fork();
      probe.kill("start-up probe");
      await probe.exited;
    } catch (error) {
      await zygote.stop();
      if (this.options.start === "zygote") throw error;
      return `the zygote cannot fork sessions in namespaces here: ${errorMessage(error).slice(0, 300)}`;
    }
    this.zygote = zygote;
    return undefined;
  }

  /** The zygote's supervisor, when sessions are forked (for tests and diagnostics). */
  get zygoteSupervisor(): ZygoteSupervisor | undefined {
    return this.zygote;
  }

  async createSession(
    images: InputImage[],
    limits: ResolvedLimits,
    options: CreateOptions = {},
  ): Promise<LanguageSession> {
    if (limits.memoryMb < MIN_MEMORY_MB) {
      // Below this the kernel itself could not build its replies, and a model error would look like ours.
      throw new InvalidArgumentError(
        `limits.memory_mb=${limits.memoryMb} is below the minimum of ${MIN_MEMORY_MB} for Python sessions`,
      );
    }
    const session = new PythonSession(this, images, limits, options.seed, this.checkpointsFor(images, limits, options));
    await session.startKernel();
    this.sessions.add(session);
    this.enforceLiveBudget(session);
    return session;
  }

  /** A session of another replica (or of this one before a restart), from its checkpoint; restored on its first call. */
  async recover(sessionId: string): Promise<RecoveredSession | undefined> {
    const config = this.options.checkpoints;
    if (!config) return undefined;
    const stored = await config.store.load(sessionId);
    if (stored?.record.language !== "python") return undefined;
    const { record, images, checkpoint } = stored;
    const checkpoints = new SessionCheckpoints(
      sessionId,
      record,
      images,
      config,
      this.options.killGraceMs,
      this.logger,
    );
    checkpoints.markStored(checkpoint);
    const session = new PythonSession(this, images, record.limits, record.seed, checkpoints, "moved");
    this.sessions.add(session);
    return { session, limits: record.limits, idleTtlMs: record.idleTtlMs, label: record.label };
  }

  private checkpointsFor(
    images: InputImage[],
    limits: ResolvedLimits,
    options: CreateOptions,
  ): SessionCheckpoints | undefined {
    const config = this.options.checkpoints;
    const identity = options.identity;
    if (!config || !identity) return undefined;
    const record: SessionRecord = {
      version: 1,
      language: "python",
      limits,
      ...(options.seed === undefined ? {} : { seed: options.seed }),
      idleTtlMs: identity.idleTtlMs,
      label: identity.label,
      images: images.map(({ name, mimeType, width, height }) => ({ name, mimeType, width, height })),
    };
    return new SessionCheckpoints(identity.sessionId, record, images, config, this.options.killGraceMs, this.logger);
  }

  /**
   * Hibernation: above the budget of live interpreters, the least recently used idle sessions whose state is
   * in the store (or who have none yet) give up their interpreter; their next call restores them.
   */
  enforceLiveBudget(keep: PythonSession): void {
    const budget = this.options.checkpoints?.maxLiveKernels;
    if (budget === undefined) return;
    const live = [...this.sessions].filter((session) => session.live);
    if (live.length <= budget) return;
    const candidates = live
      .filter((session) => session !== keep && session.canHibernate())
      .sort((a, b) => a.lastUsed - b.lastUsed);
    for (const session of candidates.slice(0, live.length - budget)) session.hibernate();
  }

  /** Resolves when every checkpoint in progress has been written (for tests and benchmarks). */
  async checkpointsSettled(): Promise<void> {
    await Promise.all([...this.sessions].map((session) => session.checkpointSettled()));
  }

  /** Sessions whose interpreter is alive, and all open sessions (for tests, metrics and benchmarks). */
  get kernelCounts(): { live: number; open: number } {
    return { live: [...this.sessions].filter((session) => session.live).length, open: this.sessions.size };
  }

  async stop(): Promise<void> {
    await Promise.all([...this.sessions].map((session) => session.close({ keepState: true })));
    await this.pool?.stop();
    await this.zygote?.stop();
    if (this.fontCacheDir) rmSync(this.fontCacheDir, { recursive: true, force: true });
  }

  poolStats(): PoolStats {
    return this.pool?.stats ?? { idle: 0, starting: 0, waiting: 0 };
  }

  /** Host pids of the kernels of open sessions (for tests and diagnostics). */
  sessionPids(): number[] {
    return [...this.sessions].flatMap((session) => session.pid ?? []);
  }

  /** @internal */
  forget(session: PythonSession): void {
    this.sessions.delete(session);
  }

  /** @internal A warm kernel with the session's images, limits and seed bound. */
  async boundKernel(images: InputImage[], limits: ResolvedLimits, seed: number | undefined): Promise<Kernel> {
    if (!this.pool) throw new UnavailableError("the Python backend is not started");
    let kernel: Kernel;
    try {
      kernel = await this.pool.acquire();
    } catch (error) {
      if (error instanceof UnavailableError) throw error;
      throw new UnavailableError(`no Python sandbox could be started: ${errorMessage(error)}`, {
        cause: error,
        retryAfterMs: this.options.retryAfterMs,
      });
    }
    const header = {
      op: "bind",
      seed: seed ?? null,
      images: images.map((image, index) => ({ name: image.name, blob: index })),
      limits: {
        memory_mb: limits.memoryMb,
        max_processes: this.options.maxProcesses,
        max_file_bytes: this.options.maxFileBytes,
        max_open_files: this.options.maxOpenFiles,
      },
    };
    let reply: Frame;
    try {
      reply = await kernel.request(
        header,
        images.map((image) => image.data),
      );
    } catch (error) {
      kernel.kill("bind failed");
      throw sandboxFailure(error, "binding the input images", this.options.retryAfterMs);
    }
    if (reply.header.op === "bind_failed") {
      kernel.kill("bind failed");
      throw new InvalidArgumentError(`images: Python could not open an input image: ${String(reply.header.message)}`);
    }
    if (reply.header.op !== "bound") {
      kernel.kill("unexpected reply to bind");
      throw new InternalError(`the kernel answered bind with ${JSON.stringify(reply.header)}`);
    }
    return kernel;
  }

  get retryAfterMs(): number {
    return this.options.retryAfterMs;
  }

  get killGraceMs(): number {
    return this.options.killGraceMs;
  }

  get log(): Logger {
    return this.logger;
  }
}

/** The session's interpreter ended before it started the cell it was sent (so the cell is not to blame). */
class GoneBeforeCell extends Error {
  constructor(readonly exit: SandboxExitedError["exit"]) {
    super("the interpreter ended before the cell started");
  }
}

function sandboxFailure(error: unknown, doing: string, retryAfterMs?: number): Error {
  if (error instanceof SandboxExitedError && error.exit.killedFor === ZYGOTE_DIED) {
    return new UnavailableError(
      `the Python zygote died while ${doing}; ${STATE_LOST} and a new zygote is starting; retry shortly`,
      { cause: error, ...(retryAfterMs === undefined ? {} : { retryAfterMs }) },
    );
  }
  const hint = retryAfterMs === undefined ? {} : { retryAfterMs };
  if (error instanceof SandboxExitedError) {
    return new UnavailableError(`the Python sandbox died while ${doing}: ${error.message}`, { cause: error, ...hint });
  }
  return new UnavailableError(`the Python sandbox failed while ${doing}: ${errorMessage(error)}`, {
    cause: error,
    ...hint,
  });
}

/**
 * One session = one kernel. When the kernel is lost (killed after a timeout,
 * died, cancelled), the session stays usable: the next call starts from a fresh
 * warm kernel with the images bound again, and its stderr says state was lost.
 */
class PythonSession implements LanguageSession {
  private kernel: Kernel | undefined;
  /** Whether the current kernel has started model code (a cell of this session) since it was taken from the pool. */
  private kernelRanCode = false;
  private restartNote = false;
  private closed = false;
  /** Its interpreter was freed by hibernation (the next call restores it). */
  private hibernated = false;
  /** A cell or a restore is running. */
  private busy = false;
  lastUsed = Date.now();

  constructor(
    private readonly backend: PythonBackend,
    private readonly images: InputImage[],
    private readonly limits: ResolvedLimits,
    private readonly seed: number | undefined,
    private readonly checkpoints: SessionCheckpoints | undefined,
    /** Why the first call restores (a session recovered from the store has no interpreter yet). */
    private firstRestore?: RestoreReason,
  ) {}

  checkpointSettled(): Promise<void> {
    return this.checkpoints?.settled() ?? Promise.resolve();
  }

  get live(): boolean {
    return this.kernel?.alive === true;
  }

  canHibernate(): boolean {
    if (this.busy || this.closed || !this.live || !this.checkpoints?.current) return false;
    return this.checkpoints.hasCheckpoint || !this.kernelRanCode;
  }

  hibernate(): void {
    this.hibernated = true;
    // Forgotten at once: a kernel being killed is still "alive" until its exit is seen.
    const kernel = this.kernel;
    this.kernel = undefined;
    kernel?.kill("hibernated");
  }

  /** The host pid of the session's interpreter while it is alive (a dead one is not reported as the session's). */
  get pid(): number | undefined {
    return this.kernel?.alive ? this.kernel.pythonPid : undefined;
  }

  async startKernel(): Promise<void> {
    this.kernel = await this.backend.boundKernel(this.images, this.limits, this.seed);
    this.kernelRanCode = false;
    if (this.closed) this.kernel.kill("session closed");
  }

  async execute(code: string, options: ExecuteOptions): Promise<ExecutionOutcome> {
    if (this.closed) throw new FailedPreconditionError("the session is closed");
    this.busy = true;
    try {
      // The previous cell's checkpoint finishes first: the kernel answers one request at a time.
      await this.checkpoints?.settled();
      let restored = await this.ensureKernel();
      let outcome: ExecutionOutcome;
      try {
        outcome = await this.runCell(code, options, restored);
      } catch (error) {
        if (!(error instanceof GoneBeforeCell)) throw error;
        // The interpreter was gone before this cell started (killed between cells; its end had not reached us
        // yet): nothing of the model's ran, so this is the between-cells case: restore, then run the cell once.
        this.backend.log.info({ exit: error.exit }, "the interpreter was gone before the cell started");
        restored = await this.ensureKernel();
        outcome = await this.runCell(code, options, restored);
      }
      if (restored) outcome.restored = restored;
      return outcome;
    } finally {
      this.busy = false;
      this.lastUsed = Date.now();
    }
  }

  /**
   * A live interpreter for the next cell. A lost one (killed, its zygote died, hibernated, or on another
   * replica) comes back from the session's checkpoint when there is one; otherwise the session starts
   * fresh and the cell's stderr says so.
   */
  private async ensureKernel(): Promise<Restored | undefined> {
    if (this.kernel?.alive) return undefined;
    const reason: RestoreReason = this.firstRestore ?? (this.hibernated ? "hibernated" : "kernel_lost");
    this.firstRestore = undefined;
    this.hibernated = false;
    if (this.kernel && reason === "kernel_lost") {
      // Logged when the old process is gone; the new kernel does not wait for its teardown.
      const log = this.backend.log;
      void this.kernel.exited.then((exit) => log.info({ exit }, "restarting the lost interpreter of a session"));
    }
    // A kernel that never ran the model's code held no state of the model's: nothing to announce.
    const stateLost = this.kernelRanCode;
    await this.startKernel();
    this.backend.enforceLiveBudget(this);
    if (!this.checkpoints?.hasCheckpoint) {
      this.restartNote ||= stateLost;
      return undefined;
    }
    try {
      const checkpoints = this.checkpoints;
      const restored = await withStage("restore", { "toolplane.restore_reason": reason }, () =>
        checkpoints.restore(this.kernel as Kernel, reason),
      );
      this.kernelRanCode = true;
      this.restartNote = false;
      return restored;
    } catch (error) {
      if (!(error instanceof SandboxExitedError)) {
        throw sandboxFailure(error, "restoring the session's checkpoint", this.backend.retryAfterMs);
      }
      // The model's own unpickling code ended the interpreter: that state must not come back (it would again).
      this.backend.log.info({ exit: error.exit }, "restoring a checkpoint ended the interpreter; starting fresh");
      await this.checkpoints.drop();
      await this.startKernel();
      this.restartNote = true;
      return undefined;
    }
  }

  private async runCell(
    code: string,
    options: ExecuteOptions,
    restored: Restored | undefined,
  ): Promise<ExecutionOutcome> {
    const kernel = this.kernel as Kernel;
    const note =
      (restored ? restoredNote(restored) : this.restartNote ? RESTART_NOTE : "") +
      (this.checkpoints?.takeNotice() ?? "");
    this.restartNote = false;
    if (options.signal.aborted) throw stoppedError(options.signal, "the call stopped before the code ran");

    const hardLimit = setTimeout(
      () => kernel.kill("timeout"),
      options.timeoutMs + (options.killGraceMs ?? this.backend.killGraceMs),
    );
    // A caller that goes away stops the cell the way its timeout would (the kernel's SIGALRM handler), so a
    // cell that stops keeps the session's state; only one that ignores it is killed, after the grace.
    let cancelKill: NodeJS.Timeout | undefined;
    const onAbort = () => {
      const pid = kernel.pythonPid;
      if (pid === undefined) return kernel.kill("cancelled");
      try {
        process.kill(pid, "SIGALRM");
      } catch {
        return kernel.kill("cancelled");
      }
      cancelKill = setTimeout(() => kernel.kill("cancelled"), options.killGraceMs ?? this.backend.killGraceMs);
    };
    options.signal.addEventListener("abort", onAbort, { once: true });
    let reply: Frame;
    let cellStarted = false;
    try {
      reply = await kernel.request(
        {
          op: "exec",
          code,
          timeout_ms: options.timeoutMs,
          fix_indentation: options.fixIndentation === "reference" ? "reference" : options.fixIndentation === true,
          max_output_bytes: this.limits.maxOutputBytes,
          max_images: this.limits.maxImages,
        },
        [],
      );
      if (reply.header.op === "started") {
        cellStarted = true;
        this.kernelRanCode = true;
        reply = await kernel.next();
      }
    } catch (error) {
      if (
        !cellStarted &&
        this.kernelRanCode &&
        error instanceof SandboxExitedError &&
        error.exit.killedFor === undefined &&
        !this.closed &&
        !options.signal.aborted
      ) {
        throw new GoneBeforeCell(error.exit);
      }
      return this.lostKernel(error, options.timeoutMs, note, options.signal);
    } finally {
      clearTimeout(hardLimit);
      clearTimeout(cancelKill);
      options.signal.removeEventListener("abort", onAbort);
    }
    if (options.signal.aborted) {
      // The interrupted cell may have changed the namespace before it stopped: the checkpoint follows it.
      if (reply.header.op === "result") this.checkpoints?.schedule(kernel);
      throw stoppedError(
        options.signal,
        "the call stopped; the running code was interrupted (the session keeps its state)",
      );
    }
    if (reply.header.op !== "result") {
      kernel.kill("kernel error");
      this.restartNote = true;
      if (cellStarted) {
        // The kernel failed after the model's code ran in its interpreter (stdout replaced, descriptors closed,
        // rlimits lowered...): the model's doing, like a crash. The state that broke it must not come back.
        void this.checkpoints?.drop();
        const detail = lastLine(String(reply.header.message ?? reply.header.op));
        // Logged as a warning: a bug of the kernel's own would show up here first.
        this.backend.log.warn({ detail }, "python kernel failed after model code ran; blamed on the code");
        return interpreterDied(`it broke the kernel (${detail})`, note);
      }
      throw new InternalError(
        `the Python kernel failed: ${String(reply.header.message ?? JSON.stringify(reply.header))}`,
      );
    }
    const outcome = toOutcome(reply, note);
    this.checkpoints?.schedule(kernel);
    return outcome;
  }

  private lostKernel(error: unknown, timeoutMs: number, note: string, signal: AbortSignal): ExecutionOutcome {
    this.restartNote = true;
    const killedFor = error instanceof SandboxExitedError ? error.exit.killedFor : undefined;
    const callerLeft = killedFor === "cancelled" || killedFor === "session closed" || this.closed;
    if (!this.kernelRanCode && !callerLeft) {
      // This kernel never started any of the model's code (it ended, or hung, before saying "started"):
      // whatever stopped it, the model did not. The session's next call takes a fresh kernel.
      this.restartNote = note !== "";
      throw sandboxFailure(error, "starting the code", this.backend.retryAfterMs);
    }
    if (killedFor === "timeout" || (error instanceof SandboxExitedError && !callerLeft && killedFor !== ZYGOTE_DIED)) {
      // The cell's own code ended its interpreter: the state before it must not come back.
      void this.checkpoints?.drop();
    }
    if (killedFor === "timeout") {
      // The code ignored the in-sandbox timeout (e.g. stuck in C code): its time is up either way, a MODEL failure.
      const message = `${timeLimitExceeded(timeoutMs)} and did not stop; the interpreter was killed and ${STATE_LOST}`;
      return lostInterpreter("DEADLINE_EXCEEDED", "TimeoutError", message, note);
    }
    if (killedFor === "cancelled") {
      throw stoppedError(signal, `the call stopped; the running code was stopped and ${STATE_LOST}`, error);
    }
    if (killedFor === ZYGOTE_DIED) throw sandboxFailure(error, "running the code", this.backend.retryAfterMs);

    if (this.closed || killedFor === "session closed") {
      throw new FailedPreconditionError("the session was closed while its code was running", { cause: error });
    }
    if (error instanceof SandboxExitedError) {
      // Nothing but the running code can end a sandbox mid-cell: it has its own namespaces and nothing else
      // runs in it. Killing its interpreter (os._exit, a signal to itself, a segfault, forged frames on the
      // reply pipe) is the model's doing; calling it an infrastructure failure would let a policy escape a bad
      // reward by crashing its sandbox. Failures to start a sandbox stay INFRASTRUCTURE (sandboxFailure).
      this.backend.log.info({ exit: error.exit }, "python interpreter died while running model code");
      const how = error.exit.killedFor
        ? `it broke the interpreter's protocol (${error.exit.killedFor.slice(0, 120)})`
        : error.exit.signal
          ? `it ended with signal ${error.exit.signal}`
          : `it exited with code ${error.exit.code}`;
      return interpreterDied(how, note);
    }
    this.backend.log.warn({ err: error }, "python sandbox failed during an execution");
    throw sandboxFailure(error, "running the code");
  }

  async reset(): Promise<void> {
    if (this.closed) throw new FailedPreconditionError("the session is closed");
    this.kernel?.kill("reset");
    this.kernel = undefined;
    this.restartNote = false;
    this.firstRestore = undefined;
    this.hibernated = false;
    await this.checkpoints?.drop();
    await this.startKernel();
    this.backend.enforceLiveBudget(this);
  }

  async close(options: { keepState?: boolean } = {}): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.backend.forget(this);
    if (options.keepState) await this.checkpoints?.settled();
    else await this.checkpoints?.drop();
    const kernel = this.kernel;
    if (!kernel) return;
    kernel.kill("session closed");
    await kernel.exited;
  }
}

/** The model's code ended or broke its interpreter: the model's failure (ABORTED), never the system's. */
function interpreterDied(how: string, note: string): ExecutionOutcome {
  const message = `the interpreter died while running the code: ${how}; ${STATE_LOST} and the next call starts a fresh interpreter`;
  return lostInterpreter("ABORTED", "InterpreterDied", message, note);
}

/** The outcome of a cell whose interpreter is gone (the model's failure): no output, the error as its stderr. */
function lostInterpreter(code: CodeFailure["code"], type: string, message: string, note: string): ExecutionOutcome {
  return {
    stdout: "",
    stderr: `${note}${type}: ${message}\n`,
    stdoutTruncated: false,
    stderrTruncated: false,
    images: [],
    imagesTruncated: false,
    failure: { code, type, message, traceback: `${type}: ${message}\n` },
  };
}

/** The last non-empty line of a traceback (its exception), shortened. */
function lastLine(text: string): string {
  const lines = text.trim().split("\n");
  return (lines[lines.length - 1] ?? "").trim().slice(0, 200);
}

function toOutcome(reply: Frame, note: string): ExecutionOutcome {
  const header = reply.header as {
    stdout: string;
    stderr: string;
    stdout_truncated: boolean;
    stderr_truncated: boolean;
    images_truncated: boolean;
    result?: string;
    failure?: { code: string; type: string; message: string; traceback: string };
  };
  const outcome: ExecutionOutcome = {
    stdout: header.stdout,
    stderr: note + header.stderr,
    stdoutTruncated: header.stdout_truncated,
    stderrTruncated: header.stderr_truncated,
    images: reply.blobs,
    imagesTruncated: header.images_truncated,
  };
  if (header.result !== undefined) outcome.result = header.result;
  if (header.failure) {
    const code = header.failure.code as CodeFailure["code"];
    if (!FAILURE_CODES.has(code)) throw new InternalError(`the kernel reported an unknown failure code ${code}`);
    outcome.failure = { ...header.failure, code };
  }
  return outcome;
}
