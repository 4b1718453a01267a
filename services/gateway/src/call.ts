import type { ImageDelivery, ToolResult } from "../../../generated/toolplane/gateway/v1/gateway.js";
import {
  type CallScope,
  DeadlineExceededError,
  type DeadlineTimer,
  minDeadline,
  setDeadlineTimer,
  type ToolplaneError,
} from "../../runtime/src/index.js";
import type { CallHints } from "./formats/index.js";
import type { TrajectorySession } from "./sessions.js";
import type { ToolDefinition } from "./tools.js";

/** Who is calling and within which scope (the RPC's deadline and cancellation): derived by the server layer. */
export interface Caller {
  /** Fair-share key: metadata toolplane-client-id, else the peer address. */
  clientId: string;
  scope: CallScope;
}

/** One call as the caller or the model's text asked for it. */
export interface CallRequest {
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

export interface CallOutcome {
  result: ToolResult;
  /** The failure behind a non-OK result. */
  failure?: ToolplaneError;
  /** The text is an error message, not the tool's output. */
  textIsError: boolean;
  /** sha256 of the images returned (the result may carry bytes only). */
  outputImages: string[];
}

/** Images one round may still show: per round and what is left of the trajectory's cap. */
export interface RoundBudget {
  remaining: number;
}

/** Runs the render phase of concurrent calls in call order, so images keep their placeholder order. */
export interface RenderTurn {
  previous: Promise<void>;
  done(): void;
}

/** Deadline of a call that neither the request, the tool nor the RPC bounds. */
const FALLBACK_TIMEOUT_MS = 60_000;

/**
 * Aborted when the caller goes away or the call's deadline passes: what admission
 * waits honour. The AbortSignal, with its listener on the caller's signal and its
 * timer, is made on first use only: most calls get their admission slot at once
 * and never wait on it (the three cost ~3.5 µs of CPU per call).
 */
export class CallSignal {
  private controller: AbortController | undefined;
  private timer: DeadlineTimer | undefined;
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
        this.timer = setDeadlineTimer(this.deadlineMs, () =>
          controller.abort(new DeadlineExceededError("deadline exceeded")),
        );
      }
    }
    return this.controller.signal;
  }

  /** Drops the listener and the timer, when the signal was made. */
  dispose(): void {
    this.timer?.clear();
    if (this.onCallerGone) this.caller.removeEventListener("abort", this.onCallerGone);
  }
}

/**
 * One tool call while it runs: what was asked, by whom, within which round,
 * until when, and what it has cost so far. Passed whole to every step of the
 * call instead of its parts.
 */
export class Call {
  readonly startedAtMs = Date.now();
  private readonly started = performance.now();
  /** Time spent waiting for admission, and running (without the waits). */
  readonly timing = { queueMs: 0, executeMs: 0 };
  /** Absolute deadline: the request's (or the tool's) timeout within the RPC's deadline. */
  readonly deadlineMs: number;
  readonly signal: CallSignal;

  constructor(
    readonly session: TrajectorySession,
    readonly request: CallRequest,
    readonly caller: Caller,
    readonly budget: RoundBudget,
    readonly turn: RenderTurn | undefined,
    readonly tool: ToolDefinition | undefined,
  ) {
    const timeoutMs = request.timeoutMs || tool?.defaultTimeoutMs || FALLBACK_TIMEOUT_MS;
    this.deadlineMs = minDeadline(caller.scope.deadlineMs, this.startedAtMs + timeoutMs);
    this.signal = new CallSignal(caller.scope.signal, this.deadlineMs);
  }

  /** Milliseconds since the call started. */
  elapsedMs(): number {
    return performance.now() - this.started;
  }

  /** Waits for the calls before this one in its Step to render, then renders. */
  async inTurn<T>(render: () => Promise<T>): Promise<T> {
    if (this.turn) await this.turn.previous;
    return render();
  }
}
