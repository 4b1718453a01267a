import { chmodSync, chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "../../../runtime/src/index.js";
import type { PoolStats } from "../backend.js";
import { buildFontCache, SandboxedKernel, type SandboxOptions } from "./sandbox.js";

export interface PoolOptions extends Omit<SandboxOptions, "fontCacheDir"> {
  /** Kernels kept started and idle, imports done. */
  size: number;
  /** Kernels started at the same time, when refilling or serving a burst. */
  warmupConcurrency: number;
}

interface Waiter {
  resolve: (kernel: SandboxedKernel) => void;
  reject: (error: Error) => void;
}

/** Pause before starting kernels again after a start failed, so a broken sandbox does not spin. */
const RETRY_AFTER_FAILURE_MS = 1000;

/**
 * Warm kernels: each has numpy, PIL, cv2 and matplotlib imported, so taking one
 * costs a few milliseconds instead of the ~1 s of a cold start. At most
 * `warmupConcurrency` kernels start at once: a burst of sessions (an RL step
 * starting hundreds of trajectories) queues for kernels in arrival order instead
 * of starting hundreds of imports that would starve the machine.
 */
export class KernelPool {
  private readonly idle: SandboxedKernel[] = [];
  private readonly waiters: Waiter[] = [];
  private warming = 0;
  private fontCacheDir: string | undefined;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private readonly starting = new Set<Promise<SandboxedKernel>>();

  constructor(
    private readonly options: PoolOptions,
    private readonly logger: Logger,
  ) {}

  /**
   * Builds the font cache once, then fills the pool before returning: a service
   * that reports SERVING is warm, and no imports compete with its first calls.
   * A sandbox that does not work fails here, at start-up.
   */
  async start(): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), "toolplane-mplcache-"));
    chmodSync(dir, 0o755);
    if (this.options.hostUid !== undefined) chownSync(dir, this.options.hostUid, this.options.hostUid);
    this.fontCacheDir = dir;
    const started = performance.now();
    await buildFontCache(this.sandboxOptions());
    do {
      const batch = Math.max(1, Math.min(this.options.warmupConcurrency, this.options.size - this.idle.length));
      const kernels = await Promise.all(Array.from({ length: batch }, () => this.startKernel()));
      for (const kernel of kernels) this.adopt(kernel);
    } while (this.idle.length < this.options.size);
    this.logger.info({ ms: Math.round(performance.now() - started), size: this.options.size }, "python pool started");
  }

  get stats(): PoolStats {
    return { idle: this.idle.length, starting: this.warming, waiting: this.waiters.length };
  }

  /** A warm kernel: an idle one at once, else the next one started (in arrival order). */
  acquire(): Promise<SandboxedKernel> {
    if (this.stopped) return Promise.reject(new Error("the kernel pool is stopped"));
    let kernel = this.idle.shift();
    while (kernel && !kernel.alive) kernel = this.idle.shift();
    const result = kernel
      ? Promise.resolve(kernel)
      : new Promise<SandboxedKernel>((resolve, reject) => this.waiters.push({ resolve, reject }));
    this.fill();
    return result;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    for (const waiter of this.waiters.splice(0)) waiter.reject(new Error("the kernel pool is stopped"));
    for (const kernel of this.idle.splice(0)) kernel.kill("pool stopped");
    await Promise.allSettled([...this.starting]);
    if (this.fontCacheDir) rmSync(this.fontCacheDir, { recursive: true, force: true });
  }

  private sandboxOptions(): SandboxOptions {
    if (!this.fontCacheDir) throw new Error("the kernel pool is not started");
    return { ...this.options, fontCacheDir: this.fontCacheDir };
  }

  private startKernel(): Promise<SandboxedKernel> {
    const promise = SandboxedKernel.start(this.sandboxOptions());
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

  private deliver(kernel: SandboxedKernel): void {
    if (this.stopped) {
      kernel.kill("pool stopped");
      return;
    }
    const waiter = this.waiters.shift();
    if (waiter) waiter.resolve(kernel);
    else this.adopt(kernel);
  }

  private adopt(kernel: SandboxedKernel): void {
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
