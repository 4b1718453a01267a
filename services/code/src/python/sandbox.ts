import { type ChildProcess, type StdioOptions, spawn } from "node:child_process";
import { closeSync, existsSync, openSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { FramedKernel } from "./channel.js";

/** Where the kernel, the zygote, the font cache and the service's kernel socket appear inside the sandbox. */
const KERNEL_IN_SANDBOX = "/opt/toolplane/kernel.py";
const ZYGOTE_IN_SANDBOX = "/opt/toolplane/zygote.py";
const FONT_CACHE_IN_SANDBOX = "/opt/toolplane/mplcache";
const SOCKET_DIR_IN_SANDBOX = "/opt/toolplane/socket";
const SESSION_INIT_IN_SANDBOX = "/opt/toolplane/session-init";
const SECCOMP_IN_SANDBOX = "/opt/toolplane/seccomp.bpf";
/** Descriptor bubblewrap reports the sandbox's pid on (kernel mode); the files it copies in come after it. */
const INFO_FD = 3;
const FIRST_FILE_FD = 4;
const STDERR_TAIL_BYTES = 8 * 1024;

export interface SandboxOptions {
  bwrapPath: string;
  pythonPath: string;
  /** Host path of kernel.py, copied into the sandbox (zygote.py is beside it). */
  kernelPath: string;
  /** Host path of the compiled seccomp filter of session kernels (services/code/native/seccomp-policy.c). */
  seccompPath: string;
  /** Host directory holding matplotlib's font cache: its files are copied in (bound writable when building it). */
  fontCacheDir: string;
  /** Host uid/gid bubblewrap runs as when the service runs as root (so rlimits bind); undefined = our own. */
  hostUid: number | undefined;
  /** Size of the private /tmp tmpfs. */
  tmpBytes: number;
  /** Largest frame accepted from the kernel. */
  maxFrameBytes: number;
  /** Modules imported before the first cell (TOOLPLANE_CODE_PRELOAD). */
  preload: string[];
}

/** What runs in the sandbox: one kernel, the font-cache build, or the zygote (with its socket directory and init). */
export type SandboxMode = "kernel" | "build-font-cache" | { zygoteSocketDir: string; sessionInitPath: string };

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

/** The compiled session init (`make build` puts it in dist/services/code/native), found from this module. */
export function defaultSessionInitPath(): string {
  return nativeArtifact("session-init");
}

/** The seccomp filter `make build` writes (dist/services/code/native/python-seccomp.bpf), found from this module. */
export function defaultSeccompPath(): string {
  return nativeArtifact("python-seccomp.bpf");
}

function nativeArtifact(name: string): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "dist", "services", "code", "native", name);
    if (existsSync(candidate)) return candidate;
    const inDist = join(dir, "native", name);
    if (existsSync(inDist)) return inDist;
    const parent = dirname(dir);
    if (parent === dir) throw new Error(`cannot find ${name}: run \`make build\` (services/code/native)`);
    dir = parent;
  }
}

/**
 * A host file the sandbox gets a copy of. Copies (bubblewrap's --file from a descriptor), not bind
 * mounts: a bind mount names its host source in /proc/self/mountinfo, and the sandbox's pid 1 shows
 * bubblewrap's arguments in /proc/1/cmdline; neither may tell model code where the service lives.
 */
interface SandboxFile {
  hostPath: string;
  inSandbox: string;
  perms: string;
}

function sandboxFiles(options: SandboxOptions, mode: SandboxMode): SandboxFile[] {
  const files: SandboxFile[] = [{ hostPath: options.kernelPath, inSandbox: KERNEL_IN_SANDBOX, perms: "0444" }];
  if (mode !== "build-font-cache") {
    // The font cache, read-only here: the kernel copies it to a writable place.
    for (const name of readdirSync(options.fontCacheDir).filter((entry) => entry.endsWith(".json"))) {
      files.push({
        hostPath: join(options.fontCacheDir, name),
        inSandbox: `${FONT_CACHE_IN_SANDBOX}/${name}`,
        perms: "0444",
      });
    }
  }
  if (typeof mode === "object") {
    files.push(
      { hostPath: join(dirname(options.kernelPath), "zygote.py"), inSandbox: ZYGOTE_IN_SANDBOX, perms: "0444" },
      { hostPath: mode.sessionInitPath, inSandbox: SESSION_INIT_IN_SANDBOX, perms: "0555" },
      { hostPath: options.seccompPath, inSandbox: SECCOMP_IN_SANDBOX, perms: "0444" },
    );
  }
  return files;
}

/** The descriptors a sandbox's files are read from, from FIRST_FILE_FD on; closed with closeSandboxFiles after spawn. */
function openSandboxFiles(options: SandboxOptions, mode: SandboxMode): number[] {
  const files = sandboxFiles(options, mode).map((file) => file.hostPath);
  // A kernel without the zygote installs its seccomp filter through bubblewrap (--seccomp): one more descriptor.
  if (mode === "kernel") files.push(options.seccompPath);
  const fds: number[] = [];
  try {
    for (const path of files) fds.push(openSync(path, "r"));
  } catch (error) {
    closeSandboxFiles(fds);
    throw error;
  }
  return fds;
}

function closeSandboxFiles(fds: number[]): void {
  for (const fd of fds) closeSync(fd);
}

type StdioEntry = "pipe" | "ignore" | number;

/** stdio for a spawn: the first three, bubblewrap's info descriptor (or nothing), then the files' descriptors. */
function sandboxStdio(first: StdioEntry[], info: "pipe" | "ignore", fds: number[]): StdioOptions {
  return [...first, info, ...fds];
}

/**
 * The bubblewrap command line: no network, read-only system, private /tmp, no host files, no environment.
 *
 * A kernel sandbox unshares everything and gets bubblewrap's /proc. The zygote's sandbox runs inside
 * util-linux `unshare` (zygoteCommand), which made its pid namespace and a fresh /proc: bubblewrap binds
 * that /proc instead of mounting its own, because bubblewrap's read-only covers over /proc/sys and
 * friends would become locked in each session's namespaces and the kernel then refuses the session's
 * own /proc mount (docs/code-python.md, "Zygote").
 */
export function bwrapArguments(options: SandboxOptions, mode: SandboxMode): string[] {
  const zygote = typeof mode === "object";
  const namespaces = zygote
    ? ["--unshare-user", "--unshare-ipc", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
    : ["--unshare-all"];
  const proc = zygote ? ["--bind", "/proc", "/proc"] : ["--proc", "/proc"];
  const args = [
    ...namespaces,
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
    // One thread per library: sessions share few cores, threads count against the process limit, and the
    // zygote must have exactly one thread when it forks.
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
    "--dir",
    "/opt/toolplane",
    ...sandboxFiles(options, mode).flatMap((file, index) => [
      "--perms",
      file.perms,
      "--file",
      String(FIRST_FILE_FD + index),
      file.inSandbox,
    ]),
    // Building the font cache writes it to the host; no model code runs in that sandbox.
    ...(mode === "build-font-cache" ? ["--bind", options.fontCacheDir, FONT_CACHE_IN_SANDBOX] : []),
    // The kernels' way back to the service (a Unix socket); each session covers it before model code runs.
    ...(zygote ? ["--ro-bind", mode.zygoteSocketDir, SOCKET_DIR_IN_SANDBOX] : []),
    ...proc,
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
  if (mode === "kernel") {
    args.push("--info-fd", String(INFO_FD));
    args.push("--seccomp", String(FIRST_FILE_FD + sandboxFiles(options, mode).length));
  }
  const preload = ["--preload", options.preload.join(",")];
  if (zygote) {
    args.push(options.pythonPath, "-I", "-B", ZYGOTE_IN_SANDBOX, "--tmp-bytes", String(options.tmpBytes), ...preload);
  } else {
    args.push(options.pythonPath, "-I", "-B", KERNEL_IN_SANDBOX, ...preload);
    if (mode === "build-font-cache") args.push("--build-font-cache");
  }
  return args;
}

/**
 * The zygote's outer sandbox: util-linux `unshare` makes its user (root mapped to the service's uid, so
 * bubblewrap can run inside), mount, pid, network, IPC and UTS namespaces and mounts a /proc of the new
 * pid namespace without covers; bubblewrap then builds the filesystem and drops to uid 65534.
 */
export function zygoteCommand(
  options: SandboxOptions & { unsharePath: string; sessionInitPath: string },
  socketDir: string,
): string[] {
  return [
    options.unsharePath,
    "--user",
    "--map-root-user",
    "--mount",
    "--pid",
    "--fork",
    "--mount-proc",
    "--net",
    "--ipc",
    "--uts",
    "--kill-child",
    options.bwrapPath,
    ...bwrapArguments(options, { zygoteSocketDir: socketDir, sessionInitPath: options.sessionInitPath }),
  ];
}

function spawnSandbox(options: SandboxOptions, mode: "kernel" | "build-font-cache"): ChildProcess {
  const fds = openSandboxFiles(options, mode);
  try {
    return spawn(options.bwrapPath, bwrapArguments(options, mode), {
      stdio:
        mode === "kernel"
          ? sandboxStdio(["pipe", "pipe", "pipe"], "pipe", fds)
          : sandboxStdio(["ignore", "ignore", "pipe"], "ignore", fds),
      // Own process group, so a kill reaches bwrap and everything it started.
      detached: true,
      env: {},
      ...(options.hostUid === undefined ? {} : { uid: options.hostUid, gid: options.hostUid }),
    });
  } finally {
    closeSandboxFiles(fds);
  }
}

/** Spawns the zygote's command (zygoteCommand) with the descriptors of the files its sandbox copies in. */
export function spawnZygote(
  options: SandboxOptions & { unsharePath: string; sessionInitPath: string },
  socketDir: string,
): ChildProcess {
  const [command, ...args] = zygoteCommand(options, socketDir) as [string, ...string[]];
  const fds = openSandboxFiles(options, { zygoteSocketDir: socketDir, sessionInitPath: options.sessionInitPath });
  try {
    return spawn(command, args, {
      stdio: sandboxStdio(["pipe", "pipe", "pipe"], "ignore", fds),
      // Own process group, so a kill reaches unshare, bubblewrap and the zygote.
      detached: true,
      env: {},
      ...(options.hostUid === undefined ? {} : { uid: options.hostUid, gid: options.hostUid }),
    });
  } finally {
    closeSandboxFiles(fds);
  }
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

/**
 * One kernel process inside its own bubblewrap sandbox (the start used when the
 * zygote is off or cannot fork in namespaces here).
 */
export class SandboxedKernel extends FramedKernel {
  /** Host pid of the Python process (from bubblewrap's info fd), for memory accounting. */
  pythonPid: number | undefined;
  private stderrTail = "";

  private constructor(
    private readonly child: ChildProcess,
    maxFrameBytes: number,
  ) {
    super(maxFrameBytes);
    child.stdout?.on("data", (chunk: Buffer) => this.received(chunk));
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
    child.once("close", (code, signal) => this.ended({ code, signal, stderrTail: this.stderrTail }));
    child.once("error", (error) => {
      this.killedFor ??= `spawn failed: ${error.message}`;
      this.ended({ code: null, signal: null, stderrTail: "" }, error);
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

  protected write(bytes: Buffer): void {
    this.child.stdin?.write(bytes);
  }

  /** Kills the whole sandbox (bwrap's process group; the pid namespace takes the rest with it). */
  protected terminate(): void {
    const pid = this.child.pid;
    if (pid === undefined) return;
    try {
      process.kill(-pid, "SIGKILL");
    } catch {
      // Already gone: the exit event reports it.
    }
  }
}
