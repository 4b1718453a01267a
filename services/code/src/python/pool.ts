import { chmodSync, chownSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "../../../runtime/src/index.js";
import { buildFontCache, SandboxedKernel, type SandboxOptions } from "./sandbox.js";

export interface PoolOptions extends Omit<SandboxOptions, "fontCacheDir"> {
  /** Kernels kept started and idle, imports done. */
  size: number;
}

/**
 * Warm kernels: each has numpy, PIL, cv2 and matplotlib imported, so taking one
 * costs a few milliseconds instead of the ~1 s of a cold start. Refills one
 * kernel at a time in the background, so a burst of sessions does not start a
 * burst of imports on a shared machine.
 */
export class KernelPool {
  private readonly idle: SandboxedKernel[] = [];
  private fontCacheDir: string | undefined;
  private refilling = false;
  private stopped = false;
  private readonly starting = new Set<Promise<SandboxedKernel>>();

  constructor(
    private readonly options: PoolOptions,
    private readonly logger: Logger,
  ) {}

  /** Builds the font cache once, then proves the sandbox works by starting one kernel. */
  async start(): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), "toolplane-mplcache-"));
    chmodSync(dir, 0o755);
    if (this.options.hostUid !== undefined) chownSync(dir, this.options.hostUid, this.options.hostUid);
    this.fontCacheDir = dir;
    const started = performance.now();
    await buildFontCache(this.sandboxOptions());
    const first = await this.startKernel();
    this.adopt(first);
    this.logger.info({ ms: Math.round(performance.now() - started), size: this.options.size }, "python pool started");
    this.refill();
  }

  /** A warm kernel; starts one on the spot when none is idle. */
  async acquire(): Promise<SandboxedKernel> {
    if (this.stopped) throw new Error("the kernel pool is stopped");
    let kernel = this.idle.shift();
    while (kernel && !kernel.alive) kernel = this.idle.shift();
    this.refill();
    return kernel ?? this.startKernel();
  }

  get idleCount(): number {
    return this.idle.length;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const starting = [...this.starting];
    for (const kernel of this.idle.splice(0)) kernel.kill("pool stopped");
    const late = await Promise.allSettled(starting);
    for (const result of late) if (result.status === "fulfilled") result.value.kill("pool stopped");
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

  private adopt(kernel: SandboxedKernel): void {
    this.idle.push(kernel);
    // An idle kernel that dies is dropped and replaced.
    kernel.exited.then(() => {
      const index = this.idle.indexOf(kernel);
      if (index < 0) return;
      this.idle.splice(index, 1);
      if (!this.stopped) {
        this.logger.warn("an idle python kernel exited; replacing it");
        this.refill();
      }
    });
  }

  private refill(): void {
    if (this.refilling || this.stopped) return;
    this.refilling = true;
    const loop = async () => {
      while (!this.stopped && this.idle.length < this.options.size) {
        const kernel = await this.startKernel();
        if (this.stopped) kernel.kill("pool stopped");
        else this.adopt(kernel);
      }
    };
    loop()
      .catch((error: unknown) => this.logger.error({ err: error }, "refilling the python pool failed"))
      .finally(() => {
        this.refilling = false;
      });
  }
}
