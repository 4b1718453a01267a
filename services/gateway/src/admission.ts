import {
  DeadlineExceededError,
  onScrape,
  poolSize,
  queueDepth,
  ResourceExhaustedError,
} from "../../runtime/src/index.js";

export type BackendName = "image" | "code" | "search";

export interface AdmissionLimits {
  /** Calls running against the backend at once. */
  maxConcurrent: number;
  /** Calls waiting for a slot; beyond it new calls are refused with RESOURCE_EXHAUSTED. */
  maxQueue: number;
}

/** Refused by the gateway's own admission control: nothing ran, retrying the same call is safe. */
export class AdmissionRejectedError extends ResourceExhaustedError {}

export interface Permit {
  /** Time spent waiting for the slot. */
  queuedMs: number;
  /** Gives the slot back; idempotent. */
  release(): void;
}

interface Waiter {
  clientId: string;
  enqueuedAt: number;
  grant(): void;
}

const MIN_RETRY_MS = 10;
const MAX_RETRY_MS = 10_000;

/**
 * Concurrency limit plus bounded queue for one backend. Waiting calls are queued
 * per client and served round-robin across clients, so one rollout worker
 * flooding the gateway cannot starve the others: each client with waiting calls
 * gets every n-th free slot.
 */
export class ServiceLimiter {
  private running = 0;
  private queued = 0;
  private readonly queues = new Map<string, Waiter[]>();
  /** Clients with waiting calls, in service order. */
  private readonly turn: string[] = [];
  /** Moving average of how long a call holds its slot, for the retry hint. */
  private averageHoldMs = 50;

  constructor(
    readonly name: BackendName,
    readonly limits: AdmissionLimits,
  ) {}

  get stats(): { running: number; queued: number } {
    return { running: this.running, queued: this.queued };
  }

  /** A slot at once when one is free and nobody waits for one; undefined otherwise. */
  tryAcquire(): Permit | undefined {
    if (this.running >= this.limits.maxConcurrent || this.queued > 0) return undefined;
    this.running += 1;
    return this.permit(performance.now());
  }

  /** Waits for a slot. Rejects at once when the queue is full, or when `signal` aborts while queued. */
  acquire(clientId: string, signal?: AbortSignal): Promise<Permit> {
    const enqueuedAt = performance.now();
    if (signal?.aborted) return Promise.reject(this.abandoned(signal, 0));
    const free = this.tryAcquire();
    if (free) return Promise.resolve(free);
    if (this.queued >= this.limits.maxQueue) return Promise.reject(this.rejection());
    return new Promise<Permit>((resolve, reject) => {
      const waiter: Waiter = {
        clientId,
        enqueuedAt,
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve(this.permit(enqueuedAt));
        },
      };
      const onAbort = () => {
        if (this.remove(waiter)) reject(this.abandoned(signal as AbortSignal, performance.now() - enqueuedAt));
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.enqueue(waiter);
    });
  }

  /** Suggested wait before retrying: the time the queue ahead needs to drain one slot's worth. */
  retryAfterMs(): number {
    const estimate = Math.ceil((this.averageHoldMs * (this.queued + 1)) / this.limits.maxConcurrent);
    return Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, estimate));
  }

  private rejection(): AdmissionRejectedError {
    return new AdmissionRejectedError(
      `${this.name} service overloaded: ${this.running} calls running (limit ${this.limits.maxConcurrent}) and ${this.queued} queued (limit ${this.limits.maxQueue}); retry later`,
      { retryAfterMs: this.retryAfterMs() },
    );
  }

  private abandoned(signal: AbortSignal, waitedMs: number): DeadlineExceededError {
    const reason = signal.reason instanceof Error ? signal.reason.message : "cancelled";
    return new DeadlineExceededError(
      `${reason} while queued ${Math.round(waitedMs)} ms for the ${this.name} service (${this.queued} queued)`,
    );
  }

  private permit(enqueuedAt: number): Permit {
    const grantedAt = performance.now();
    let released = false;
    return {
      queuedMs: grantedAt - enqueuedAt,
      release: () => {
        if (released) return;
        released = true;
        this.averageHoldMs = this.averageHoldMs * 0.9 + (performance.now() - grantedAt) * 0.1;
        this.running -= 1;
        this.dispatch();
      },
    };
  }

  private enqueue(waiter: Waiter): void {
    let queue = this.queues.get(waiter.clientId);
    if (!queue) {
      queue = [];
      this.queues.set(waiter.clientId, queue);
      this.turn.push(waiter.clientId);
    }
    queue.push(waiter);
    this.queued += 1;
  }

  private remove(waiter: Waiter): boolean {
    const queue = this.queues.get(waiter.clientId);
    const index = queue?.indexOf(waiter) ?? -1;
    if (!queue || index < 0) return false;
    queue.splice(index, 1);
    this.queued -= 1;
    if (queue.length === 0) this.dropClient(waiter.clientId);
    return true;
  }

  private dropClient(clientId: string): void {
    this.queues.delete(clientId);
    const position = this.turn.indexOf(clientId);
    if (position >= 0) this.turn.splice(position, 1);
  }

  /** Hands free slots to waiting calls, one client after the other. */
  private dispatch(): void {
    while (this.running < this.limits.maxConcurrent && this.queued > 0) {
      const clientId = this.turn.shift() as string;
      const queue = this.queues.get(clientId) as Waiter[];
      const waiter = queue.shift() as Waiter;
      this.queued -= 1;
      if (queue.length === 0) this.queues.delete(clientId);
      else this.turn.push(clientId);
      this.running += 1;
      waiter.grant();
    }
  }
}

/** One limiter per backend. */
export class AdmissionController {
  private readonly limiters: Record<BackendName, ServiceLimiter>;

  constructor(limits: Record<BackendName, AdmissionLimits>) {
    this.limiters = {
      image: new ServiceLimiter("image", limits.image),
      code: new ServiceLimiter("code", limits.code),
      search: new ServiceLimiter("search", limits.search),
    };
  }

  acquire(name: BackendName, clientId: string, signal?: AbortSignal): Promise<Permit> {
    return this.limiters[name].acquire(clientId, signal);
  }

  /** A slot of the backend at once, or undefined when the call would have to queue (see acquire). */
  tryAcquire(name: BackendName): Permit | undefined {
    return this.limiters[name].tryAcquire();
  }

  /** Running and queued calls with the limits, per backend (for the metrics gauges). */
  stats(): Array<{ name: BackendName; running: number; queued: number; limits: AdmissionLimits }> {
    return Object.values(this.limiters).map((limiter) => ({
      name: limiter.name,
      ...limiter.stats,
      limits: limiter.limits,
    }));
  }
}

/**
 * Publishes the admission state before every scrape: queued calls as
 * `toolplane_queue_depth{queue="admission_<backend>"}` and slots as
 * `toolplane_pool_size{pool="admission_<backend>",state="busy"|"idle"}`.
 */
export function exportAdmissionGauges(admission: AdmissionController): void {
  onScrape(() => {
    for (const { name, running, queued, limits } of admission.stats()) {
      queueDepth.set({ queue: `admission_${name}` }, queued);
      poolSize.set({ pool: `admission_${name}`, state: "busy" }, running);
      poolSize.set({ pool: `admission_${name}`, state: "idle" }, Math.max(0, limits.maxConcurrent - running));
    }
  });
}
