import { createHash } from "node:crypto";
import { status } from "@grpc/grpc-js";
import { Language } from "../../../generated/toolplane/code/v1/code.js";
import { ErrorClass, type Image, type ToolError } from "../../../generated/toolplane/common/v1/common.js";
import {
  type CreateSessionRequest,
  type CreateSessionResponse,
  type ExecuteRequest,
  ImageDelivery,
  ResultStatus,
  type StepRequest,
  type StepResponse,
  ToolResult,
  type ToolSchema,
} from "../../../generated/toolplane/gateway/v1/gateway.js";
import {
  asToolplaneError,
  type CallStatus,
  callAttributes,
  DeadlineExceededError,
  FailedPreconditionError,
  InvalidArgumentError,
  type Logger,
  NotFoundError,
  type RecordKey,
  type ResultRecorder,
  type ToolCallEvent,
  type ToolCallObserver,
  ToolplaneError,
  type ToolplaneErrorOptions,
  toToolError,
  UnavailableError,
  withStage,
  withToolCallSpan,
} from "../../runtime/src/index.js";
import { type AdmissionController, AdmissionRejectedError } from "./admission.js";
import type { Backends } from "./backends.js";
import { parseStep, responseAfterCalls, responseWithoutCalls } from "./format-step.js";
import { type CallHints, modelErrorText, nestsDeeperThan } from "./formats/index.js";
import type { ImageStore, StoredImage } from "./image-store.js";
import { MAX_IMAGES_PER_ROUND, MAX_IMAGES_PER_TRAJECTORY, prepareForModel } from "./postprocess.js";
import type { CodeLanguage, CodeSessionHandle, SessionRegistry, TrajectorySession } from "./sessions.js";
import {
  openAiSchema,
  resolveImageReference,
  type ToolContext,
  type ToolDefinition,
  type ToolOutput,
  type ToolRegistry,
} from "./tools.js";

/** Who is calling and until when: derived from the RPC by the server layer. */
export interface CallScope {
  /** Fair-share key: metadata toolplane-client-id, else the peer address. */
  clientId: string;
  /** Absolute deadline of the RPC, if the caller set one. */
  deadlineMs?: number;
  /** Aborted when the caller goes away. */
  signal: AbortSignal;
}

export interface GatewayOptions {
  backends: Backends;
  store: ImageStore;
  sessions: SessionRegistry;
  admission: AdmissionController;
  tools: ToolRegistry;
  logger: Logger;
  /** Idle TTL of sessions that do not ask for one. */
  defaultIdleTtlMs: number;
  /** Longest idle TTL a session may ask for. */
  maxIdleTtlMs: number;
  /** How often expired sessions are looked for. */
  sweepIntervalMs: number;
  observer?: ToolCallObserver;
  recorder?: ResultRecorder;
}

/** Default hook: events only in the debug log. */
export function loggingObserver(logger: Logger): ToolCallObserver {
  return { onEvent: (event) => logger.debug({ event }, "tool call event") };
}

/** Default recorder: never consulted. */
export const recorderOff: ResultRecorder = {
  mode: "off",
  lookup: async () => undefined,
  record: async () => undefined,
};

/** JSON with object keys sorted at every level: equal arguments give equal digests. */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** No tool takes arguments nested this deep; deeper input is hostile and would overflow recursive walks. */
const MAX_ARGUMENT_DEPTH = 32;

function assertNestingWithin<T extends object>(value: T, maxDepth: number): T {
  if (nestsDeeperThan(value, maxDepth)) {
    throw new InvalidArgumentError(`call arguments nest deeper than the limit of ${maxDepth} levels`);
  }
  return value;
}

function digest(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

const CODE_LANGUAGES: Record<CodeLanguage, Language> = {
  python: Language.LANGUAGE_PYTHON,
  javascript: Language.LANGUAGE_JAVASCRIPT,
};

/** Calls of one ExecuteBatch. */
const MAX_BATCH_CALLS = 1024;
/** Input images of one session (the code service binds at most 50 by default). */
const MAX_SESSION_IMAGES = 50;

/** How long releasing a closed session's code session may take. */
const RELEASE_TIMEOUT_MS = 5000;
/** The code service keeps its session a little longer than the gateway, so the gateway's TTL closes it. */
const CODE_SESSION_TTL_SLACK_SECONDS = 60;

/** Images one round may still show: per round and what is left of the trajectory's cap. */
interface RoundBudget {
  remaining: number;
}

/** Runs the render phase of concurrent calls in call order, so images keep their placeholder order. */
interface RenderTurn {
  previous: Promise<void>;
  done(): void;
}

interface CallRequest {
  callId: string;
  name: string;
  /** Raw JSON (Execute) or the parsed object (Step). */
  args: string | Record<string, unknown>;
  timeoutMs: number;
  delivery: ImageDelivery;
  step: number;
  /** How the call's format wants it run (Step only). */
  hints?: CallHints;
}

interface CallOutcome {
  result: ToolResult;
  /** The failure behind a non-OK result. */
  failure?: ToolplaneError;
  /** The text is an error message, not the tool's output. */
  textIsError: boolean;
  /** sha256 of the images returned (the result may carry bytes only). */
  outputImages: string[];
}

const STATUS_NAMES: Record<ResultStatus, CallStatus | undefined> = {
  [ResultStatus.RESULT_STATUS_OK]: "OK",
  [ResultStatus.RESULT_STATUS_MODEL_ERROR]: "MODEL_ERROR",
  [ResultStatus.RESULT_STATUS_INFRA_ERROR]: "INFRA_ERROR",
  [ResultStatus.RESULT_STATUS_UNSPECIFIED]: undefined,
  [ResultStatus.UNRECOGNIZED]: undefined,
};

/** The caller went away; INFRASTRUCTURE: nothing the model did. */
class CancelledError extends ToolplaneError {
  readonly code = status.CANCELLED;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "INFRASTRUCTURE", options);
  }
}

function errorClassName(error: ToolError | undefined): "MODEL" | "INFRASTRUCTURE" | undefined {
  if (error?.errorClass === ErrorClass.ERROR_CLASS_MODEL) return "MODEL";
  if (error?.errorClass === ErrorClass.ERROR_CLASS_INFRASTRUCTURE) return "INFRASTRUCTURE";
  return undefined;
}

function statusOf(error: ToolplaneError): ResultStatus {
  return error.errorClass === "MODEL" ? ResultStatus.RESULT_STATUS_MODEL_ERROR : ResultStatus.RESULT_STATUS_INFRA_ERROR;
}

/**
 * Aborted when the caller goes away or the call's deadline passes: what admission
 * waits honour. The AbortSignal, with its listener on the caller's signal and its
 * timer, is made on first use only: most calls get their admission slot at once
 * and never wait on it (the three cost ~3.5 µs of CPU per call).
 */
class CallSignal {
  private controller: AbortController | undefined;
  private timer: NodeJS.Timeout | undefined;
  private onCallerGone: (() => void) | undefined;

  constructor(
    private readonly caller: AbortSignal,
    private readonly deadlineMs: number,
  ) {}

  /** Whether the call is over, without making the signal. */
  get aborted(): boolean {
    return this.caller.aborted || Date.now() >= this.deadlineMs || this.controller?.signal.aborted === true;
  }

  get signal(): AbortSignal {
    if (this.controller === undefined) {
      const controller = new AbortController();
      this.controller = controller;
      if (this.caller.aborted) {
        controller.abort(this.caller.reason);
      } else {
        this.onCallerGone = () => controller.abort(this.caller.reason);
        this.caller.addEventListener("abort", this.onCallerGone, { once: true });
        this.timer = setTimeout(
          () => controller.abort(new Error("deadline exceeded")),
          Math.max(0, this.deadlineMs - Date.now()),
        );
      }
    }
    return this.controller.signal;
  }

  /** Drops the listener and the timer, when the signal was made. */
  dispose(): void {
    clearTimeout(this.timer);
    if (this.onCallerGone) this.caller.removeEventListener("abort", this.onCallerGone);
  }
}

/**
 * The gateway's domain: trajectory sessions, the image store, tool calls with
 * admission control, deadlines and the error taxonomy, and the model-format
 * Step. Knows nothing of gRPC: the server maps RPCs onto these methods.
 */
export class ToolGateway {
  private readonly observer: ToolCallObserver;
  private readonly recorder: ResultRecorder;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly options: GatewayOptions) {
    this.observer = options.observer ?? loggingObserver(options.logger);
    this.recorder = options.recorder ?? recorderOff;
  }

  /** Starts the idle-session sweeper. */
  start(): void {
    this.sweeper ??= setInterval(() => void this.closeExpired(), this.options.sweepIntervalMs);
    this.sweeper.unref();
  }

  /** Stops the sweeper and closes every open session. */
  async stop(): Promise<void> {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
    await Promise.all(this.options.sessions.removeAll().map((session) => this.release(session)));
  }

  listTools(names: string[]): ToolSchema[] {
    return this.options.tools.list(names).map((tool) => ({
      name: tool.name,
      description: tool.description,
      openaiSchemaJson: JSON.stringify(openAiSchema(tool)),
    }));
  }

  // ---- images ----

  async putImage(data: Buffer): Promise<Image> {
    return this.describe(await this.options.store.put(data, { field: "data" }), ImageDelivery.IMAGE_DELIVERY_REFERENCE);
  }

  getImage(sha256: string): Image {
    return this.describe(this.options.store.require(sha256, "sha256"), ImageDelivery.IMAGE_DELIVERY_BYTES);
  }

  private describe(image: StoredImage, delivery: ImageDelivery): Image {
    const base = { mimeType: image.mimeType, width: image.width, height: image.height };
    return delivery === ImageDelivery.IMAGE_DELIVERY_REFERENCE
      ? { sha256: image.sha256, ...base }
      : { data: image.data, sha256: undefined, ...base };
  }

  /** Takes one store reference per session per image. */
  private hold(session: TrajectorySession, image: StoredImage): void {
    if (session.closed || session.heldImages.has(image.sha256)) return;
    this.options.store.retain(image.sha256);
    session.heldImages.add(image.sha256);
  }

  // ---- sessions ----

  async createSession(request: CreateSessionRequest): Promise<CreateSessionResponse> {
    const ttlSeconds = request.idleTtlSeconds;
    const idleTtlMs = ttlSeconds === 0 ? this.options.defaultIdleTtlMs : ttlSeconds * 1000;
    if (idleTtlMs > this.options.maxIdleTtlMs) {
      throw new InvalidArgumentError(
        `idle_ttl_seconds=${ttlSeconds} exceeds the limit of ${this.options.maxIdleTtlMs / 1000} s (TOOLPLANE_GATEWAY_MAX_SESSION_TTL_SECONDS)`,
      );
    }
    if (request.images.length > MAX_SESSION_IMAGES) {
      throw new InvalidArgumentError(`images has ${request.images.length} items; the limit is ${MAX_SESSION_IMAGES}`);
    }
    const store = this.options.store;
    // Hold each image while the session is built, so a concurrent upload cannot evict it.
    const held: StoredImage[] = [];
    try {
      for (const [index, image] of request.images.entries()) {
        const field = `images[${index}]`;
        if (image.data && image.data.length > 0) {
          held.push(await store.put(Buffer.from(image.data), { hold: true, field: `${field}.data` }));
        } else if (image.sha256) {
          const stored = store.require(image.sha256, `${field}.sha256`);
          store.retain(stored.sha256);
          held.push(stored);
        } else {
          throw new InvalidArgumentError(`${field} carries neither data nor sha256`);
        }
      }
      const session = this.options.sessions.create({
        rolloutId: request.rolloutId,
        trajectoryId: request.trajectoryId,
        inputImages: held.map((image) => image.sha256),
        idleTtlMs,
      });
      // The session keeps one reference per distinct image; drop the build-time extras.
      const kept = new Set<string>();
      for (const image of held) {
        if (kept.has(image.sha256)) store.release(image.sha256);
        else kept.add(image.sha256);
      }
      held.length = 0;
      return { sessionId: session.id, imageSha256: session.inputImages.slice() };
    } finally {
      for (const image of held) store.release(image.sha256);
    }
  }

  async closeSession(sessionId: string): Promise<void> {
    if (!sessionId) throw new InvalidArgumentError("session_id is required");
    const session = this.options.sessions.remove(sessionId);
    if (!session)
      throw new NotFoundError(`session_id: no open session "${sessionId}"`, { errorClass: "INFRASTRUCTURE" });
    await this.release(session);
  }

  async closeRollout(rolloutId: string): Promise<number> {
    if (!rolloutId) throw new InvalidArgumentError("rollout_id is required");
    const sessions = this.options.sessions.removeRollout(rolloutId);
    await Promise.all(sessions.map((session) => this.release(session)));
    return sessions.length;
  }

  /** Closes sessions idle past their TTL; returns how many. */
  async closeExpired(): Promise<number> {
    const expired = this.options.sessions.removeExpired();
    for (const session of expired)
      this.options.logger.info({ sessionId: session.id }, "session idle past its TTL, closed");
    await Promise.all(expired.map((session) => this.release(session)));
    return expired.length;
  }

  /** Frees what a removed session holds: images and code sessions. Never throws. */
  private async release(session: TrajectorySession): Promise<void> {
    for (const sha256 of session.heldImages) this.options.store.release(sha256);
    session.heldImages.clear();
    const pending = [...session.codeSessions.values()];
    session.codeSessions.clear();
    await Promise.all(
      pending.map(async (created) => {
        let handle: CodeSessionHandle;
        try {
          handle = await created;
        } catch {
          return;
        }
        try {
          await this.options.backends.code.closeSession(
            { sessionId: handle.id },
            { deadlineMs: Date.now() + RELEASE_TIMEOUT_MS },
          );
        } catch (error) {
          // The code service reclaims it with its own TTL; the gateway session is gone either way.
          this.options.logger.warn(
            { sessionId: session.id, codeSessionId: handle.id, err: (error as Error).message },
            "could not close code session",
          );
        }
      }),
    );
  }

  // ---- tool calls ----

  /** One call. A call the gateway's admission control refused fails as a whole (RESOURCE_EXHAUSTED). */
  async execute(request: ExecuteRequest, scope: CallScope): Promise<ToolResult> {
    const session = this.options.sessions.get(request.sessionId);
    if (!request.call) throw new InvalidArgumentError("call is required", { errorClass: "INFRASTRUCTURE" });
    const outcome = await this.runCall(session, this.callRequest(request), scope, this.roundBudget(session), undefined);
    if (outcome.failure instanceof AdmissionRejectedError) throw outcome.failure;
    return outcome.result;
  }

  /** Calls run concurrently; each has its own session, deadline and result (partial success). */
  async executeBatch(requests: ExecuteRequest[], scope: CallScope): Promise<ToolResult[]> {
    if (requests.length > MAX_BATCH_CALLS) {
      throw new InvalidArgumentError(`calls has ${requests.length} items; the limit is ${MAX_BATCH_CALLS}`, {
        errorClass: "INFRASTRUCTURE",
      });
    }
    return Promise.all(
      requests.map(async (request, index) => {
        try {
          const session = this.options.sessions.get(request.sessionId, `calls[${index}].session_id`);
          if (!request.call) {
            throw new InvalidArgumentError(`calls[${index}].call is required`, { errorClass: "INFRASTRUCTURE" });
          }
          const outcome = await this.runCall(
            session,
            this.callRequest(request),
            scope,
            this.roundBudget(session),
            undefined,
          );
          return outcome.result;
        } catch (error) {
          return this.failedResult(
            request.call?.callId ?? "",
            request.call?.name ?? "",
            asToolplaneError(error),
            undefined,
          ).result;
        }
      }),
    );
  }

  private callRequest(request: ExecuteRequest): CallRequest {
    return {
      callId: request.call?.callId ?? "",
      name: request.call?.name ?? "",
      args: request.call?.argumentsJson ?? "",
      timeoutMs: request.timeoutMs,
      delivery: request.imageDelivery,
      step: request.step,
    };
  }

  private roundBudget(session: TrajectorySession): RoundBudget {
    return { remaining: Math.max(0, Math.min(MAX_IMAGES_PER_ROUND, MAX_IMAGES_PER_TRAJECTORY - session.imagesShown)) };
  }

  /** Parses the model's text in its format, runs the calls and renders the observation. */
  async step(request: StepRequest, scope: CallScope): Promise<StepResponse> {
    const session = this.options.sessions.get(request.sessionId);
    const parsed = parseStep(request);
    if (parsed.turn.kind !== "calls") return responseWithoutCalls(parsed.turn);
    const budget = this.roundBudget(session);
    let previous: Promise<void> = Promise.resolve();
    const outcomes = await Promise.all(
      parsed.turn.calls.map((call) => {
        let done!: () => void;
        const finished = new Promise<void>((resolve) => {
          done = resolve;
        });
        const turn: RenderTurn = { previous, done };
        previous = finished;
        return this.runCall(
          session,
          {
            callId: call.callId,
            name: call.name,
            args: call.arguments,
            timeoutMs: request.timeoutMs || call.hints?.defaultTimeoutMs || 0,
            delivery: request.imageDelivery,
            step: request.step,
            hints: call.hints,
          },
          scope,
          budget,
          turn,
        );
      }),
    );
    if (outcomes.every((outcome) => outcome.failure instanceof AdmissionRejectedError)) {
      // Nothing ran: the caller retries the whole step.
      throw outcomes[0]?.failure;
    }
    return responseAfterCalls(parsed, outcomes);
  }

  /**
   * One tool call from start to finish, inside its `toolplane.tool_call` span:
   * the admission wait and the backend calls are the span's children. Never throws.
   */
  private runCall(
    session: TrajectorySession,
    call: CallRequest,
    scope: CallScope,
    budget: RoundBudget,
    turn: RenderTurn | undefined,
  ): Promise<CallOutcome> {
    const attributes = callAttributes({
      tool: call.name,
      trajectoryId: session.id,
      rolloutId: session.rolloutId,
      step: call.step,
    });
    attributes["toolplane.call_id"] = call.callId;
    return withToolCallSpan(
      attributes,
      () => this.performCall(session, call, scope, budget, turn),
      ({ result }) => ({
        status: STATUS_NAMES[result.status] ?? "INFRA_ERROR",
        errorClass: errorClassName(result.error),
        errorMessage: result.error?.message,
      }),
    );
  }

  /**
   * Validation, events, admission, deadline, record/replay, post-processing
   * and the error taxonomy of one call. Never throws.
   */
  private async performCall(
    session: TrajectorySession,
    call: CallRequest,
    scope: CallScope,
    budget: RoundBudget,
    turn: RenderTurn | undefined,
  ): Promise<CallOutcome> {
    const startedAtMs = Date.now();
    const started = performance.now();
    const tool = this.options.tools.get(call.name);
    const timing = { queueMs: 0, executeMs: 0 };
    const event: ToolCallEvent = {
      phase: "started",
      callId: call.callId,
      trajectoryId: session.id,
      rolloutId: session.rolloutId,
      step: call.step,
      tool: call.name,
      // The digest of the canonical arguments once they parse (of the raw text when they do not).
      argumentsDigest: "",
      inputImages: [],
      outputImages: [],
      startedAtMs,
    };
    session.activeCalls += 1;
    let outcome: CallOutcome;
    let announced = false;
    const timeoutMs = call.timeoutMs || tool?.defaultTimeoutMs || 60_000;
    const deadlineMs = Math.min(scope.deadlineMs ?? Number.POSITIVE_INFINITY, startedAtMs + timeoutMs);
    const callSignal = new CallSignal(scope.signal, deadlineMs);
    try {
      if (!tool) throw new InvalidArgumentError(`Invalid tool call name: ${call.name}`);
      const args = this.parseArguments(call.args);
      const canonicalArguments = canonicalJson(args);
      event.argumentsDigest = digest(canonicalArguments);
      const context = this.toolContext(session, scope, deadlineMs, callSignal, timing, call.hints);
      const prepared = tool.prepare(context, args);
      event.inputImages = prepared.inputImages;
      this.emit(event);
      announced = true;
      const key = (): RecordKey => ({
        tool: tool.name,
        // A format's hints change the result (re-indentation, resize, box rules): part of the key.
        canonicalArguments:
          prepared.state || call.hints
            ? canonicalJson({ arguments: args, state: prepared.state, hints: call.hints })
            : canonicalArguments,
        inputImages: prepared.inputImages,
        toolVersion: tool.version,
      });
      if (this.recorder.mode === "replay") {
        outcome = await this.replay(session, call, key(), budget, turn);
      } else {
        const executeStarted = performance.now();
        const output = await prepared.run();
        timing.executeMs = performance.now() - executeStarted - timing.queueMs;
        outcome = await this.inTurn(turn, () => this.render(session, call, tool, output, budget));
        // Recording must not delay the answer; record() reports its own failures.
        if (this.recorder.mode === "record") void this.record(key(), outcome.result);
      }
      prepared.settled?.();
    } catch (error) {
      outcome = this.failedResult(call.callId, call.name, this.explain(error, deadlineMs, scope), tool);
    } finally {
      callSignal.dispose();
      session.activeCalls -= 1;
      // The idle TTL counts from the end of the last call, however long it ran.
      this.options.sessions.touch(session);
      turn?.done();
    }
    const totalMs = performance.now() - started;
    outcome.result.timing = { queueMs: timing.queueMs, executeMs: timing.executeMs, totalMs };
    if (!announced) {
      event.argumentsDigest ||= digest(typeof call.args === "string" ? call.args : canonicalJson(call.args));
      this.emit(event);
    }
    this.emit({
      ...event,
      phase: "finished",
      outputImages: outcome.outputImages,
      status: STATUS_NAMES[outcome.result.status],
      errorClass: errorClassName(outcome.result.error),
      errorCode: outcome.result.error?.code,
      errorMessage: outcome.result.error?.message,
      queueMs: timing.queueMs,
      durationMs: totalMs,
    });
    if (outcome.result.status !== ResultStatus.RESULT_STATUS_OK) {
      this.options.logger.debug(
        { sessionId: session.id, tool: call.name, error: outcome.result.error },
        "tool call failed",
      );
    }
    return outcome;
  }

  /** Names a cancellation after what caused it: the call's deadline or the caller leaving. */
  private explain(error: unknown, deadlineMs: number, scope: CallScope): ToolplaneError {
    const failure = asToolplaneError(error);
    if (failure.code !== status.CANCELLED && failure.code !== status.DEADLINE_EXCEEDED) return failure;
    if (scope.signal.aborted) return new CancelledError("the caller cancelled the call", { cause: error });
    if (Date.now() >= deadlineMs) {
      return new DeadlineExceededError(`the call exceeded its deadline (${failure.message})`, { cause: error });
    }
    return failure;
  }

  private async inTurn<T>(turn: RenderTurn | undefined, render: () => Promise<T>): Promise<T> {
    if (turn) await turn.previous;
    return render();
  }

  private parseArguments(args: string | Record<string, unknown>): Record<string, unknown> {
    if (typeof args !== "string") return assertNestingWithin(args, MAX_ARGUMENT_DEPTH);
    if (args.trim() === "") return {};
    let parsed: unknown;
    try {
      parsed = JSON.parse(args);
    } catch (error) {
      throw new InvalidArgumentError(`call.arguments_json is not valid JSON: ${(error as Error).message}`);
    }
    if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
      throw new InvalidArgumentError("call.arguments_json must be a JSON object");
    }
    return assertNestingWithin(parsed as Record<string, unknown>, MAX_ARGUMENT_DEPTH);
  }

  /**
   * `callSignal` (caller gone or deadline passed) bounds the wait for admission; the
   * backend call itself gets the deadline as its gRPC deadline and the caller's
   * signal for cancellation, so an expiry surfaces as DEADLINE_EXCEEDED.
   */
  private toolContext(
    session: TrajectorySession,
    scope: CallScope,
    deadlineMs: number,
    callSignal: CallSignal,
    timing: { queueMs: number },
    hints: CallHints = {},
  ): ToolContext {
    const { admission, backends, store } = this.options;
    const call = async <T>(
      backend: "image" | "code" | "search",
      request: (options: { deadlineMs: number; signal: AbortSignal }) => Promise<T>,
    ) => {
      const permit = await withStage("queue_wait", { "toolplane.backend": backend }, async (span) => {
        // A free slot needs no signal; only a call that has to wait (or is already over) makes one.
        const granted =
          (callSignal.aborted ? undefined : admission.tryAcquire(backend)) ??
          (await admission.acquire(backend, scope.clientId, callSignal.signal));
        span.setAttribute("toolplane.queue_ms", granted.queuedMs);
        return granted;
      });
      timing.queueMs += permit.queuedMs;
      try {
        return await request({ deadlineMs, signal: scope.signal });
      } finally {
        permit.release();
      }
    };
    const context: ToolContext = {
      session,
      backends,
      deadlineMs,
      hints,
      get signal() {
        return callSignal.signal;
      },
      image: (reference, field) =>
        resolveImageReference(session, reference, field, (sha256, f) => store.require(sha256, f)),
      call,
      codeSession: (language) => {
        if (session.closed) {
          return Promise.reject(new UnavailableError(`session "${session.id}" was closed while the call ran`));
        }
        let created = session.codeSessions.get(language);
        if (!created) {
          created = this.createCodeSession(session, language, call, hints.boundInputImages);
          const pending = created;
          session.codeSessions.set(language, pending);
          pending.catch(() => {
            if (session.codeSessions.get(language) === pending) session.codeSessions.delete(language);
          });
        }
        return created;
      },
      dropCodeSession: (language) => {
        session.codeSessions.delete(language);
      },
    };
    return context;
  }

  private async createCodeSession(
    session: TrajectorySession,
    language: CodeLanguage,
    call: ToolContext["call"],
    boundInputImages = session.inputImages.length,
  ): Promise<CodeSessionHandle> {
    const images = session.inputImages.slice(0, boundInputImages).map((sha256, index) => {
      const image = this.options.store.require(sha256, `image_${index + 1}`);
      return {
        name: `image_${index + 1}`,
        image: { data: image.data, mimeType: image.mimeType, width: image.width, height: image.height },
      };
    });
    const response = await call("code", async (options) => {
      try {
        return await this.options.backends.code.createSession(
          {
            language: CODE_LANGUAGES[language],
            images,
            limits: undefined,
            idleTtlSeconds: Math.ceil(session.idleTtlMs / 1000) + CODE_SESSION_TTL_SLACK_SECONDS,
            label: session.id,
          },
          options,
        );
      } catch (error) {
        // The gateway builds this request from the session, never from the model's
        // text: whatever the code service objects to is not the model's fault.
        const failure = asToolplaneError(error);
        if (failure.errorClass === "MODEL") {
          throw new FailedPreconditionError(`code service refused the session: ${failure.message}`, { cause: error });
        }
        throw failure;
      }
    });
    // A session closed meanwhile still had this creation in its map: release() awaits and closes it.
    return { id: response.sessionId, limits: response.limits };
  }

  /** Post-processes and caps the tool's images, stores them for the session and builds the result. */
  private async render(
    session: TrajectorySession,
    call: CallRequest,
    tool: ToolDefinition,
    output: ToolOutput,
    budget: RoundBudget,
  ): Promise<CallOutcome> {
    const shown = output.images.slice(0, budget.remaining);
    budget.remaining -= shown.length;
    session.imagesShown += shown.length;
    const prepared = await Promise.all(shown.map((image) => prepareForModel(image, call.hints?.imageResize)));
    const stored = prepared.map((image) => {
      const entry = this.options.store.putProbed(image);
      this.hold(session, entry);
      return entry;
    });
    const images = stored.map((entry) => this.describe(entry, call.delivery));
    const failure = output.failure;
    const result: ToolResult = {
      callId: call.callId,
      name: tool.name,
      text: output.render(images.length),
      images,
      error: failure
        ? {
            errorClass: ErrorClass.ERROR_CLASS_MODEL,
            code: failure.code,
            message: failure.message,
            retryable: false,
            retryAfterMs: 0,
          }
        : undefined,
      outputJson: JSON.stringify(output.output) ?? "",
      timing: undefined,
      status: failure ? ResultStatus.RESULT_STATUS_MODEL_ERROR : ResultStatus.RESULT_STATUS_OK,
    };
    return { result, textIsError: false, outputImages: stored.map((entry) => entry.sha256) };
  }

  private failedResult(
    callId: string,
    name: string,
    failure: ToolplaneError,
    tool: ToolDefinition | undefined,
  ): CallOutcome {
    const error: ToolError = toToolError(failure);
    const isModel = failure.errorClass === "MODEL";
    return {
      result: {
        callId,
        name,
        // An infrastructure failure is never shown to the model.
        text: isModel ? (tool?.modelErrorText?.(failure) ?? modelErrorText(failure.message)) : "",
        images: [],
        error,
        outputJson: "",
        timing: undefined,
        status: statusOf(failure),
      },
      failure,
      textIsError: true,
      outputImages: [],
    };
  }

  private async record(key: RecordKey, result: ToolResult): Promise<void> {
    if (result.status === ResultStatus.RESULT_STATUS_INFRA_ERROR) return;
    // Recorded with image bytes so a replay needs nothing but the recording.
    const images = result.images.map((image) => {
      const stored = image.sha256 ? this.options.store.get(image.sha256) : undefined;
      return stored ? { ...image, data: stored.data, sha256: undefined } : image;
    });
    const bytes = ToolResult.encode({ ...result, callId: "", images, timing: undefined }).finish();
    try {
      await this.recorder.record(key, bytes);
    } catch (error) {
      this.options.logger.warn({ tool: key.tool, err: (error as Error).message }, "could not record tool result");
    }
  }

  private async replay(
    session: TrajectorySession,
    call: CallRequest,
    key: RecordKey,
    budget: RoundBudget,
    turn: RenderTurn | undefined,
  ): Promise<CallOutcome> {
    const bytes = await this.recorder.lookup(key);
    if (!bytes) {
      throw new FailedPreconditionError(
        `replay: no recorded result for ${key.tool} with these arguments and images (digest ${digest(key.canonicalArguments).slice(0, 12)})`,
      );
    }
    return this.inTurn(turn, async () => {
      const recorded = ToolResult.decode(bytes);
      budget.remaining = Math.max(0, budget.remaining - recorded.images.length);
      session.imagesShown += recorded.images.length;
      const stored = recorded.images.map((image) => {
        const entry = this.options.store.putProbed({
          data: Buffer.from(image.data ?? new Uint8Array()),
          mimeType: image.mimeType,
          width: image.width,
          height: image.height,
        });
        this.hold(session, entry);
        return entry;
      });
      const images = stored.map((entry) => this.describe(entry, call.delivery));
      const result: ToolResult = { ...recorded, callId: call.callId, images };
      // Thrown failures are recorded without structured output; a failed cell keeps its stdout/stderr.
      const textIsError = result.status === ResultStatus.RESULT_STATUS_MODEL_ERROR && result.outputJson === "";
      return { result, textIsError, outputImages: stored.map((entry) => entry.sha256) };
    });
  }

  private emit(event: ToolCallEvent): void {
    try {
      this.observer.onEvent(event);
    } catch (error) {
      this.options.logger.warn({ err: (error as Error).message }, "tool call observer threw");
    }
  }
}
