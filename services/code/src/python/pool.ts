import type { Logger } from "../../../runtime/src/index.js";
import type { PoolStats } from "../backend.js";
import type { Kernel } from "./channel.js";

export interface PoolOptions {
  /** Kernels kept started and idle, imports done. */
  size: number;
  /** Kernels started at the same time, when refilling or serving a burst. */
  warmupConcurrency: number;
  /** Kernels start() waits for; the rest of `size` is started in the background. Default: all of them. */
  readyAtStart?: number;
}

interface Waiter {
  resolve: (kernel: Kernel) => void;
  reject: (error: Error) => void;
}

/** Pause before starting kernels again after a start failed, so a broken sandbox does not spin. */
const RETRY_AFTER_FAILURE_MS = 1000;

/**
 * Warm kernels, started ahead of demand (a fork of the zygote, or a whole
 * sandbox whose imports are done), so taking one costs a few milliseconds. At
 * most `warmupConcurrency` kernels start at once: a burst of sessions (an RL
 * step starting hundreds of trajectories) queues for kernels in arrival order
 * instead of starting hundreds at once that would starve the machine.
 */
export class KernelPool {
  private readonly idle: Kernel[] = [];
  private readonly waiters: Waiter[] = [];
  private warming = 0;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly starting = new Set<Promise<Kernel>>();

  constructor(
    private readonly options: PoolOptions,
    private readonly newKernel: () => Promise<Kernel>,
    private readonly logger: Logger,
  ) {}

  /**
   * Fills the pool before returning: a service that reports SERVING is warm,
   * and no starts compete with its first calls. A sandbox that does not work
   * fails here, at start-up.
   */
  async start(): Promise<void> {
    const started = performance.now();
    const ready = Math.min(this.options.size, this.options.readyAtStart ?? this.options.size);
    while (this.idle.length < ready) {
      const batch = Math.max(1, Math.min(this.options.warmupConcurrency, ready - this.idle.length));
      const kernels = await Promise.all(Array.from({ length: batch }, () => this.startKernel()));
      for (const kernel of kernels) this.adopt(kernel);
    }
    this.logger.info(
      { ms: Math.round(performance.now() - started), ready: this.idle.length, size: this.options.size },
      "python pool started",
    );
    this.fill();
  }

  get stats(): PoolStats {
    return { idle: this.idle.length, starting: this.warming, waiting: this.waiters.length };
  }

  /** A warm kernel: an idle one at once, else the next one started (in arrival order). */
  acquire(): Promise<Kernel> {
    if (this.stopped) return Promise.reject(new Error("the kernel pool is stopped"));
    let kernel = this.idle.shift();
    while (kernel && !kernel.alive) kernel = this.idle.shift();
    const result = kernel
      ? Promise.resolve(kernel)
      : new Promise<Kernel>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.fill();
    return result;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    for (const waiter of this.waiters.splice(0)) waiter.reject(new Error("the kernel pool is stopped"));
    for (const kernel of this.idle.splice(0)) kernel.kill("pool stopped");
    const late = await Promise.allSettled([...this.starting]);
    for (const result of late) if (result.status === "fulfilled") result.value.kill("pool stopped");
  }

  private startKernel(): Promise<Kernel> {
    const promise = this.newKernel();
    this.starting.add(promise);
    const forget = () => this.starting.delete(promise);
    promise.then(forget, forget);
    return promise;
  }

  /** Starts kernels until the idle ones plus those starting cover the pool size and every waiter. */
  private fill(): void {
    while (
      !this.stopped &&
      this.retryTimer === undefined &&
      this.warming < this.options.warmupConcurrency &&
      this.idle.length + this.warming < this.options.size + this.waiters.length
    ) {
      this.warming += 1;
      this.startKernel().then(
        (kernel) => {
          this.warming -= 1;
          this.deliver(kernel);
          this.fill();
        },
        (error: unknown) => {
          this.warming -= 1;
          this.logger.error({ err: error }, "starting a python kernel failed");
          // The oldest waiter gets the failure rather than waiting forever.
          this.waiters.shift()?.reject(error instanceof Error ? error : new Error(String(error)));
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            this.fill();
          }, RETRY_AFTER_FAILURE_MS);
          this.retryTimer.unref();
        },
      );
    }
  }

  private deliver(kernel: Kernel): void {
    if (this.stopped) {
      kernel.kill("pool stopped");
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(kernel);
    else this.adopt(kernel);
  }

  private adopt(kernel: Kernel): void {
    this.idle.push(kernel);
    // An idle kernel that dies is dropped and replaced.
    kernel.exited.then(() => {
      const index = this.idle.indexOf(kernel);
      if (index < 0) return;
      this.idle.splice(index, 1);
      if (!this.stopped) {
        this.logger.warn("an idle python kernel exited; replacing it");
        this.fill();
      }
    });
  }
}
