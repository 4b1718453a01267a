import { ResourceExhaustedError, stoppedError, type ToolplaneError } from "../../runtime/src/index.js";

/** What one request may cost. Each limit names the environment variable that sets it, for error messages. */
export interface ImageLimits {
  /** Largest decoded input (width x height of the first frame). */
  maxInputPixels: number;
  /** Largest encoded input. */
  maxInputBytes: number;
  /** Largest image any step of a pipeline may produce (zoom, resize, rotate, upscaling). */
  maxOutputPixels: number;
  /** Longest pipeline. */
  maxOperations: number;
  /** Most annotations in one annotate operation. */
  maxAnnotations: number;
}

export const LIMIT_VARIABLES: Record<keyof ImageLimits, string> = {
  maxInputPixels: "TOOLPLANE_IMAGE_MAX_INPUT_PIXELS",
  maxInputBytes: "TOOLPLANE_IMAGE_MAX_INPUT_BYTES",
  maxOutputPixels: "TOOLPLANE_IMAGE_MAX_OUTPUT_PIXELS",
  maxOperations: "TOOLPLANE_IMAGE_MAX_OPERATIONS",
  maxAnnotations: "TOOLPLANE_IMAGE_MAX_ANNOTATIONS",
};

export const DEFAULT_LIMITS: ImageLimits = {
  maxInputPixels: 40_000_000,
  maxInputBytes: 32 * 1024 * 1024,
  maxOutputPixels: 40_000_000,
  maxOperations: 32,
  maxAnnotations: 256,
};

/** "over the limit of N (VARIABLE)": the tail every limit error ends with. */
export function limitText(limits: ImageLimits, name: keyof ImageLimits): string {
  return `the limit of ${limits[name]} (${LIMIT_VARIABLES[name]})`;
}

/** Largest side any encoder we offer accepts (WebP's 16383). */
export const MAX_SIDE = 16383;

/**
 * Bounds how many pipelines run at once and how many wait. Each running
 * pipeline keeps one libuv thread busy, so running more than there are cores
 * only adds latency; waiting callers are told to come back (RESOURCE_EXHAUSTED,
 * INFRASTRUCTURE, with a retry hint) rather than queue without bound.
 */
export class WorkQueue {
  private running = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(
    readonly maxRunning: number,
    readonly maxWaiting: number,
    private readonly retryAfterMs: number,
  ) {}

  get stats(): { running: number; waiting: number } {
    return { running: this.running, waiting: this.waiting.length };
  }

  /** Runs `work` when a slot is free; rejects at once when the queue is full, or when `signal` aborts while waiting. */
  async run<T>(work: () => Promise<T>, signal: AbortSignal): Promise<T> {
    await this.acquire(signal);
    try {
      return await work();
    } finally {
      this.release();
    }
  }

  private acquire(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(abortedWhileWaiting(signal));
    if (this.running < this.maxRunning) {
      this.running += 1;
      return Promise.resolve();
    }
    if (this.waiting.length >= this.maxWaiting) {
      return Promise.reject(
        new ResourceExhaustedError(
          `image service overloaded: ${this.running} pipelines running and ${this.waiting.length} waiting (TOOLPLANE_IMAGE_MAX_QUEUE=${this.maxWaiting})`,
          { retryAfterMs: this.retryAfterMs },
        ),
      );
    }
    return new Promise<void>((resolve, reject) => {
      const start = () => {
        signal.removeEventListener("abort", onAbort);
        resolve();
      };
      const onAbort = () => {
        const index = this.waiting.indexOf(start);
        if (index >= 0) this.waiting.splice(index, 1);
        reject(abortedWhileWaiting(signal));
      };
      signal.addEventListener("abort", onAbort, { once: true });
      this.waiting.push(start);
    });
  }

  /** Hands the slot straight to the next waiter, so a newcomer can never overtake the queue. */
  private release(): void {
    const next = this.waiting.shift();
    if (next) next();
    else this.running -= 1;
  }
}

/** DEADLINE_EXCEEDED when the signal's reason is the deadline, CANCELLED when the caller left. */
function abortedWhileWaiting(signal: AbortSignal): ToolplaneError {
  return stoppedError(signal, "stopped while waiting for a free image worker");
}
