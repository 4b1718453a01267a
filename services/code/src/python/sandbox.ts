import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { encodeFrame, type Frame, FrameDecoder, FrameError } from "./framing.js";

/** Where the kernel and the font cache appear inside every sandbox. */
const KERNEL_IN_SANDBOX = "/opt/toolplane/kernel.py";
const FONT_CACHE_IN_SANDBOX = "/opt/toolplane/mplcache";
const STDERR_TAIL_BYTES = 8 * 1024;

export interface SandboxOptions {
  bwrapPath: string;
  pythonPath: string;
  /** Host path of kernel.py, bound read-only. */
  kernelPath: string;
  /** Host directory holding matplotlib's font cache, bound read-only (writable when building it). */
  fontCacheDir: string;
  /** Host uid/gid bubblewrap runs as when the service runs as root (so rlimits bind); undefined = our own. */
  hostUid: number | undefined;
  /** Size of the private /tmp tmpfs. */
  tmpBytes: number;
  /** Largest frame accepted from the kernel. */
  maxFrameBytes: number;
}

/** Finds kernel.py beside this module's source (works from src/ and from the compiled dist/ tree). */
export function defaultKernelPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "services", "code", "src", "python", "kernel.py");
    if (existsSync(candidate)) return candidate;
    const sibling = join(dir, "kernel.py");
    if (existsSync(sibling)) return sibling;
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot find services/code/src/python/kernel.py");
    dir = parent;
  }
}

/** The bubblewrap command line: no network, read-only system, private /tmp, no host files, no environment. */
export function bwrapArguments(options: SandboxOptions, mode: "kernel" | "build-font-cache"): string[] {
  const fontBind = mode === "build-font-cache" ? "--bind" : "--ro-bind";
  const args = [
    "--unshare-all",
    "--die-with-parent",
    "--new-session",
    "--clearenv",
    "--setenv",
    "HOME",
    "/tmp",
    "--setenv",
    "PATH",
    "/usr/bin:/bin",
    "--setenv",
    "LANG",
    "C.UTF-8",
    // One thread per library: sessions share few cores, and threads count against the process limit.
    "--setenv",
    "OPENBLAS_NUM_THREADS",
    "1",
    "--setenv",
    "OMP_NUM_THREADS",
    "1",
    "--setenv",
    "MKL_NUM_THREADS",
    "1",
    "--ro-bind",
    "/usr",
    "/usr",
    "--symlink",
    "usr/lib",
    "/lib",
    "--symlink",
    "usr/lib64",
    "/lib64",
    "--symlink",
    "usr/bin",
    "/bin",
    "--ro-bind-try",
    "/etc/alternatives",
    "/etc/alternatives",
    "--ro-bind-try",
    "/etc/fonts",
    "/etc/fonts",
    "--ro-bind-try",
    "/etc/matplotlibrc",
    "/etc/matplotlibrc",
    "--ro-bind",
    options.kernelPath,
    KERNEL_IN_SANDBOX,
    fontBind,
    options.fontCacheDir,
    FONT_CACHE_IN_SANDBOX,
    "--proc",
    "/proc",
    "--dev",
    "/dev",
    // POSIX semaphores (multiprocessing locks) need /dev/shm; it gets its own bounded tmpfs.
    "--size",
    String(options.tmpBytes),
    "--tmpfs",
    "/dev/shm",
    "--size",
    String(options.tmpBytes),
    "--tmpfs",
    "/tmp",
    // bubblewrap's root and /dev tmpfs belong to the sandbox user: read-only, so /tmp and /dev/shm
    // (bounded in size) are the only writable places.
    "--remount-ro",
    "/dev",
    "--remount-ro",
    "/",
    "--chdir",
    "/tmp",
    "--uid",
    "65534",
    "--gid",
    "65534",
    "--cap-drop",
    "ALL",
  ];
  if (mode === "kernel") args.push("--info-fd", "3");
  args.push(options.pythonPath, "-I", "-B", KERNEL_IN_SANDBOX);
  if (mode === "build-font-cache") args.push("--build-font-cache");
  return args;
}

function spawnSandbox(options: SandboxOptions, mode: "kernel" | "build-font-cache"): ChildProcess {
  return spawn(options.bwrapPath, bwrapArguments(options, mode), {
    stdio: mode === "kernel" ? ["pipe", "pipe", "pipe", "pipe"] : ["ignore", "ignore", "pipe"],
    // Own process group, so a kill reaches bwrap and everything it started.
    detached: true,
    env: {},
    ...(options.hostUid === undefined ? {} : { uid: options.hostUid, gid: options.hostUid }),
  });
}

/** Runs matplotlib's font scan once in a sandbox that may write the cache directory. */
export async function buildFontCache(options: SandboxOptions): Promise<void> {
  const child = spawnSandbox(options, "build-font-cache");
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString("utf8")).slice(-STDERR_TAIL_BYTES);
  });
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (exitCode) => resolve(exitCode));
  });
  if (code !== 0) throw new Error(`building the matplotlib font cache in the sandbox failed (exit ${code}): ${stderr}`);
}

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

/**
 * One kernel process inside bubblewrap. Requests are strictly one at a time
 * (the session layer serializes them); a reply is the next frame the kernel
 * writes.
 */
export class SandboxedKernel {
  /** Host pid of the Python process (from bubblewrap's info fd), for memory accounting. */
  pythonPid: number | undefined;
  private readonly decoder: FrameDecoder;
  private pending: { resolve: (frame: Frame) => void; reject: (error: Error) => void } | undefined;
  private readonly queued: Frame[] = [];
  private exitInfo: SandboxExit | undefined;
  private killedFor: string | undefined;
  private stderrTail = "";
  readonly exited: Promise<SandboxExit>;

  private constructor(
    private readonly child: ChildProcess,
    maxFrameBytes: number,
  ) {
    this.decoder = new FrameDecoder(maxFrameBytes);
    child.stdout?.on("data", (chunk: Buffer) => this.onData(chunk));
    child.stderr?.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString("utf8")).slice(-STDERR_TAIL_BYTES);
    });
    // A write to a dead kernel surfaces as its exit, not as an unhandled stream error.
    child.stdin?.on("error", () => {});
    const info = child.stdio[3];
    if (info && "on" in info) {
      let text = "";
      info.on("data", (chunk: Buffer) => {
        text += chunk.toString("utf8");
        const match = /"child-pid"\s*:\s*(\d+)/.exec(text);
        if (match) this.pythonPid = Number(match[1]);
      });
      info.on("error", () => {});
    }
    // "close" (not "exit") so a reply written just before the process ended is still delivered.
    this.exited = new Promise((resolve) => {
      child.once("close", (code, signal) => {
        this.exitInfo = { code, signal, killedFor: this.killedFor, stderrTail: this.stderrTail };
        this.pending?.reject(new SandboxExitedError(this.exitInfo));
        this.pending = undefined;
        resolve(this.exitInfo);
      });
    });
    child.once("error", (error) => {
      this.exitInfo ??= { code: null, signal: null, killedFor: `spawn failed: ${error.message}`, stderrTail: "" };
      this.pending?.reject(error);
      this.pending = undefined;
    });
  }

  /** Starts a kernel and resolves once its libraries are imported and it said "ready". */
  static async start(options: SandboxOptions): Promise<SandboxedKernel> {
    const kernel = new SandboxedKernel(spawnSandbox(options, "kernel"), options.maxFrameBytes);
    const ready = await kernel.next();
    if (ready.header.op !== "ready") {
      kernel.kill("unexpected first frame");
      throw new Error(`the kernel sent ${JSON.stringify(ready.header.op)} instead of "ready"`);
    }
    return kernel;
  }

  get alive(): boolean {
    return this.exitInfo === undefined;
  }

  request(header: Record<string, unknown>, blobs: Buffer[] = []): Promise<Frame> {
    if (this.exitInfo) return Promise.reject(new SandboxExitedError(this.exitInfo));
    const reply = this.next();
    this.child.stdin?.write(encodeFrame(header, blobs));
    return reply;
  }

  /** Kills the whole sandbox (bwrap's process group; the pid namespace takes the rest with it). */
  kill(reason: string): void {
    if (this.exitInfo) return;
    this.killedFor ??= reason;
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // Already gone: the exit event reports it.
    }
  }

  private next(): Promise<Frame> {
    const frame = this.queued.shift();
    if (frame) return Promise.resolve(frame);
    if (this.exitInfo) return Promise.reject(new SandboxExitedError(this.exitInfo));
    return new Promise((resolve, reject) => {
      this.pending = { resolve, reject };
    });
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (error) {
      // A kernel that breaks the protocol is not trusted any further.
      this.kill(error instanceof FrameError ? `protocol violation: ${error.message}` : String(error));
      return;
    }
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
}
