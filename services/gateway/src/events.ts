import type { ResultStatus } from "../../../generated/toolplane/gateway/v1/gateway.js";
import { ResultStatus as Status } from "../../../generated/toolplane/gateway/v1/gateway.js";
import {
  type CallStatus,
  errorClassOf,
  errorMessage,
  type Logger,
  type ToolCallEvent,
  type ToolCallObserver,
} from "../../runtime/src/index.js";
import type { Call, CallOutcome } from "./call.js";

/** Default hook: events only in the debug log. */
export function loggingObserver(logger: Logger): ToolCallObserver {
  return { onEvent: (event) => logger.debug({ event }, "tool call event") };
}

const STATUS_NAMES: Record<ResultStatus, CallStatus | undefined> = {
  [Status.RESULT_STATUS_OK]: "OK",
  [Status.RESULT_STATUS_MODEL_ERROR]: "MODEL_ERROR",
  [Status.RESULT_STATUS_INFRA_ERROR]: "INFRA_ERROR",
  [Status.RESULT_STATUS_UNSPECIFIED]: undefined,
  [Status.UNRECOGNIZED]: undefined,
};

/** The event stream's name of a result status. */
export function callStatusName(status: ResultStatus): CallStatus | undefined {
  return STATUS_NAMES[status];
}

/**
 * The started/finished events of one call. "started" goes out once the call's
 * arguments and input images are known, or with the finish when they never
 * were (a call that failed validation still has both events).
 */
export class CallEvents {
  private readonly event: ToolCallEvent;
  private announced = false;

  constructor(
    private readonly observer: ToolCallObserver,
    private readonly logger: Logger,
    call: Call,
  ) {
    this.event = {
      phase: "started",
      callId: call.request.callId,
      trajectoryId: call.session.id,
      rolloutId: call.session.rolloutId,
      step: call.request.step,
      tool: call.request.name,
      // The digest of the canonical arguments once they parse (of the raw text when they do not).
      argumentsDigest: "",
      inputImages: [],
      outputImages: [],
      startedAtMs: call.startedAtMs,
    };
  }

  /** The arguments parsed: their digest names the call from here on. */
  set argumentsDigest(digest: string) {
    this.event.argumentsDigest = digest;
  }

  started(inputImages: string[]): void {
    this.event.inputImages = inputImages;
    this.emit(this.event);
    this.announced = true;
  }

  /** `rawDigest` is used when the arguments never parsed. */
  finished(call: Call, outcome: CallOutcome, totalMs: number, rawDigest: () => string): void {
    if (!this.announced) {
      this.event.argumentsDigest ||= rawDigest();
      this.emit(this.event);
    }
    const { result } = outcome;
    this.emit({
      ...this.event,
      phase: "finished",
      outputImages: outcome.outputImages,
      status: callStatusName(result.status),
      errorClass: errorClassOf(result.error),
      errorCode: result.error?.code,
      errorMessage: result.error?.message,
      queueMs: call.timing.queueMs,
      durationMs: totalMs,
    });
  }

  private emit(event: ToolCallEvent): void {
    try {
      this.observer.onEvent(event);
    } catch (error) {
      this.logger.warn({ err: errorMessage(error) }, "tool call observer threw");
    }
  }
}
