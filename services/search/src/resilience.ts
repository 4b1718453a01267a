import { ResourceExhaustedError, stoppedError, UnavailableError, withStage } from "../../runtime/src/index.js";

/** Resolves after ms, or rejects with stoppedError (deadline or caller gone) when the signal aborts first. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(stoppedError(signal, "the call stopped while it waited to retry the provider"));
      return;
    }
    const timer = setTimeout(() => {
      signal.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    function onAbort(): void {
      clearTimeout(timer);
      reject(stoppedError(signal, "the call stopped while it waited to retry the provider"));
    }
    signal.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Token bucket: `ratePerSecond` sustained, `burst` at once. Waiting callers
 * reserve their token up front, so concurrent callers queue in order instead of
 * all waking at the same instant.
 */
export class TokenBucket {
  private tokens: number;
  private updatedMs: number;

  constructor(
    private readonly name: string,
    private readonly ratePerSecond: number,
    private readonly burst: number,
    private readonly now: () => number = Date.now,
  ) {
    this.tokens = burst;
    this.updatedMs = now();
  }

  /** Milliseconds the next caller would wait (0 when a token is free). */
  private reserve(): number {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.updatedMs) / 1000) * this.ratePerSecond);
    this.updatedMs = now;
    this.tokens -= 1;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens / this.ratePerSecond) * 1000);
  }

  /**
   * Takes one token, waiting if needed. Fails fast (RESOURCE_EXHAUSTED, with the
   * wait as retry hint) when the wait would outlast the caller's deadline.
   * Returns the time waited.
   */
  async acquire(signal: AbortSignal, deadlineMs: number | undefined): Promise<number> {
    const waitMs = this.reserve();
    if (waitMs === 0) return 0;
    if (deadlineMs !== undefined && this.now() + waitMs > deadlineMs) {
      this.tokens += 1;
      throw new ResourceExhaustedError(
        `provider ${this.name} is rate limited to ${this.ratePerSecond}/s here and the next slot (in ${waitMs} ms) is after the call's deadline`,
        { retryAfterMs: waitMs },
      );
    }
    try {
      // Only a real wait gets a span: most calls find a token and would add noise.
      await withStage("queue_wait", { "toolplane.queue": `rate_limit_${this.name}`, "toolplane.wait_ms": waitMs }, () =>
        sleep(waitMs, signal),
      );
    } catch (error) {
      this.tokens += 1;
      throw error;
    }
    return waitMs;
  }
}

type BreakerState = "closed" | "open" | "half-open";

/**
 * Stops calling a provider that keeps failing: opens after `threshold`
 * consecutive failures, lets one probe through after `cooldownMs`, and closes
 * again when the probe succeeds.
 */
export class CircuitBreaker {
  private failures = 0;
  private state: BreakerState = "closed";
  private openedAtMs = 0;
  private probeInFlight = false;

  constructor(
    private readonly name: string,
    private readonly threshold: number,
    private readonly cooldownMs: number,
    private readonly now: () => number = Date.now,
  ) {}

  get currentState(): BreakerState {
    return this.state;
  }

  /** Throws UNAVAILABLE while open; in half-open state admits exactly one probe. */
  admit(): void {
    if (this.state === "closed") return;
    const remaining = this.openedAtMs + this.cooldownMs - this.now();
    if (this.state === "open" && remaining <= 0) this.state = "half-open";
    if (this.state === "half-open" && !this.probeInFlight) {
      this.probeInFlight = true;
      return;
    }
    throw new UnavailableError(
      `provider ${this.name} is failing (circuit open after ${this.threshold} consecutive failures); next probe in ${Math.max(0, remaining)} ms`,
      { retryAfterMs: Math.max(1, remaining) },
    );
  }

  onSuccess(): void {
    this.failures = 0;
    this.probeInFlight = false;
    this.state = "closed";
  }

  onFailure(): void {
    this.probeInFlight = false;
    this.failures += 1;
    if (this.state === "half-open" || this.failures >= this.threshold) {
      this.state = "open";
      this.openedAtMs = this.now();
    }
  }

  /** The call ended without telling anything about the provider's health (e.g. the caller gave up). */
  onNeutral(): void {
    this.probeInFlight = false;
  }
}

/**
 * Delay before retry number `attempt` (1-based): full jitter over an exponential
 * ceiling, but never shorter than what the provider asked for in Retry-After.
 */
export function backoffMs(
  attempt: number,
  baseMs: number,
  capMs: number,
  retryAfterMs: number | undefined,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(capMs, baseMs * 2 ** (attempt - 1));
  const jittered = Math.round(random() * ceiling);
  return retryAfterMs === undefined ? jittered : Math.max(retryAfterMs, jittered);
}

/** Retry-After as delta-seconds or an HTTP date, in ms; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | undefined {
  if (value === null || value.trim() === "") return undefined;
  const trimmed = value.trim();
  if (/^\d+(\.\d+)?$/.test(trimmed)) return Math.round(Number(trimmed) * 1000);
  const date = Date.parse(trimmed);
  if (Number.isNaN(date)) return undefined;
  return Math.max(0, date - now);
}
