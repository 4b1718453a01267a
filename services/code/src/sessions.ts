import { randomUUID } from "node:crypto";
import { Language } from "../../../generated/toolplane/code/v1/code.js";
import {
  DeadlineExceededError,
  errorMessage,
  InvalidArgumentError,
  type Logger,
  limitError,
  NotFoundError,
  onScrape,
  overLimit,
  poolSize,
  queueDepth,
  ResourceExhaustedError,
  stoppedError,
  withStage,
} from "../../runtime/src/index.js";
import type {
  ExecutionOutcome,
  IndentationFix,
  InputImage,
  LanguageBackend,
  LanguageSession,
  ResolvedLimits,
} from "./backend.js";

/** Each per-session limit: its field in the request, and the setting behind its maximum (named in its error). */
const LIMIT_FIELDS = {
  timeoutMs: { field: "limits.timeout_ms", variable: "TOOLPLANE_CODE_MAX_TIMEOUT_MS" },
  memoryMb: { field: "limits.memory_mb", variable: "TOOLPLANE_CODE_MAX_MEMORY_MB" },
  maxOutputBytes: { field: "limits.max_output_bytes", variable: "TOOLPLANE_CODE_MAX_OUTPUT_BYTES" },
  maxImages: { field: "limits.max_images", variable: "TOOLPLANE_CODE_MAX_IMAGES" },
} as const satisfies Record<keyof ResolvedLimits, { field: string; variable: string }>;

export interface SessionManagerConfig {
  /** Used when a request leaves a limit at 0. */
  defaults: ResolvedLimits & { idleTtlSeconds: number };
  /** A request above one of these is INVALID_ARGUMENT. */
  maxima: ResolvedLimits & { idleTtlSeconds: number };
  maxSessions: number;
  /** CreateSession calls that may wait for a free session slot; past it they fail RESOURCE_EXHAUSTED at once. */
  maxWaitingCreates: number;
  /** Suggested wait sent with RESOURCE_EXHAUSTED when the wait queue is full. */
  retryAfterMs: number;
  /** How often idle sessions are looked for. */
  sweepIntervalMs: number;
  /** Largest code of one Execute, in UTF-8 bytes. */
  maxCodeBytes: number;
}

export interface CreateSessionParams {
  language: Language;
  images: InputImage[];
  limits: Partial<ResolvedLimits>;
  idleTtlSeconds: number;
  label: string;
  /** Seeds the session's random streams; undefined = fresh entropy. */
  seed?: number;
  /** Aborted when the caller goes away (cancellation or its deadline). */
  signal: AbortSignal;
}

export interface CreatedSession {
  sessionId: string;
  language: Language;
  limits: ResolvedLimits;
  /** Time spent waiting for a free session slot. */
  queueMs: number;
  executeMs: number;
}

export interface ExecuteParams {
  sessionId: string;
  code: string;
  /** 0 = the session's timeout. */
  timeoutMs: number;
  fixIndentation: IndentationFix;
  signal: AbortSignal;
  /** The caller's absolute deadline (ms since the epoch), when it set one. */
  deadlineMs?: number;
}

/**
 * Time kept between the end of a cell (its kill, at worst) and the caller's deadline, so a cell cut short by the
 * deadline still returns its output as the model's timeout; 100 ms proved too little for a kill and its answer
 * on a loaded 2-core box.
 */
const DEADLINE_MARGIN_MS = 250;

/**
 * The cell's timeout and kill grace, fitted inside the caller's deadline: the cell is interrupted at its
 * timeout and killed at most a grace later, both before the deadline, so a runaway cell is always the model's
 * timeout (MODEL DEADLINE_EXCEEDED) and never the caller's deadline (INFRASTRUCTURE). Under a short deadline
 * the grace gets at most half of what is left.
 */
export function cellBudget(
  requestedMs: number,
  deadlineMs: number | undefined,
  backendGraceMs: number | undefined,
  now = Date.now(),
): { timeoutMs: number; killGraceMs?: number } {
  if (deadlineMs === undefined) return { timeoutMs: requestedMs };
  const leftMs = Math.floor(deadlineMs - now - DEADLINE_MARGIN_MS);
  if (leftMs <= 0) throw new DeadlineExceededError("the caller's deadline passed before the code could run");
  const killGraceMs = Math.min(backendGraceMs ?? 0, Math.floor(leftMs / 2));
  return { timeoutMs: Math.max(1, Math.min(requestedMs, leftMs - killGraceMs)), killGraceMs };
}

export interface ExecuteResult {
  outcome: ExecutionOutcome;
  /** Time spent waiting for an earlier call on the same session. */
  queueMs: number;
  executeMs: number;
}

interface Session {
  id: string;
  label: string;
  language: Language;
  limits: ResolvedLimits;
  idleTtlMs: number;
  backendSession: LanguageSession;
  lastUsed: number;
  /** Calls queued or running; a session with calls is never idle. */
  active: number;
  /** Calls on one session run one at a time, in arrival order: this is the end of its queue. */
  tail: Promise<void>;
}

/**
 * Language-agnostic session bookkeeping: ids, limits, idle TTL, the session cap
 * and per-session serialization. It knows nothing of gRPC; backends know
 * nothing of ids or TTLs.
 *
 * Concurrent calls on one session wait for each other (FIFO) rather than fail:
 * a kernel runs one cell at a time, and a caller that retries after a client-side
 * timeout should get an answer, not an error. The wait shows as Timing.queue_ms
 * and respects the caller's deadline.
 */
export class SessionManager {
  private readonly backends = new Map<Language, LanguageBackend>();
  private readonly sessions = new Map<string, Session>();
  /** Slots taken by creations in progress (counted with the open sessions against max_sessions). */
  private creating = 0;
  /** Recoveries from the checkpoint store in progress, so concurrent calls of one session share one. */
  private readonly recovering = new Map<string, Promise<Session | undefined>>();
  /** CreateSession calls waiting for a slot, served in arrival order. */
  private readonly waiting: Array<() => void> = [];
  private sweeper: NodeJS.Timeout | undefined;

  constructor(
    backends: LanguageBackend[],
    private readonly config: SessionManagerConfig,
    private readonly logger: Logger,
  ) {
    for (const backend of backends) this.backends.set(backend.language, backend);
  }

  async start(): Promise<void> {
    await Promise.all(
      [...this.backends.values()].map((backend) =>
        backend.start().catch((error: unknown) => {
          throw new Error(`the ${Language[backend.language]} backend failed to start: ${errorMessage(error)}`, {
            cause: error,
          });
        }),
      ),
    );
    this.sweeper = setInterval(() => this.sweep(Date.now()), this.config.sweepIntervalMs);
    this.sweeper.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    const open = [...this.sessions.values()];
    this.sessions.clear();
    // The sessions outlive this process: a replica sharing the checkpoint store continues them.
    await Promise.allSettled(open.map((session) => session.backendSession.close({ keepState: true })));
    await Promise.allSettled([...this.backends.values()].map((backend) => backend.stop()));
  }

  get openSessions(): number {
    return this.sessions.size;
  }

  /**
   * Publishes sessions and pools before every scrape:
   * `toolplane_pool_size{pool="sessions_<language>",state="busy"}` (open sessions),
   * `toolplane_pool_size{pool="<language>",state="idle"|"starting"}` (warm sandboxes) and
   * `toolplane_queue_depth{queue="<language>_pool"}` (session creations waiting for a sandbox) and
   * `toolplane_queue_depth{queue="session_slots"}` (creations waiting for a free slot under max_sessions).
   */
  exportGauges(): void {
    onScrape(() => {
      queueDepth.set({ queue: "session_slots" }, this.waiting.length);
      for (const [language, backend] of this.backends) {
        const name = (Language[language] ?? String(language)).replace(/^LANGUAGE_/, "").toLowerCase();
        let open = 0;
        for (const session of this.sessions.values()) if (session.language === language) open += 1;
        poolSize.set({ pool: `sessions_${name}`, state: "busy" }, open);
        const stats = backend.poolStats?.();
        if (stats === undefined) continue;
        poolSize.set({ pool: name, state: "idle" }, stats.idle);
        poolSize.set({ pool: name, state: "starting" }, stats.starting);
        queueDepth.set({ queue: `${name}_pool` }, stats.waiting);
      }
    });
  }

  /** Applies defaults (0 = default) and rejects values above the service maxima, naming the limit. */
  resolveLimits(requested: Partial<ResolvedLimits>): ResolvedLimits {
    const { timeoutMs, memoryMb, maxOutputBytes, maxImages } = this.config.defaults;
    const resolved: ResolvedLimits = { timeoutMs, memoryMb, maxOutputBytes, maxImages };
    for (const key of Object.keys(LIMIT_FIELDS) as (keyof ResolvedLimits)[]) {
      const value = requested[key] ?? 0;
      if (value === 0) continue;
      const maximum = this.config.maxima[key];
      if (value > maximum) {
        throw new InvalidArgumentError(
          overLimit(`${LIMIT_FIELDS[key].field} is ${value}`, maximum, LIMIT_FIELDS[key].variable),
        );
      }
      resolved[key] = value;
    }
    return resolved;
  }

  async create(params: CreateSessionParams): Promise<CreatedSession> {
    const backend = this.backendFor(params.language);
    const limits = this.resolveLimits(params.limits);
    const idleTtlSeconds = params.idleTtlSeconds === 0 ? this.config.defaults.idleTtlSeconds : params.idleTtlSeconds;
    if (idleTtlSeconds > this.config.maxima.idleTtlSeconds) {
      throw new InvalidArgumentError(
        overLimit(
          `idle_ttl_seconds is ${idleTtlSeconds}`,
          this.config.maxima.idleTtlSeconds,
          "TOOLPLANE_CODE_MAX_IDLE_TTL_SECONDS",
        ),
      );
    }
    const queued = performance.now();
    await this.takeSlot(params.signal);
    const started = performance.now();
    // The id exists before the interpreter: a backend that checkpoints files the session's state under it.
    const id = randomUUID();
    let backendSession: LanguageSession;
    try {
      backendSession = await backend.createSession(params.images, limits, {
        ...(params.seed === undefined ? {} : { seed: params.seed }),
        identity: { sessionId: id, idleTtlMs: idleTtlSeconds * 1000, label: params.label },
      });
    } catch (error) {
      this.releaseSlot();
      throw error;
    }
    if (params.signal.aborted) {
      // Nobody will ever use or close it: free its interpreter and its slot now, not at the idle TTL.
      await backendSession.close().catch((error: unknown) => {
        this.logger.warn({ err: error, label: params.label }, "closing a session whose caller left failed");
      });
      this.releaseSlot();
      this.logger.info({ label: params.label }, "session closed at once: its caller left while it was created");
      throw stoppedError(params.signal, "the call stopped while its session was being created");
    }
    this.creating -= 1;
    this.sessions.set(id, {
      id,
      label: params.label,
      language: params.language,
      limits,
      idleTtlMs: idleTtlSeconds * 1000,
      backendSession,
      lastUsed: Date.now(),
      active: 0,
      tail: Promise.resolve(),
    });
    this.logger.info({ sessionId: id, label: params.label, language: Language[params.language] }, "session created");
    return {
      sessionId: id,
      language: params.language,
      limits,
      queueMs: started - queued,
      executeMs: performance.now() - started,
    };
  }

  async execute(params: ExecuteParams): Promise<ExecuteResult> {
    // A held session is taken synchronously: it counts as busy (never swept as idle) from the call's first tick.
    const session = this.sessions.get(params.sessionId) ?? (await this.getOrRecover(params.sessionId, params.signal));
    const backend = this.backendFor(session.language);
    const codeBytes = Buffer.byteLength(params.code, "utf8");
    if (codeBytes > this.config.maxCodeBytes) {
      throw limitError("code", codeBytes, this.config.maxCodeBytes, "bytes", undefined, {
        variable: "TOOLPLANE_CODE_MAX_CODE_BYTES",
      });
    }
    if (params.timeoutMs > this.config.maxima.timeoutMs) {
      throw new InvalidArgumentError(
        overLimit(`timeout_ms is ${params.timeoutMs}`, this.config.maxima.timeoutMs, "TOOLPLANE_CODE_MAX_TIMEOUT_MS"),
      );
    }
    const requestedMs = params.timeoutMs === 0 ? session.limits.timeoutMs : params.timeoutMs;
    return this.exclusive(session, params.signal, async (queueMs) => {
      const { timeoutMs, killGraceMs } = cellBudget(requestedMs, params.deadlineMs, backend.killGraceMs);
      const started = performance.now();
      const outcome = await withStage(
        "sandbox_execute",
        { "toolplane.language": Language[session.language] ?? "", "toolplane.queue_ms": queueMs },
        () =>
          session.backendSession.execute(params.code, {
            timeoutMs,
            ...(killGraceMs === undefined ? {} : { killGraceMs }),
            signal: params.signal,
            fixIndentation: params.fixIndentation,
          }),
      );
      return { outcome, queueMs, executeMs: performance.now() - started };
    });
  }

  async reset(sessionId: string, signal: AbortSignal): Promise<void> {
    const session = this.sessions.get(sessionId) ?? (await this.getOrRecover(sessionId, signal));
    await this.exclusive(session, signal, () => session.backendSession.reset());
  }

  /** Frees the session at once, even mid-execution (the running call then fails). */
  async close(sessionId: string): Promise<void> {
    const session = this.get(sessionId);
    this.sessions.delete(sessionId);
    this.admitWaiting();
    await session.backendSession.close();
    this.logger.info({ sessionId, label: session.label }, "session closed");
  }

  /** Closes sessions idle for longer than their TTL. */
  sweep(now: number): void {
    for (const session of this.sessions.values()) {
      if (session.active > 0 || now - session.lastUsed < session.idleTtlMs) continue;
      this.sessions.delete(session.id);
      this.admitWaiting();
      this.logger.info({ sessionId: session.id, label: session.label }, "session expired after its idle TTL");
      session.backendSession.close().catch((error: unknown) => {
        this.logger.warn({ err: error, sessionId: session.id }, "closing an expired session failed");
      });
    }
  }

  /**
   * Takes one of the max_sessions slots, waiting for one in arrival order when all are taken:
   * a burst above the budget queues (bounded) within the caller's deadline instead of failing.
   */
  private async takeSlot(signal: AbortSignal): Promise<void> {
    if (signal.aborted) throw stoppedError(signal, "the call stopped before its session was created");
    if (this.waiting.length === 0 && this.sessions.size + this.creating < this.config.maxSessions) {
      this.creating += 1;
      return;
    }
    if (this.waiting.length >= this.config.maxWaitingCreates) {
      throw new ResourceExhaustedError(
        `max_sessions reached: ${this.config.maxSessions} sessions are open and ${this.waiting.length} creations are waiting; close one or retry later`,
        { retryAfterMs: this.config.retryAfterMs },
      );
    }
    await withStage("queue_wait", { "toolplane.queue": "session_slots" }, () => this.waitForSlot(signal));
  }

  private waitForSlot(signal: AbortSignal): Promise<void> {
    return new Promise((resolve, reject) => {
      const admit = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        const index = this.waiting.indexOf(admit);
        if (index >= 0) this.waiting.splice(index, 1);
        reject(stoppedError(signal, "the call stopped while it waited for a free session slot"));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(admit);
    });
  }

  /** A creation that ended without a session gives its slot back. */
  private releaseSlot(): void {
    this.creating -= 1;
    this.admitWaiting();
  }

  /** Hands free slots to waiting creations, oldest first (each handed slot counts as creating). */
  private admitWaiting(): void {
    while (this.waiting.length > 0 && this.sessions.size + this.creating < this.config.maxSessions) {
      this.creating += 1;
      this.waiting.shift()?.();
    }
  }

  private backendFor(language: Language): LanguageBackend {
    const backend = this.backends.get(language);
    if (backend) return backend;
    const known = [...this.backends.keys()].map((value) => Language[value]).join(", ");
    const name = Language[language] ?? String(language);
    throw new InvalidArgumentError(`language ${name} is not served by this code service (available: ${known})`);
  }

  /**
   * The session, or, when this replica does not hold it, the session recreated from its checkpoint in the
   * shared store (it lived on another replica, or this one restarted); NOT_FOUND when neither has it.
   */
  private async getOrRecover(sessionId: string, signal: AbortSignal): Promise<Session> {
    const held = this.sessions.get(sessionId);
    if (held || sessionId === "") return this.get(sessionId);
    let recovering = this.recovering.get(sessionId);
    if (!recovering) {
      recovering = this.recover(sessionId, signal).finally(() => this.recovering.delete(sessionId));
      this.recovering.set(sessionId, recovering);
    }
    return (await recovering) ?? this.get(sessionId);
  }

  private async recover(sessionId: string, signal: AbortSignal): Promise<Session | undefined> {
    for (const [language, backend] of this.backends) {
      if (!backend.recover) continue;
      await this.takeSlot(signal);
      let recovered: Awaited<ReturnType<NonNullable<LanguageBackend["recover"]>>>;
      try {
        recovered = await backend.recover(sessionId);
      } catch (error) {
        this.releaseSlot();
        throw error;
      }
      if (!recovered) {
        this.releaseSlot();
        continue;
      }
      this.creating -= 1;
      const session: Session = {
        id: sessionId,
        label: recovered.label,
        language,
        limits: recovered.limits,
        idleTtlMs: recovered.idleTtlMs,
        backendSession: recovered.session,
        lastUsed: Date.now(),
        active: 0,
        tail: Promise.resolve(),
      };
      this.sessions.set(sessionId, session);
      this.logger.info({ sessionId, label: recovered.label }, "session recovered from its checkpoint");
      return session;
    }
    return undefined;
  }

  private get(sessionId: string): Session {
    if (sessionId === "") throw new InvalidArgumentError("session_id is required");
    const session = this.sessions.get(sessionId);
    if (!session) {
      throw new NotFoundError(
        `session_id ${JSON.stringify(sessionId)} not found: it was closed, expired after its idle TTL, or never existed`,
      );
    }
    return session;
  }

  private async exclusive<T>(session: Session, signal: AbortSignal, work: (queueMs: number) => Promise<T>): Promise<T> {
    const previous = session.tail;
    let release: () => void = () => {};
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    session.tail = previous.then(() => mine);
    session.active += 1;
    const queued = performance.now();
    try {
      // Calls on one session run one at a time; the wait behind the previous one is its own stage.
      await withStage("queue_wait", { "toolplane.queue": "session" }, () => untilAborted(previous, signal));
      if (!this.sessions.has(session.id)) {
        throw new NotFoundError(`session_id ${JSON.stringify(session.id)} was closed while this call waited`);
      }
      return await work(performance.now() - queued);
    } finally {
      session.active -= 1;
      session.lastUsed = Date.now();
      release();
    }
  }
}

function untilAborted(promise: Promise<void>, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.reject(stoppedError(signal, "the call stopped while it waited for the session"));
  return new Promise((resolve, reject) => {
    const onAbort = () =>
      reject(stoppedError(signal, "the call stopped while it waited for an earlier call on the same session"));
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    });
  });
}
