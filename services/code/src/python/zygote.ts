import type { ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { chmodSync, chownSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server, type Socket } from "node:net";
import { constants, tmpdir } from "node:os";
import { join } from "node:path";
import { type Logger, UnavailableError } from "../../../runtime/src/index.js";
import { FramedKernel } from "./channel.js";
import { encodeFrame, type Frame, FrameDecoder, FrameError } from "./framing.js";
import { type SandboxOptions, spawnZygote } from "./sandbox.js";

export interface ZygoteOptions extends SandboxOptions {
  /** util-linux `unshare`, which builds the zygote's outer namespaces. */
  unsharePath: string;
  /** The compiled session init (services/code/native/session-init.c), pid 1 of each session. */
  sessionInitPath: string;
  /** Suggested wait sent with the UNAVAILABLE of calls made while a dead zygote is replaced. */
  retryAfterMs: number;
}

/** killedFor of kernels lost because their zygote died: the system's failure, never the model's. */
export const ZYGOTE_DIED = "the zygote died";

const SOCKET_NAME = "kernels.sock";
const STDERR_TAIL_BYTES = 8 * 1024;
/** How long a forked kernel may take from fork to its "ready" on the socket. */
const FORK_TIMEOUT_MS = 30_000;
/** How long a kernel's end waits for the zygote's report of its status. */
const EXIT_REPORT_WAIT_MS = 1000;
/** Pause between replacements when zygotes keep dying at start, so a broken sandbox does not spin. */
const RESTART_BACKOFF_MS = [0, 250, 1000, 5000];

interface ExitReport {
  code: number | null;
  signal: number | null;
}

/**
 * One kernel forked by the zygote: pid 2 of its own pid namespace, reached over
 * its own connection to the service's socket. Killing it asks the zygote to end
 * the session (its watcher kills the session's init, and the whole pid namespace
 * goes down with it).
 */
export class ForkedKernel extends FramedKernel {
  private hostPid: number | undefined;

  constructor(
    private readonly zygote: ZygoteProcess,
    readonly zygotePid: number,
    readonly token: string,
    private readonly socket: Socket,
    maxFrameBytes: number,
  ) {
    super(maxFrameBytes);
    socket.on("data", (chunk: Buffer) => this.received(chunk));
    socket.on("error", () => {});
    socket.once("close", () => {
      zygote.exitOf(zygotePid).then((report) => {
        if (report === "zygote died") this.killedFor ??= ZYGOTE_DIED;
        const exit = typeof report === "object" ? report : { code: null, signal: null };
        this.ended({ code: exit.code, signal: signalName(exit.signal), stderrTail: "" });
      });
    });
  }

  /** The kernel's host pid, found once from the zygote's children (kernels log nothing to the host). */
  get pythonPid(): number | undefined {
    this.hostPid ??= this.zygote.hostPidOfKernel(this.zygotePid);
    return this.hostPid;
  }

  protected write(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  protected terminate(): void {
    this.zygote.kill(this.zygotePid, this.token);
  }
}

function signalName(signal: number | null): NodeJS.Signals | null {
  if (signal === null) return null;
  const entry = Object.entries(constants.signals).find(([, value]) => value === signal);
  return (entry?.[0] as NodeJS.Signals | undefined) ?? null;
}

/** One running zygote process and its control channel. */
export class ZygoteProcess {
  readonly exited: Promise<void>;
  private readonly decoder: FrameDecoder;
  private readonly forks = new Map<string, { resolve: (pid: number) => void; reject: (error: Error) => void }>();
  private readonly exitReports = new Map<number, ExitReport>();
  private readonly exitWaiters = new Map<number, (report: ExitReport | "zygote died") => void>();
  private ready: ((frame: Frame) => void) | undefined;
  /** Token of each live session, by its watcher's pid. */
  private readonly tokens = new Map<number, string>();
  private dead = false;
  private stderrTail = "";
  private zygoteHostPid: number | undefined;

  private constructor(
    private readonly child: ChildProcess,
    maxFrameBytes: number,
    private readonly onSessionExit: (token: string) => void,
  ) {
    this.decoder = new FrameDecoder(maxFrameBytes);
    child.stdout?.on("data", (chunk: Buffer) => this.onData(chunk));
    child.stderr?.on("data", (chunk: Buffer) => {
      this.stderrTail = (this.stderrTail + chunk.toString("utf8")).slice(-STDERR_TAIL_BYTES);
    });
    child.stdin?.on("error", () => {});
    this.exited = new Promise((resolve) => {
      const end = () => {
        if (this.dead) return;
        this.dead = true;
        const failure = new Error(`the Python zygote exited: ${this.stderrTail.trim().slice(-500)}`);
        for (const pending of this.forks.values()) pending.reject(failure);
        this.forks.clear();
        for (const waiter of this.exitWaiters.values()) waiter("zygote died");
        this.exitWaiters.clear();
        resolve();
      };
      child.once("close", end);
      child.once("error", end);
    });
  }

  static async start(
    options: ZygoteOptions,
    socketDir: string,
    onSessionExit: (token: string) => void,
  ): Promise<ZygoteProcess> {
    const child = spawnZygote(options, socketDir);
    const zygote = new ZygoteProcess(child, options.maxFrameBytes, onSessionExit);
    const ready = new Promise<Frame>((resolve) => {
      zygote.ready = resolve;
    });
    const outcome = await Promise.race([ready, zygote.exited.then(() => undefined)]);
    if (!outcome) {
      throw new Error(
        `the Python zygote exited before it was ready: ${zygote.stderrTail.trim().slice(-1000) || "no output"}`,
      );
    }
    return zygote;
  }

  get alive(): boolean {
    return !this.dead;
  }

  /** Asks for a new session; resolves with its watcher's pid in the zygote's pid namespace. */
  fork(token: string): Promise<number> {
    if (this.dead) return Promise.reject(new Error("the Python zygote is not running"));
    return new Promise((resolve, reject) => {
      this.forks.set(token, { resolve, reject });
      this.child.stdin?.write(encodeFrame({ op: "fork", token }));
    });
  }

  kill(pid: number, token: string): void {
    if (this.dead) return;
    this.child.stdin?.write(encodeFrame({ op: "kill", pid, token }));
  }

  /** The status the zygote reported for a session's watcher, or "zygote died" (undefined: no report in time). */
  exitOf(pid: number): Promise<ExitReport | "zygote died" | undefined> {
    const report = this.exitReports.get(pid);
    if (report) {
      this.exitReports.delete(pid);
      return Promise.resolve(report);
    }
    if (this.dead) return Promise.resolve("zygote died");
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.exitWaiters.delete(pid);
        resolve(undefined);
      }, EXIT_REPORT_WAIT_MS);
      this.exitWaiters.set(pid, (value) => {
        clearTimeout(timer);
        resolve(value);
      });
    });
  }

  /** Kills the zygote; its pid namespace takes every session it forked. */
  stop(): void {
    const pid = this.child.pid;
    if (pid === undefined || this.dead) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // Already gone.
    }
  }

  /** Host pid of the zygote itself (the child of bubblewrap, which is the child of unshare). */
  hostPid(): number | undefined {
    if (this.zygoteHostPid !== undefined) return this.zygoteHostPid;
    let pid = this.child.pid;
    for (let depth = 0; depth < 2 && pid !== undefined; depth += 1) pid = childrenOf(pid)[0];
    this.zygoteHostPid = pid;
    return pid;
  }

  /** Host pid of the kernel (pid 2 of its session) whose watcher has this zygote-namespace pid. */
  hostPidOfKernel(watcherPid: number): number | undefined {
    const zygote = this.hostPid();
    if (zygote === undefined) return undefined;
    const watcher = childrenOf(zygote).find((pid) => namespacePids(pid).at(-1) === watcherPid);
    if (watcher === undefined) return undefined;
    return childrenOf(watcher).find((pid) => namespacePids(pid).at(-1) === 2);
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.decoder.push(chunk);
    } catch (error) {
      this.stderrTail += `\nprotocol violation: ${error instanceof FrameError ? error.message : String(error)}`;
      this.stop();
      return;
    }
    for (const frame of frames) this.onFrame(frame);
  }

  private onFrame(frame: Frame): void {
    const header = frame.header;
    switch (header.op) {
      case "ready":
        this.ready?.(frame);
        this.ready = undefined;
        return;
      case "forked":
      case "fork_failed": {
        const token = String(header.token);
        const pending = this.forks.get(token);
        this.forks.delete(token);
        if (header.op === "forked") {
          const pid = Number(header.pid);
          this.exitReports.delete(pid);
          this.tokens.set(pid, token);
          pending?.resolve(pid);
        } else pending?.reject(new Error(`the zygote could not fork a session: ${String(header.message)}`));
        return;
      }
      case "exited": {
        const pid = Number(header.pid);
        const report = { code: header.code as number | null, signal: header.signal as number | null };
        const waiter = this.exitWaiters.get(pid);
        this.exitWaiters.delete(pid);
        if (waiter) waiter(report);
        else this.exitReports.set(pid, report);
        const token = this.tokens.get(pid);
        this.tokens.delete(pid);
        if (token !== undefined) this.onSessionExit(token);
        return;
      }
    }
  }
}

function childrenOf(pid: number): number[] {
  try {
    return readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** The NSpid line: the process's pid in each pid namespace, outermost first. */
function namespacePids(pid: number): number[] {
  try {
    const line = readFileSync(`/proc/${pid}/status`, "utf8")
      .split("\n")
      .find((entry) => entry.startsWith("NSpid:"));
    return line ? line.slice(6).trim().split(/\s+/).map(Number) : [];
  } catch {
    return [];
  }
}

interface PendingConnection {
  resolve: (socket: Socket) => void;
  reject: (error: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * Keeps one zygote running and turns forks into kernels. Kernels connect back
 * to a Unix socket only the zygote's sandbox can see (each session hides it
 * before model code runs) and introduce themselves with the random token of
 * their fork. A zygote that dies is replaced at once; until the new one is
 * ready, forks fail as UNAVAILABLE with a retry hint.
 */
export class ZygoteSupervisor {
  private zygote: ZygoteProcess | undefined;
  private server: Server | undefined;
  private socketDir: string | undefined;
  private readonly connections = new Map<string, PendingConnection>();
  private stopped = false;
  private failuresInARow = 0;
  private restartTimer: NodeJS.Timeout | undefined;
  /** Zygotes started so far (the first one included). */
  generation = 0;

  constructor(
    private readonly options: ZygoteOptions,
    private readonly logger: Logger,
  ) {}

  /** Starts the socket and the first zygote; throws when this host cannot run one (the caller falls back). */
  async start(): Promise<void> {
    const dir = mkdtempSync(join(tmpdir(), "toolplane-zygote-"));
    this.socketDir = dir;
    const path = join(dir, SOCKET_NAME);
    this.server = createServer((socket) => this.onConnection(socket));
    await new Promise<void>((resolve, reject) => {
      this.server?.once("error", reject);
      this.server?.listen(path, () => resolve());
    });
    // The sandbox user must be able to connect; nobody else can reach the directory.
    chmodSync(path, 0o600);
    chmodSync(dir, 0o700);
    if (this.options.hostUid !== undefined) {
      chownSync(path, this.options.hostUid, this.options.hostUid);
      chownSync(dir, this.options.hostUid, this.options.hostUid);
    }
    this.zygote = await this.launch();
  }

  get current(): ZygoteProcess | undefined {
    return this.zygote?.alive ? this.zygote : undefined;
  }

  /** A new kernel, forked from the warm zygote and connected. */
  async fork(): Promise<ForkedKernel> {
    const zygote = this.current;
    if (!zygote) {
      throw new UnavailableError("the Python zygote is being replaced after it died; retry shortly", {
        retryAfterMs: this.options.retryAfterMs,
      });
    }
    const token = randomBytes(16).toString("hex");
    const connected = new Promise<Socket>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.connections.delete(token);
        reject(new Error(`a forked kernel did not connect within ${FORK_TIMEOUT_MS} ms`));
      }, FORK_TIMEOUT_MS);
      this.connections.set(token, { resolve, reject, timer });
    });
    let pid: number;
    try {
      pid = await zygote.fork(token);
    } catch (error) {
      this.dropConnection(token, error as Error);
      connected.catch(() => {});
      throw error;
    }
    let connection: Socket;
    try {
      connection = await connected;
    } catch (error) {
      zygote.kill(pid, token);
      throw error;
    }
    const kernel = new ForkedKernel(zygote, pid, token, connection, this.options.maxFrameBytes);
    connection.resume();
    return kernel;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.restartTimer);
    const zygote = this.zygote;
    zygote?.stop();
    if (zygote) await zygote.exited;
    for (const token of [...this.connections.keys()]) this.dropConnection(token, new Error("stopped"));
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    if (this.socketDir) rmSync(this.socketDir, { recursive: true, force: true });
  }

  private async launch(): Promise<ZygoteProcess> {
    const started = performance.now();
    const zygote = await ZygoteProcess.start(this.options, this.socketDir as string, (token) =>
      this.dropConnection(token, new Error("the forked kernel ended before it connected")),
    );
    this.generation += 1;
    this.logger.info(
      { ms: Math.round(performance.now() - started), generation: this.generation },
      "python zygote started",
    );
    zygote.exited.then(() => this.onZygoteExit(zygote));
    return zygote;
  }

  private onZygoteExit(zygote: ZygoteProcess): void {
    if (this.stopped || zygote !== this.zygote) return;
    this.logger.error({ generation: this.generation }, "the python zygote died; starting a new one");
    this.scheduleRestart();
  }

  private scheduleRestart(): void {
    const delay = RESTART_BACKOFF_MS[Math.min(this.failuresInARow, RESTART_BACKOFF_MS.length - 1)] ?? 0;
    this.restartTimer = setTimeout(() => {
      this.launch().then(
        (zygote) => {
          this.failuresInARow = 0;
          if (this.stopped) zygote.stop();
          else this.zygote = zygote;
        },
        (error: unknown) => {
          this.failuresInARow += 1;
          this.logger.error({ err: error }, "starting a replacement python zygote failed");
          if (!this.stopped) this.scheduleRestart();
        },
      );
    }, delay);
    this.restartTimer.unref();
  }

  /** A kernel's first frame names its token; until then the connection is nobody's. */
  private onConnection(socket: Socket): void {
    const decoder = new FrameDecoder(64 * 1024);
    socket.on("error", () => {});
    const onData = (chunk: Buffer) => {
      let frames: Frame[];
      try {
        frames = decoder.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      const hello = frames[0];
      if (!hello) return;
      socket.off("data", onData);
      socket.pause();
      const token = String(hello.header.token);
      const pending = this.connections.get(token);
      if (hello.header.op !== "ready" || !pending) {
        socket.destroy();
        return;
      }
      this.connections.delete(token);
      clearTimeout(pending.timer);
      // The kernel says nothing more until it is asked: its hello is the whole first chunk.
      pending.resolve(socket);
    };
    socket.on("data", onData);
  }

  private dropConnection(token: string, error: Error): void {
    const pending = this.connections.get(token);
    if (!pending) return;
    this.connections.delete(token);
    clearTimeout(pending.timer);
    pending.reject(error);
  }
}
