import { errorMessage, type Logger } from "../../../runtime/src/index.js";
import type { InputImage, Restored, RestoreReason } from "../backend.js";
import type { CheckpointStore, SessionRecord } from "../checkpoint-store.js";
import { type Kernel, SandboxExitedError } from "./channel.js";

/** How checkpoints are taken and bounded (docs/code-python.md, Checkpoints); configured once in main.ts. */
export interface CheckpointConfig {
  store: CheckpointStore;
  /** Largest pickled namespace of one session; above it the session is not checkpointed (and told so). */
  maxBytes: number;
  /** Time the model's own pickling or unpickling code (__reduce__, __setstate__) may take. */
  timeoutMs: number;
  /** Live interpreters this replica keeps; above it the least recently used idle sessions hibernate. */
  maxLiveKernels: number;
}

const WHY: Record<RestoreReason, string> = {
  kernel_lost: "lost through no fault of its code",
  hibernated: "freed while the session was idle",
  moved: "on another replica (or this replica restarted)",
};

/** The one line a restored session's next observation starts with. */
export function restoredNote(restored: Restored): string {
  if (!restored.complete) {
    return `[toolplane] This session's interpreter was ${WHY[restored.reason]}, and its last checkpoint could not be loaded (${restored.problem ?? "unknown error"}): variables and imports from earlier cells are lost; the input images are bound again.\n`;
  }
  const lost =
    restored.lostNames.length === 0
      ? ""
      : `; these names could not be saved and are gone: ${restored.lostNames.join(", ")}`;
  return `[toolplane] This session's interpreter was ${WHY[restored.reason]}; its state was restored from its last checkpoint${lost}.\n`;
}

/**
 * One Python session's checkpoints. After each cell the kernel pickles its namespace (inside the sandbox:
 * the objects and their __reduce__ are the model's) and the bytes go to the store, after the cell's answer
 * has left: the next call on the session waits for it, the current one never does.
 */
export class SessionCheckpoints {
  private pending: Promise<void> | undefined;
  /** The store holds a checkpoint of this session. */
  private stored = false;
  /** The stored checkpoint is the state after the session's last cell. */
  private upToDate = true;
  /** A message for the model, shown at the start of the next cell's stderr. */
  private notice = "";
  /** The checkpoint a recovery read from the store, until the first restore uses it. */
  private recovered: Buffer | undefined;

  constructor(
    private readonly sessionId: string,
    private readonly record: SessionRecord,
    private readonly images: InputImage[],
    private readonly config: CheckpointConfig,
    private readonly killGraceMs: number,
    private readonly logger: Logger,
  ) {}

  /**
   * A session recreated from the store (another replica, or this one before a restart) starts with one: the
   * checkpoint its recovery already read, kept for the first restore instead of reading the store again.
   */
  markStored(checkpoint: Buffer): void {
    this.stored = true;
    this.recovered = checkpoint;
  }

  get hasCheckpoint(): boolean {
    return this.stored;
  }

  /** Whether freeing the interpreter now loses nothing (its state is in the store, or it has none yet). */
  get current(): boolean {
    return this.pending === undefined && this.upToDate;
  }

  /** Starts checkpointing the state the kernel holds after a cell; never throws. */
  schedule(kernel: Kernel): void {
    this.upToDate = false;
    let pending: Promise<void> | undefined;
    pending = this.take(kernel)
      .catch((error: unknown) => {
        this.logger.warn({ sessionId: this.sessionId, err: errorMessage(error) }, "checkpoint failed");
      })
      .finally(() => {
        if (this.pending === pending) this.pending = undefined;
      });
    this.pending = pending;
  }

  /** Waits for a checkpoint in progress (the next call on the session runs after it). */
  async settled(): Promise<void> {
    await this.pending;
  }

  /** The notice for the model, once. */
  takeNotice(): string {
    const notice = this.notice;
    this.notice = "";
    return notice;
  }

  /** Forgets the checkpoint: the session's state was lost by its own code, and must not come back. */
  async drop(): Promise<void> {
    await this.pending;
    await this.forget(true);
  }

  /**
   * Loads the last checkpoint into a fresh kernel (images bound). The unpickling is the model's code: if it
   * ends the interpreter that is thrown as the kernel's exit (the caller starts fresh); anything it raises is
   * a restore that is not complete.
   */
  async restore(kernel: Kernel, reason: RestoreReason): Promise<Restored> {
    const started = performance.now();
    const checkpoint = this.recovered ?? (await this.config.store.loadCheckpoint(this.sessionId));
    this.recovered = undefined;
    if (!checkpoint) {
      this.stored = false;
      return { reason, lostNames: [], restoreMs: performance.now() - started, complete: false, problem: "it is gone" };
    }
    const reply = await this.guarded(kernel, "restore", () =>
      kernel.request({ op: "restore", timeout_ms: this.config.timeoutMs }, [checkpoint]),
    );
    const restoreMs = performance.now() - started;
    if (reply.header.op === "restored") {
      this.upToDate = true;
      return { reason, lostNames: (reply.header.lost as string[]) ?? [], restoreMs, complete: true };
    }
    return {
      reason,
      lostNames: [],
      restoreMs,
      complete: false,
      problem: String(reply.header.message ?? reply.header.op).slice(0, 300),
    };
  }

  private async take(kernel: Kernel): Promise<void> {
    let reply: Awaited<ReturnType<Kernel["request"]>>;
    try {
      reply = await this.guarded(kernel, "checkpoint", () =>
        kernel.request({ op: "checkpoint", max_bytes: this.config.maxBytes, timeout_ms: this.config.timeoutMs }),
      );
    } catch (error) {
      // The interpreter ended while pickling: killed from outside, or by an object's own pickling code. The
      // previous checkpoint stays (it was taken without ending anything); the next call restores it.
      if (error instanceof SandboxExitedError) {
        this.logger.info({ sessionId: this.sessionId, exit: error.exit }, "interpreter ended during a checkpoint");
        return;
      }
      throw error;
    }
    const header = reply.header;
    switch (header.op) {
      case "checkpointed": {
        const blob = reply.blobs[0];
        if (!blob) throw new Error("the kernel sent a checkpoint without its bytes");
        await this.config.store.save(this.sessionId, this.record, this.images, blob);
        this.stored = true;
        this.upToDate = true;
        return;
      }
      case "checkpoint_unchanged":
        this.upToDate = this.stored;
        return;
      case "checkpoint_too_large":
        this.notice = `[toolplane] This session's state is too large to save (over the checkpoint limit of ${this.config.maxBytes} bytes): if its interpreter is lost, the variables from this point on are lost too.\n`;
        await this.forget(false);
        return;
      case "checkpoint_failed":
        this.notice = `[toolplane] This session's state could not be saved (${String(header.message).slice(0, 200)}): if its interpreter is lost, the variables from this point on are lost too.\n`;
        await this.forget(false);
        return;
      default:
        throw new Error(`the kernel answered checkpoint with ${JSON.stringify(header).slice(0, 200)}`);
    }
  }

  /** Deletes the stored checkpoint; `upToDate`: the state since then needs none (dropped on purpose). */
  private async forget(upToDate: boolean): Promise<void> {
    this.upToDate = upToDate;
    this.recovered = undefined;
    if (!this.stored) return;
    this.stored = false;
    await this.config.store.delete(this.sessionId);
  }

  /** Runs one kernel request with a hard stop: the kernel's own timer plus the kill grace. */
  private async guarded<T>(kernel: Kernel, what: string, request: () => Promise<T>): Promise<T> {
    const hardLimit = setTimeout(() => kernel.kill(`${what} timeout`), this.config.timeoutMs + this.killGraceMs);
    try {
      return await request();
    } finally {
      clearTimeout(hardLimit);
    }
  }
}
