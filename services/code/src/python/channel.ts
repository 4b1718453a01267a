import { encodeFrameParts, type Frame, FrameDecoder, FrameError } from "./framing.js";

export interface SandboxExit {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Why we killed it, when we did. */
  killedFor: string | undefined;
  stderrTail: string;
}

/** The kernel process ended before answering a request. */
export class SandboxExitedError extends Error {
  constructor(readonly exit: SandboxExit) {
    super(
      `the Python sandbox exited (code ${exit.code}, signal ${exit.signal}${exit.killedFor ? `, killed: ${exit.killedFor}` : ""})` +
        (exit.stderrTail ? `: ${exit.stderrTail.trim().slice(-500)}` : ""),
    );
  }
}

/** What a session needs from its kernel, however the kernel was started (own sandbox or forked by the zygote). */
export interface Kernel {
  readonly alive: boolean;
  readonly exited: Promise<SandboxExit>;
  /** Host pid of the Python process running model code, for memory accounting and tests. */
  readonly pythonPid: number | undefined;
  request(header: Record<string, unknown>, blobs?: Buffer[]): Promise<Frame>;
  /** The kernel's next frame (a request can have more than one answer: "started", then the result). */
  next(): Promise<Frame>;
  kill(reason: string): void;
}

/**
 * The framed request/reply channel to one kernel. Requests are strictly one at
 * a time (the session layer serializes them); a reply is the next frame the
 * kernel writes. Subclasses own the transport: they feed bytes to `received`,
 * report the end with `ended`, and kill in `terminate`.
 */
export abstract class FramedKernel implements Kernel {
  private readonly decoder: FrameDecoder;
  private pending: { resolve: (frame: Frame) => void; reject: (error: Error) => void } | undefined;
  private readonly queued: Frame[] = [];
  private exitInfo: SandboxExit | undefined;
  protected killedFor: string | undefined;
  readonly exited: Promise<SandboxExit>;
  private resolveExited: (exit: SandboxExit) => void = () => {};

  constructor(maxFrameBytes: number) {
    this.decoder = new FrameDecoder(maxFrameBytes);
    this.exited = new Promise((resolve) => {
      this.resolveExited = resolve;
    });
  }

  abstract get pythonPid(): number | undefined;
  protected abstract write(bytes: Buffer): void;
  protected abstract terminate(): void;

  /** False from the moment it is killed: a killed kernel answers nothing more, even while it is torn down. */
  get alive(): boolean {
    return this.exitInfo === undefined && this.killedFor === undefined;
  }

  request(header: Record<string, unknown>, blobs: Buffer[] = []): Promise<Frame> {
    const gone = this.goneError();
    if (gone) return Promise.reject(gone);
    const reply = this.next();
    // Part by part: a multi-megabyte checkpoint is written as it is, never copied into one frame buffer.
    for (const part of encodeFrameParts(header, blobs)) this.write(part);
    return reply;
  }

  kill(reason: string): void {
    if (this.exitInfo) return;
    this.killedFor ??= reason;
    this.terminate();
    // The pending request is answered now, not when the process is gone: tearing down a sandbox that holds
    // gigabytes or a crowd of spinning children can take longer than the caller has left, and a cell killed at
    // its time limit must reach the caller as the model's timeout before the caller's deadline.
    this.pending?.reject(this.goneError() as SandboxExitedError);
    this.pending = undefined;
  }

  /** The next frame the kernel sends. */
  next(): Promise<Frame> {
    const frame = this.queued.shift();
    if (frame) return Promise.resolve(frame);
    const gone = this.goneError();
    if (gone) return Promise.reject(gone);
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
    });
  }

  /** Why nothing more can be asked of this kernel: it exited, or it was killed and is being torn down. */
  private goneError(): SandboxExitedError | undefined {
    if (this.exitInfo) return new SandboxExitedError(this.exitInfo);
    if (this.killedFor === undefined) return undefined;
    return new SandboxExitedError({ code: null, signal: "SIGKILL", killedFor: this.killedFor, stderrTail: "" });
  }

  protected received(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (error) {
      // A kernel that breaks the protocol is not trusted any further; what it said before still counts
      // (its "started" tells whose code broke it).
      if (error instanceof FrameError) this.deliver(error.decoded);
      this.kill(error instanceof FrameError ? `protocol violation: ${error.message}` : String(error));
      return;
    }
    this.deliver(frames);
  }

  private deliver(frames: Frame[]): void {
    for (const frame of frames) {
      if (this.pending) {
        const { resolve } = this.pending;
        this.pending = undefined;
        resolve(frame);
      } else {
        this.queued.push(frame);
      }
    }
  }

  protected ended(exit: Omit<SandboxExit, "killedFor">, failure?: Error): void {
    if (this.exitInfo) return;
    this.exitInfo = { ...exit, killedFor: this.killedFor };
    this.pending?.reject(failure ?? new SandboxExitedError(this.exitInfo));
    this.pending = undefined;
    this.resolveExited(this.exitInfo);
  }
}
