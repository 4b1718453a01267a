import {
  onScrape,
  overLimit,
  poolSize,
  queueDepth,
  ResourceExhaustedError,
  stoppedError,
  type ToolplaneError,
} from "../../runtime/src/index.js";

export type BackendName = "image" | "code" | "search";

export interface AdmissionLimits {
  /** Calls running against the backend at once. */
  maxConcurrent: number;
  /** Calls waiting for a slot; beyond it new calls are refused with RESOURCE_EXHAUSTED. */
  maxQueue: number;
  /** Slots one trajectory may hold at once (default: a quarter of maxConcurrent, at least 1). */
  maxConcurrentPerTrajectory?: number;
  /** Calls one trajectory may have waiting (default 64, at most maxQueue). */
  maxQueuedPerTrajectory?: number;
}

/** Whose call it is: the fair-share levels, outermost first. */
export interface FairShareKey {
  /** The caller (API key's client, metadata toolplane-client-id, else the peer). */
  clientId: string;
  rolloutId: string;
  trajectoryId: string;
}

/** Refused by the gateway's own admission control: nothing ran, retrying the same call is safe. */
export class AdmissionRejectedError extends ResourceExhaustedError {}

/**
 * Refused because the call's own trajectory already holds more than its share of
 * the queue: the model flooded (it sent the calls), so the refusal is the model's
 * error, shown to it, never the infrastructure's.
 */
export class FairShareExceededError extends ResourceExhaustedError {
  constructor(message: string) {
    super(message, { errorClass: "MODEL" });
  }
}

export interface Permit {
  /** Time spent waiting for the slot. */
  queuedMs: number;
  /** Gives the slot back; idempotent. */
  release(): void;
}

interface Waiter {
  leaf: Node;
  enqueuedAt: number;
  grant(): void;
  refuse(error: Error): void;
}

/** A level of the fair-share tree: callers, their rollouts, their trajectories (the leaves hold the waiters). */
interface Node {
  key: string;
  parent: Node | undefined;
  children: Map<string, Node>;
  /** Children with waiting calls, in service order. */
  turn: Node[];
  /** Waiting calls below this node. */
  queued: number;
  /** Leaves only: the trajectory's waiting calls, oldest first. */
  waiters: Waiter[];
  /** Leaves only: the trajectory id, and the path the leaf index knows it by. */
  trajectoryId: string;
  path: string;
}

const MIN_RETRY_MS = 10;
const MAX_RETRY_MS = 10_000;
const DEFAULT_MAX_QUEUED_PER_TRAJECTORY = 64;

function node(key: string, parent: Node | undefined): Node {
  return { key, parent, children: new Map(), turn: [], queued: 0, waiters: [], trajectoryId: "", path: "" };
}

/**
 * Concurrency limit plus bounded queue for one backend, shared fairly. Waiting
 * calls are queued per trajectory and served round-robin at every level: across
 * callers, then across a caller's rollouts, then across a rollout's
 * trajectories; so a flooding trajectory gets its turn like any other and never
 * more. A trajectory holds at most `maxConcurrentPerTrajectory` slots, so
 * others find one free at once; its waiting calls are bounded by
 * `maxQueuedPerTrajectory`. When the whole queue is full, a trajectory holding
 * more than its share of it loses its newest waiting call (the model's error)
 * to a newcomer holding less: only a queue shared evenly is refused as the
 * infrastructure's overload.
 */
export class ServiceLimiter {
  private running = 0;
  private readonly runningBy = new Map<string, number>();
  private readonly root = node("", undefined);
  /** Leaves by their path, for the queue-full policy. */
  private readonly leaves = new Map<string, Node>();
  /** Moving average of how long a call holds its slot, for the retry hint. */
  private averageHoldMs = 50;
  private readonly perTrajectory: { running: number; queued: number };

  constructor(
    readonly name: BackendName,
    readonly limits: AdmissionLimits,
  ) {
    this.perTrajectory = {
      running: limits.maxConcurrentPerTrajectory ?? Math.max(1, Math.ceil(limits.maxConcurrent / 4)),
      queued: Math.min(limits.maxQueue, limits.maxQueuedPerTrajectory ?? DEFAULT_MAX_QUEUED_PER_TRAJECTORY),
    };
  }

  get stats(): { running: number; queued: number } {
    return { running: this.running, queued: this.root.queued };
  }

  /** A slot at once when one is free, the trajectory is under its share and nobody waits; undefined otherwise. */
  tryAcquire(key: FairShareKey): Permit | undefined {
    if (this.running >= this.limits.maxConcurrent || this.root.queued > 0) return undefined;
    if ((this.runningBy.get(key.trajectoryId) ?? 0) >= this.perTrajectory.running) return undefined;
    this.take(key.trajectoryId);
    return this.permit(key.trajectoryId, performance.now());
  }

  /** Waits for a slot. Rejects when the queue has no room for the call, or when `signal` aborts while queued. */
  acquire(key: FairShareKey, signal?: AbortSignal): Promise<Permit> {
    const enqueuedAt = performance.now();
    if (signal?.aborted) return Promise.reject(this.abandoned(signal, 0));
    const free = this.tryAcquire(key);
    if (free) return Promise.resolve(free);
    const path = `${key.clientId}\u0000${key.rolloutId}\u0000${key.trajectoryId}`;
    const refusal = this.makeRoom(path);
    if (refusal) return Promise.reject(refusal);
    return new Promise<Permit>((resolve, reject) => {
      const onAbort = () => {
        if (this.remove(waiter)) reject(this.abandoned(signal as AbortSignal, performance.now() - enqueuedAt));
      };
      const waiter: Waiter = {
        leaf: this.leaf(path, key),
        enqueuedAt,
        grant: () => {
          signal?.removeEventListener("abort", onAbort);
          resolve(this.permit(key.trajectoryId, enqueuedAt));
        },
        refuse: (error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.enqueue(waiter);
      // Slots may be free for this trajectory while others' capped calls wait.
      this.dispatch();
    });
  }

  /** Suggested wait before retrying: the time the queue ahead needs to drain one slot's worth. */
  retryAfterMs(): number {
    const estimate = Math.ceil((this.averageHoldMs * (this.root.queued + 1)) / this.limits.maxConcurrent);
    return Math.min(MAX_RETRY_MS, Math.max(MIN_RETRY_MS, estimate));
  }

  /**
   * Undefined when a call of the trajectory at `path` may queue; else why not.
   * A full queue first sheds the newest call of a trajectory holding more than
   * its even share, when the newcomer's own trajectory holds less.
   */
  private makeRoom(path: string): Error | undefined {
    const own = this.leaves.get(path)?.waiters.length ?? 0;
    if (own >= this.perTrajectory.queued) {
      return new FairShareExceededError(
        `${overLimit(`this trajectory already has ${own} calls waiting for the ${this.name} service`, this.perTrajectory.queued)}; wait for their results before sending more`,
      );
    }
    if (this.root.queued < this.limits.maxQueue) return undefined;
    const share = Math.max(1, Math.floor(this.limits.maxQueue / (this.leaves.size + (this.leaves.has(path) ? 0 : 1))));
    if (own >= share) {
      return new FairShareExceededError(
        `the ${this.name} service's queue is full (${this.root.queued} calls) and this trajectory holds ${own} of them, its even share being ${share}; wait for their results before sending more`,
      );
    }
    let longest: Node | undefined;
    for (const leaf of this.leaves.values())
      if (!longest || leaf.waiters.length > longest.waiters.length) longest = leaf;
    if (!longest || longest.waiters.length <= share) return this.rejection();
    const shed = longest.waiters.at(-1) as Waiter;
    this.remove(shed);
    shed.refuse(
      new FairShareExceededError(
        `the ${this.name} service's queue is full and this trajectory held ${longest.waiters.length + 1} of its ${this.limits.maxQueue} calls, more than its even share of ${share}: its newest waiting call was dropped for another trajectory's`,
      ),
    );
    return undefined;
  }

  private rejection(): AdmissionRejectedError {
    return new AdmissionRejectedError(
      `${this.name} service overloaded: ${this.running} calls running (limit ${this.limits.maxConcurrent}) and ${this.root.queued} queued (limit ${this.limits.maxQueue}); retry later`,
      { retryAfterMs: this.retryAfterMs() },
    );
  }

  private abandoned(signal: AbortSignal, waitedMs: number): ToolplaneError {
    return stoppedError(
      signal,
      `the call stopped while queued ${Math.round(waitedMs)} ms for the ${this.name} service (${this.root.queued} queued)`,
    );
  }

  private take(trajectoryId: string): void {
    this.running += 1;
    this.runningBy.set(trajectoryId, (this.runningBy.get(trajectoryId) ?? 0) + 1);
  }

  private permit(trajectoryId: string, enqueuedAt: number): Permit {
    const grantedAt = performance.now();
    let released = false;
    return {
      queuedMs: grantedAt - enqueuedAt,
      release: () => {
        if (released) return;
        released = true;
        this.averageHoldMs = this.averageHoldMs * 0.9 + (performance.now() - grantedAt) * 0.1;
        this.running -= 1;
        const held = (this.runningBy.get(trajectoryId) ?? 1) - 1;
        if (held === 0) this.runningBy.delete(trajectoryId);
        else this.runningBy.set(trajectoryId, held);
        this.dispatch();
      },
    };
  }

  /** The leaf for the path, made (with the levels above it) when missing. */
  private leaf(path: string, key: FairShareKey): Node {
    const existing = this.leaves.get(path);
    if (existing) return existing;
    let current = this.root;
    for (const part of [key.clientId, key.rolloutId, key.trajectoryId]) {
      let child = current.children.get(part);
      if (!child) {
        child = node(part, current);
        current.children.set(part, child);
      }
      current = child;
    }
    current.trajectoryId = key.trajectoryId;
    current.path = path;
    this.leaves.set(path, current);
    return current;
  }

  private enqueue(waiter: Waiter): void {
    waiter.leaf.waiters.push(waiter);
    for (let level: Node | undefined = waiter.leaf; level; level = level.parent) {
      level.queued += 1;
      // A node that just got its first waiting call joins its parent's turn, at the back.
      if (level.queued === 1 && level.parent) level.parent.turn.push(level);
    }
  }

  /** Takes a waiting call out of the tree (granted, shed or abandoned); false when it was not there. */
  private remove(waiter: Waiter): boolean {
    const index = waiter.leaf.waiters.indexOf(waiter);
    if (index < 0) return false;
    waiter.leaf.waiters.splice(index, 1);
    for (let level: Node | undefined = waiter.leaf; level; level = level.parent) {
      level.queued -= 1;
      if (level.queued === 0 && level.parent) this.prune(level);
    }
    return true;
  }

  /** Drops a node without waiting calls from its parent's turn (and its leaf from the index). */
  private prune(level: Node): void {
    const parent = level.parent as Node;
    const position = parent.turn.indexOf(level);
    if (position >= 0) parent.turn.splice(position, 1);
    parent.children.delete(level.key);
    if (level.path !== "") this.leaves.delete(level.path);
  }

  /** The next call to serve below `level`: round-robin over its children, skipping trajectories at their cap. */
  private next(level: Node): Waiter | undefined {
    if (level.path !== "") {
      const held = this.runningBy.get(level.trajectoryId) ?? 0;
      return held < this.perTrajectory.running ? level.waiters[0] : undefined;
    }
    for (let i = 0; i < level.turn.length; i++) {
      const child = level.turn[i] as Node;
      const found = this.next(child);
      if (found) {
        // Served: the child goes to the back of its parent's turn.
        level.turn.splice(i, 1);
        level.turn.push(child);
        return found;
      }
    }
    return undefined;
  }

  /** Hands free slots to waiting calls, fairly (see the class comment). */
  private dispatch(): void {
    while (this.running < this.limits.maxConcurrent && this.root.queued > 0) {
      const waiter = this.next(this.root);
      if (!waiter) return;
      this.remove(waiter);
      this.take(waiter.leaf.trajectoryId);
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

  acquire(name: BackendName, key: FairShareKey, signal?: AbortSignal): Promise<Permit> {
    return this.limiters[name].acquire(key, signal);
  }

  /** A slot of the backend at once, or undefined when the call would have to queue (see acquire). */
  tryAcquire(name: BackendName, key: FairShareKey): Permit | undefined {
    return this.limiters[name].tryAcquire(key);
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
