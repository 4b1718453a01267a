import type { Image } from "../../../generated/toolplane/common/v1/common.js";
import {
  type CreateSessionRequest,
  type CreateSessionResponse,
  type ExecuteRequest,
  ImageDelivery,
  ResultStatus,
  type StepRequest,
  type StepResponse,
  type ToolResult,
  type ToolSchema,
} from "../../../generated/toolplane/gateway/v1/gateway.js";
import {
  asToolplaneError,
  callAttributes,
  canonicalJson,
  errorClassOf,
  errorMessage,
  InvalidArgumentError,
  type Logger,
  limitError,
  NotFoundError,
  overLimit,
  ResourceExhaustedError,
  type ResultRecorder,
  requireSafeArguments,
  sha256Hex,
  type ToolCallObserver,
  verifyImage,
  withStage,
  withToolCallSpan,
} from "../../runtime/src/index.js";
import { type AdmissionController, AdmissionRejectedError } from "./admission.js";
import type { Backends } from "./backends.js";
import { Call, type Caller, type CallOutcome, type CallRequest, type RenderTurn } from "./call.js";
import { CodeSessions } from "./code-sessions.js";
import { CallEvents, callStatusName, loggingObserver } from "./events.js";
import { parseStep, responseAfterCalls, responseWithoutCalls } from "./format-step.js";
import type { ParsedCall } from "./formats/index.js";
import { RecordReplay, recorderOff, recordKey } from "./record-replay.js";
import { describeImage, failedOutcome, ResultRenderer, roundBudget } from "./rendering.js";
import { SessionLanes } from "./session-lanes.js";
import type { TrajectorySession } from "./sessions.js";
import type { ImageStore, SessionStore, StoredImage } from "./stores.js";
import {
  openAiSchema,
  type PreparedCall,
  resolveImageReference,
  type ToolContext,
  type ToolDefinition,
  type ToolRegistry,
} from "./tools.js";

export type { Caller } from "./call.js";
export { loggingObserver } from "./events.js";
export { recorderOff } from "./record-replay.js";

export interface GatewayOptions {
  backends: Backends;
  store: ImageStore;
  sessions: SessionStore;
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
  /** Tool calls one Step runs; the rest of the turn's calls get one MODEL error. Default in GATEWAY_DEFAULTS. */
  maxCallsPerTurn?: number;
  /** Largest input image (width x height) CreateSession and PutImage accept. Default in GATEWAY_DEFAULTS. */
  maxInputPixels?: number;
  /** Code calls of one code session waiting for the one before them; more are refused (MODEL). */
  maxQueuedPerCodeSession?: number;
}

/** The gateway's limits when the options leave them out; main.ts's environment defaults read these too. */
export const GATEWAY_DEFAULTS = {
  /**
   * verl's agent loop keeps `tool_calls[:max_parallel_calls]` of a turn and drops the rest unseen; a
   * turn of more calls than this is a degenerate one, and the model is told its excess did not run.
   */
  maxCallsPerTurn: 16,
  /** The image service's own default input limit: an input it would refuse is refused at the door. */
  maxInputPixels: 40_000_000,
  /** A Step's worth of cells, twice. */
  maxQueuedPerCodeSession: 32,
} as const;

/** No tool takes arguments nested this deep; deeper input is hostile and would overflow recursive walks. */
const MAX_ARGUMENT_DEPTH = 32;
/** Calls of one ExecuteBatch. */
const MAX_BATCH_CALLS = 1024;
/** Input images of one session (the code service binds at most 50 by default). */
const MAX_SESSION_IMAGES = 50;

/** A call's arguments as an object: the raw JSON of Execute, or what Step parsed from the model's text. */
function parseArguments(args: string | Record<string, unknown>): Record<string, unknown> {
  if (typeof args !== "string") return requireSafeArguments(args, "arguments", MAX_ARGUMENT_DEPTH);
  if (args.trim() === "") return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(args);
  } catch (error) {
    throw new InvalidArgumentError(`call.arguments_json is not valid JSON: ${errorMessage(error)}`);
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw new InvalidArgumentError("call.arguments_json must be a JSON object");
  }
  return requireSafeArguments(parsed as Record<string, unknown>, "call.arguments_json", MAX_ARGUMENT_DEPTH);
}

/**
 * The one result standing for the calls of a turn past the per-turn cap: the
 * model's error (it wrote them), shown to it, naming the limit; none of them ran.
 */
function tooManyCalls(calls: ParsedCall[], cap: number): CallOutcome {
  const first = calls[cap] as ParsedCall;
  const failure = new ResourceExhaustedError(
    `${overLimit(`the turn has ${calls.length} tool calls`, `${cap} per turn`, "TOOLPLANE_GATEWAY_MAX_CALLS_PER_TURN")}: the first ${cap} ran, the other ${calls.length - cap} (from call ${first.callId}) did not`,
    { errorClass: "MODEL" },
  );
  return failedOutcome(first.callId, first.name, failure, undefined);
}

function callRequest(request: ExecuteRequest): CallRequest {
  return {
    callId: request.call?.callId ?? "",
    name: request.call?.name ?? "",
    args: request.call?.argumentsJson ?? "",
    timeoutMs: request.timeoutMs,
    delivery: request.imageDelivery,
    step: request.step,
  };
}

/** The arguments of a call, parsed and validated by its tool, and what names it in events and recordings. */
interface ValidatedCall {
  tool: ToolDefinition;
  args: Record<string, unknown>;
  canonicalArguments: string;
  prepared: PreparedCall;
}

/**
 * The gateway's domain: trajectory sessions, the image store, tool calls with
 * admission control, deadlines and the error taxonomy, and the model-format
 * Step. Knows nothing of gRPC: the server maps RPCs onto these methods.
 * Rendering, record/replay, events and code sessions live in their own modules.
 */
export class ToolGateway {
  private readonly observer: ToolCallObserver;
  private readonly recordReplay: RecordReplay;
  private readonly renderer: ResultRenderer;
  private readonly codeSessions: CodeSessions;
  private readonly codeLanes: SessionLanes;
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly options: GatewayOptions) {
    this.observer = options.observer ?? loggingObserver(options.logger);
    this.recordReplay = new RecordReplay(options.recorder ?? recorderOff, options.store, options.logger);
    this.renderer = new ResultRenderer(options.store);
    this.codeSessions = new CodeSessions(options.backends, options.store, options.logger);
    this.codeLanes = new SessionLanes(options.maxQueuedPerCodeSession ?? GATEWAY_DEFAULTS.maxQueuedPerCodeSession);
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
    const sessions = await this.options.sessions.removeAll();
    await Promise.all(sessions.map((session) => this.release(session)));
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
    return describeImage(await this.putVerified(data, "data", false), ImageDelivery.IMAGE_DELIVERY_REFERENCE);
  }

  /**
   * Stores a caller's image once it decodes completely (verifyImage): what the
   * caller hands over is checked at the door, so no tool can fail on it later.
   * An image the store already has was checked when it came in.
   */
  private async putVerified(data: Buffer, field: string, hold: boolean): Promise<StoredImage> {
    const store = this.options.store;
    if (await store.get(sha256Hex(data))) return store.put(data, { hold, field });
    const maxPixels = this.options.maxInputPixels ?? GATEWAY_DEFAULTS.maxInputPixels;
    const { mimeType, width, height } = await verifyImage(data, field, maxPixels);
    return store.putProbed({ data, mimeType, width, height }, { hold });
  }

  async getImage(sha256: string): Promise<Image> {
    return describeImage(await this.options.store.require(sha256, "sha256"), ImageDelivery.IMAGE_DELIVERY_BYTES);
  }

  // ---- sessions ----

  async createSession(request: CreateSessionRequest): Promise<CreateSessionResponse> {
    const idleTtlMs = this.idleTtlMs(request.idleTtlSeconds);
    if (request.images.length > MAX_SESSION_IMAGES) {
      throw limitError("images", request.images.length, MAX_SESSION_IMAGES, "items");
    }
    const store = this.options.store;
    // Hold each image while the session is built, so a concurrent upload cannot evict it.
    const held: StoredImage[] = [];
    try {
      for (const [index, image] of request.images.entries()) held.push(await this.holdInput(image, index));
      const session = await this.options.sessions.create({
        rolloutId: request.rolloutId,
        trajectoryId: request.trajectoryId,
        inputImages: held.map((image) => image.sha256),
        idleTtlMs,
        ...(request.seed === undefined ? {} : { seed: request.seed }),
      });
      // The session keeps one reference per distinct image; drop the build-time extras.
      const kept = new Set<string>();
      for (const image of held) {
        if (kept.has(image.sha256)) await store.release(image.sha256);
        else kept.add(image.sha256);
      }
      held.length = 0;
      return { sessionId: session.id, imageSha256: session.inputImages.slice() };
    } finally {
      for (const image of held) await store.release(image.sha256);
    }
  }

  private idleTtlMs(ttlSeconds: number): number {
    const idleTtlMs = ttlSeconds === 0 ? this.options.defaultIdleTtlMs : ttlSeconds * 1000;
    if (idleTtlMs > this.options.maxIdleTtlMs) {
      throw new InvalidArgumentError(
        overLimit(
          `idle_ttl_seconds is ${ttlSeconds} s`,
          `${this.options.maxIdleTtlMs / 1000} s`,
          "TOOLPLANE_GATEWAY_MAX_SESSION_TTL_SECONDS",
        ),
      );
    }
    return idleTtlMs;
  }

  /** Stores (or finds) one input image and takes a reference to it. */
  private async holdInput(image: Image, index: number): Promise<StoredImage> {
    const field = `images[${index}]`;
    const store = this.options.store;
    if (image.data && image.data.length > 0) return this.putVerified(Buffer.from(image.data), `${field}.data`, true);
    if (image.sha256) {
      const stored = await store.require(image.sha256, `${field}.sha256`);
      await store.retain(stored.sha256);
      return stored;
    }
    throw new InvalidArgumentError(`${field} carries neither data nor sha256`);
  }

  async closeSession(sessionId: string): Promise<void> {
    if (!sessionId) throw new InvalidArgumentError("session_id is required");
    const session = await this.options.sessions.remove(sessionId);
    if (!session)
      throw new NotFoundError(`session_id: no open session "${sessionId}"`, { errorClass: "INFRASTRUCTURE" });
    await this.release(session);
  }

  async closeRollout(rolloutId: string): Promise<number> {
    if (!rolloutId) throw new InvalidArgumentError("rollout_id is required");
    const sessions = await this.options.sessions.removeRollout(rolloutId);
    await Promise.all(sessions.map((session) => this.release(session)));
    return sessions.length;
  }

  /** Closes sessions idle past their TTL; returns how many. */
  async closeExpired(): Promise<number> {
    const expired = await this.options.sessions.removeExpired();
    for (const session of expired)
      this.options.logger.info({ sessionId: session.id }, "session idle past its TTL, closed");
    await Promise.all(expired.map((session) => this.release(session)));
    return expired.length;
  }

  /** Frees what a removed session holds: images and code sessions. Never throws. */
  private async release(session: TrajectorySession): Promise<void> {
    for (const sha256 of session.heldImages) await this.options.store.release(sha256);
    session.heldImages.clear();
    await this.codeSessions.release(session);
  }

  // ---- tool calls ----

  /**
   * One call. A call the gateway's admission control refused for overload fails as a whole
   * (RESOURCE_EXHAUSTED, INFRASTRUCTURE); one refused for its trajectory's flooding is the model's result.
   */
  async execute(request: ExecuteRequest, caller: Caller): Promise<ToolResult> {
    const session = await this.options.sessions.get(request.sessionId);
    if (!request.call) throw new InvalidArgumentError("call is required", { errorClass: "INFRASTRUCTURE" });
    const outcome = await this.runCall(session, callRequest(request), caller, undefined);
    if (outcome.failure instanceof AdmissionRejectedError) throw outcome.failure;
    return outcome.result;
  }

  /** Calls run concurrently; each has its own session, deadline and result (partial success). */
  async executeBatch(requests: ExecuteRequest[], caller: Caller): Promise<ToolResult[]> {
    if (requests.length > MAX_BATCH_CALLS) {
      throw limitError("calls", requests.length, MAX_BATCH_CALLS, "items", undefined, { errorClass: "INFRASTRUCTURE" });
    }
    return Promise.all(
      requests.map(async (request, index) => {
        try {
          const session = await this.options.sessions.get(request.sessionId, `calls[${index}].session_id`);
          if (!request.call) {
            throw new InvalidArgumentError(`calls[${index}].call is required`, { errorClass: "INFRASTRUCTURE" });
          }
          return (await this.runCall(session, callRequest(request), caller, undefined)).result;
        } catch (error) {
          const { call } = request;
          return failedOutcome(call?.callId ?? "", call?.name ?? "", asToolplaneError(error), undefined).result;
        }
      }),
    );
  }

  /**
   * Parses the model's text in its format, runs the calls and renders the
   * observation: parse in the request's format, run the calls in order, observe.
   */
  async step(request: StepRequest, caller: Caller): Promise<StepResponse> {
    const session = await this.options.sessions.get(request.sessionId);
    const parsed = parseStep(request);
    if (parsed.turn.kind !== "calls") return responseWithoutCalls(parsed.turn);
    const cap = this.options.maxCallsPerTurn ?? GATEWAY_DEFAULTS.maxCallsPerTurn;
    const calls = parsed.turn.calls;
    const outcomes = await this.runInTurns(
      session,
      calls.slice(0, cap).map((call) => ({
        callId: call.callId,
        name: call.name,
        args: call.arguments,
        timeoutMs: request.timeoutMs || call.hints?.defaultTimeoutMs || 0,
        delivery: request.imageDelivery,
        step: request.step,
        hints: call.hints,
      })),
      caller,
    );
    if (calls.length > cap) outcomes.push(tooManyCalls(calls, cap));
    if (outcomes.every((outcome) => outcome.failure instanceof AdmissionRejectedError)) {
      // Nothing ran: the caller retries the whole step.
      throw outcomes[0]?.failure;
    }
    return responseAfterCalls(parsed, outcomes);
  }

  /** Runs a Step's calls concurrently; each renders after the one before it, so images keep their order. */
  private runInTurns(session: TrajectorySession, requests: CallRequest[], caller: Caller): Promise<CallOutcome[]> {
    const budget = roundBudget(session);
    let previous: Promise<void> = Promise.resolve();
    return Promise.all(
      requests.map((request) => {
        let done!: () => void;
        const finished = new Promise<void>((resolve) => {
          done = resolve;
        });
        const turn: RenderTurn = { previous, done };
        previous = finished;
        return this.runCall(session, request, caller, turn, budget);
      }),
    );
  }

  /**
   * One tool call from start to finish, inside its `toolplane.tool_call` span:
   * the admission wait and the backend calls are the span's children. Never throws.
   */
  private runCall(
    session: TrajectorySession,
    request: CallRequest,
    caller: Caller,
    turn: RenderTurn | undefined,
    budget = roundBudget(session),
  ): Promise<CallOutcome> {
    const call = new Call(session, request, caller, budget, turn, this.options.tools.get(request.name));
    const attributes = callAttributes({
      tool: request.name,
      trajectoryId: session.id,
      rolloutId: session.rolloutId,
      step: request.step,
    });
    attributes["toolplane.call_id"] = request.callId;
    return withToolCallSpan(
      attributes,
      () => this.performCall(call),
      ({ result }) => ({
        status: callStatusName(result.status) ?? "INFRA_ERROR",
        errorClass: errorClassOf(result.error),
        errorMessage: result.error?.message,
      }),
    );
  }

  /**
   * The steps of one call: validate, announce, run (or replay), render, and
   * report; any failure becomes the call's result in the error taxonomy. Never throws.
   */
  private async performCall(call: Call): Promise<CallOutcome> {
    const events = new CallEvents(this.observer, this.options.logger, call);
    call.session.activeCalls += 1;
    let outcome: CallOutcome;
    try {
      const validated = await this.validate(call, events);
      events.started(validated.prepared.inputImages);
      outcome = await this.produce(call, validated);
      validated.prepared.settled?.();
    } catch (error) {
      outcome = failedOutcome(call.request.callId, call.request.name, asToolplaneError(error), call.tool);
    } finally {
      await this.finish(call);
    }
    this.report(call, events, outcome);
    return outcome;
  }

  /** Finds the tool, parses the arguments and lets the tool validate and bind them. */
  private async validate(call: Call, events: CallEvents): Promise<ValidatedCall> {
    const tool = call.tool;
    if (!tool) throw new InvalidArgumentError(`Invalid tool call name: ${call.request.name}`);
    const args = parseArguments(call.request.args);
    const canonicalArguments = canonicalJson(args);
    events.argumentsDigest = sha256Hex(canonicalArguments);
    const prepared = await tool.prepare(this.toolContext(call), args);
    return { tool, args, canonicalArguments, prepared };
  }

  /** The result: from the recording when replaying, else from the tool (recorded when recording). */
  private async produce(call: Call, { tool, args, canonicalArguments, prepared }: ValidatedCall): Promise<CallOutcome> {
    const key = () => recordKey(tool, args, canonicalArguments, prepared, call.request.hints);
    if (this.recordReplay.mode === "replay") {
      const recorded = await this.recordReplay.lookup(key());
      return call.inTurn(() => this.renderer.recorded(call, recorded));
    }
    const executeStarted = performance.now();
    const output = await prepared.run();
    call.timing.executeMs = performance.now() - executeStarted - call.timing.queueMs;
    const outcome = await call.inTurn(() => this.renderer.output(call, tool, output));
    // Recording must not delay the answer; record() reports its own failures.
    if (this.recordReplay.mode === "record") void this.recordReplay.record(key(), outcome.result);
    return outcome;
  }

  /** Releases what the call held and lets the next call of its Step render. */
  private async finish(call: Call): Promise<void> {
    call.signal.dispose();
    call.session.activeCalls -= 1;
    call.turn?.done();
    // The idle TTL counts from the end of the last call, however long it ran.
    await this.options.sessions.touch(call.session);
  }

  /** Timing on the result, the finished event, and a debug line for a failure. */
  private report(call: Call, events: CallEvents, outcome: CallOutcome): void {
    const totalMs = call.elapsedMs();
    outcome.result.timing = { queueMs: call.timing.queueMs, executeMs: call.timing.executeMs, totalMs };
    const raw = call.request.args;
    events.finished(call, outcome, totalMs, () => sha256Hex(typeof raw === "string" ? raw : canonicalJson(raw)));
    if (outcome.result.status !== ResultStatus.RESULT_STATUS_OK) {
      this.options.logger.debug(
        { sessionId: call.session.id, tool: call.request.name, error: outcome.result.error },
        "tool call failed",
      );
    }
  }

  /**
   * The call's signal (caller gone or deadline passed) bounds the wait for admission;
   * the backend call itself gets the deadline as its gRPC deadline and the caller's
   * signal for cancellation, so an expiry surfaces as DEADLINE_EXCEEDED.
   */
  private toolContext(call: Call): ToolContext {
    const { admission, backends, store } = this.options;
    const { session, caller, deadlineMs } = call;
    const callSignal = call.signal;
    const share = { clientId: caller.clientId, rolloutId: session.rolloutId, trajectoryId: session.id };
    const admitted = async <T>(
      backend: "image" | "code" | "search",
      request: (options: { deadlineMs: number; signal: AbortSignal }) => Promise<T>,
    ) => {
      const permit = await withStage("queue_wait", { "toolplane.backend": backend }, async (span) => {
        // A free slot needs no signal; only a call that has to wait (or is already over) makes one.
        const granted =
          (callSignal.aborted ? undefined : admission.tryAcquire(backend, share)) ??
          (await admission.acquire(backend, share, callSignal.signal));
        span.setAttribute("toolplane.queue_ms", granted.queuedMs);
        return granted;
      });
      call.timing.queueMs += permit.queuedMs;
      try {
        return await request({ deadlineMs, signal: caller.scope.signal });
      } finally {
        permit.release();
      }
    };
    const { codeSessions, codeLanes } = this;
    return {
      session,
      backends,
      scope: {
        deadlineMs,
        // Made only when read: a call that never waits needs no signal.
        get signal() {
          return callSignal.signal;
        },
      },
      hints: call.request.hints ?? {},
      image: (reference, field) =>
        resolveImageReference(session, reference, field, (sha256, f) => store.require(sha256, f)),
      call: admitted,
      codeSession: (language) => codeSessions.get(session, language, admitted, call.request.hints?.boundInputImages),
      dropCodeSession: (language) => codeSessions.drop(session, language),
      inCodeSessionOrder: async (language, work) => {
        const queued = performance.now();
        return codeLanes.run(
          `${session.id}/${language}`,
          `the trajectory's ${language} session`,
          { deadlineMs, signal: () => callSignal.signal },
          () => {
            call.timing.queueMs += performance.now() - queued;
            return work();
          },
        );
      },
    };
  }
}
