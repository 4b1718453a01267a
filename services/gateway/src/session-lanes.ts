import {
  CancelledError,
  DeadlineExceededError,
  isDeadlineAbort,
  overLimit,
  ResourceExhaustedError,
  type ToolplaneError,
} from "../../runtime/src/index.js";

/**
 * Time a cell needs left once its turn comes: less, and the code service could
 * only answer that the deadline passed before the cell ran (the
 * infrastructure's error), although the model's own earlier cells used the time.
 * It covers the gateway's reply reserve (up to 500 ms, tools/code.ts), the code
 * service's margin before the deadline (250 ms, code sessions.ts) and a short cell.
 */
export const MIN_TURN_REMAINING_MS = 1000;

/** The waiting call: its deadline, and its signal made on demand (only a call that has to wait needs one). */
export interface LaneCall {
  deadlineMs: number;
  signal(): AbortSignal;
}

interface Lane {
  /** Calls waiting for the running one, oldest first. */
  waiting: Array<() => void>;
}

/**
 * Runs the calls of one code session one after the other, in the order they
 * came. A code session (one kernel) runs one cell at a time anyway; waiting
 * here, before admission, means a call queued behind its own session holds no
 * shared admission slot, so a trajectory that sends 70 cells at once occupies
 * one slot, not 64. The waits are the model's doing (it sent the cells
 * together): a full lane, or a deadline that passes while waiting, is a MODEL
 * error it is shown.
 */
export class SessionLanes {
  private readonly lanes = new Map<string, Lane>();

  constructor(
    /** Calls one lane may hold waiting behind the running one. */
    private readonly maxQueued: number,
  ) {}

  /** Calls waiting across every lane (for tests and gauges). */
  get queued(): number {
    let total = 0;
    for (const lane of this.lanes.values()) total += lane.waiting.length;
    return total;
  }

  /**
   * Runs `work` once every earlier call of lane `key` has finished; `what` names
   * the lane in errors ("the trajectory's python session"). A call whose turn
   * comes with less than MIN_TURN_REMAINING_MS left is the model's
   * DEADLINE_EXCEEDED, without running.
   */
  async run<T>(key: string, what: string, call: LaneCall, work: () => Promise<T>): Promise<T> {
    const lane = this.lanes.get(key);
    if (lane === undefined) this.lanes.set(key, { waiting: [] });
    else await this.wait(lane, what, call.signal());
    try {
      const waited = lane !== undefined;
      const left = call.deadlineMs - Date.now();
      if (waited && left < MIN_TURN_REMAINING_MS) {
        throw new DeadlineExceededError(
          `the call's deadline left ${Math.max(0, left)} ms once the earlier calls of ${what} had run, too little to start a cell (${MIN_TURN_REMAINING_MS} ms)`,
          { errorClass: "MODEL" },
        );
      }
      return await work();
    } finally {
      this.next(key);
    }
  }

  private wait(lane: Lane, what: string, signal: AbortSignal): Promise<void> {
    const ahead = lane.waiting.length + 1;
    if (lane.waiting.length >= this.maxQueued) {
      return Promise.reject(
        new ResourceExhaustedError(
          overLimit(
            `${what} already has a cell running and ${lane.waiting.length} waiting`,
            `${this.maxQueued} waiting`,
            "TOOLPLANE_GATEWAY_MAX_QUEUED_PER_CODE_SESSION",
          ),
          { errorClass: "MODEL" },
        ),
      );
    }
    if (signal.aborted) return Promise.reject(stopped(signal, what, ahead, 0));
    const since = performance.now();
    return new Promise<void>((resolve, reject) => {
      const start = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        const index = lane.waiting.indexOf(start);
        if (index >= 0) lane.waiting.splice(index, 1);
        reject(stopped(signal, what, ahead, performance.now() - since));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      lane.waiting.push(start);
    });
  }

  /** Hands the lane to its next waiting call, or closes it. */
  private next(key: string): void {
    const lane = this.lanes.get(key);
    const start = lane?.waiting.shift();
    if (start) start();
    else this.lanes.delete(key);
  }
}

/** A deadline passed while waiting behind the model's own cells: the model's timeout. The caller leaving is not. */
function stopped(signal: AbortSignal, what: string, ahead: number, waitedMs: number): ToolplaneError {
  const waited = `after waiting ${Math.round(waitedMs)} ms behind ${ahead} earlier call(s) of ${what}, which runs one cell at a time`;
  if (isDeadlineAbort(signal)) {
    return new DeadlineExceededError(`the call's deadline passed ${waited}`, { errorClass: "MODEL" });
  }
  return new CancelledError(`the caller cancelled the call ${waited}`);
}
