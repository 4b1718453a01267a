import { Language } from "../../generated/toolplane/code/v1/code.js";
import type { ExecutionOutcome, InputImage } from "../../services/code/src/backend.js";
import { PythonBackend, type PythonBackendOptions } from "../../services/code/src/python/backend.js";
import {
  defaultKernelPath,
  defaultSeccompPath,
  defaultSessionInitPath,
} from "../../services/code/src/python/sandbox.js";
import { SessionManager, type SessionManagerConfig } from "../../services/code/src/sessions.js";
import { createLogger } from "../../services/runtime/src/index.js";

const MIB = 1024 * 1024;

/**
 * Options of a PythonBackend run in a test's or benchmark's own process: the machine's sandbox tools (overridable
 * with the service's variables), the built kernel files, small pools and limits. `overrides` set what a test is about.
 */
export function pythonBackendOptions(overrides: Partial<PythonBackendOptions> = {}): PythonBackendOptions {
  return {
    start: "zygote",
    unsharePath: process.env.TOOLPLANE_CODE_UNSHARE_PATH ?? "/usr/bin/unshare",
    sessionInitPath: defaultSessionInitPath(),
    seccompPath: defaultSeccompPath(),
    preload: ["numpy", "PIL.Image", "PIL.ImageOps", "cv2", "matplotlib.pyplot"],
    poolSize: 1,
    warmupConcurrency: 1,
    forkPoolSize: 1,
    forkConcurrency: 1,
    retryAfterMs: 500,
    bwrapPath: process.env.TOOLPLANE_CODE_BWRAP_PATH ?? "/usr/bin/bwrap",
    pythonPath: process.env.TOOLPLANE_CODE_PYTHON_PATH ?? "/usr/bin/python3",
    kernelPath: defaultKernelPath(),
    hostUid: process.getuid?.() === 0 ? 65534 : undefined,
    tmpBytes: 32 * MIB,
    maxFrameBytes: 64 * MIB,
    maxProcesses: 32,
    maxFileBytes: 4 * MIB,
    maxOpenFiles: 128,
    killGraceMs: 500,
    ...overrides,
  };
}

/** Session manager settings for in-process Python sessions: generous limits, `maxSessions` as asked. */
export function pythonSessionConfig(maxSessions: number): SessionManagerConfig {
  return {
    defaults: { timeoutMs: 30_000, memoryMb: 1024, maxOutputBytes: 65536, maxImages: 4, idleTtlSeconds: 600 },
    maxima: { timeoutMs: 30_000, memoryMb: 1024, maxOutputBytes: 65536, maxImages: 8, idleTtlSeconds: 3600 },
    maxSessions,
    maxWaitingCreates: maxSessions,
    retryAfterMs: 100,
    sweepIntervalMs: 60_000,
    maxCodeBytes: MIB,
  };
}

/**
 * One code service's Python sessions in this process (a PythonBackend behind a SessionManager, no gRPC): what the
 * checkpoint tests and benchmark drive as a "replica".
 */
export class PythonReplica {
  readonly backend: PythonBackend;
  readonly manager: SessionManager;

  constructor(options: PythonBackendOptions, maxSessions = 64) {
    const logger = createLogger("test", "silent");
    this.backend = new PythonBackend(options, logger);
    this.manager = new SessionManager([this.backend], pythonSessionConfig(maxSessions), logger);
  }

  start = () => this.manager.start();
  stop = () => this.manager.stop();

  async create(images: InputImage[] = []): Promise<string> {
    const created = await this.manager.create({
      language: Language.LANGUAGE_PYTHON,
      images,
      limits: {},
      idleTtlSeconds: 0,
      label: "python-replica",
      signal: new AbortController().signal,
    });
    return created.sessionId;
  }

  async run(sessionId: string, code: string): Promise<ExecutionOutcome> {
    const { outcome } = await this.manager.execute({
      sessionId,
      code,
      timeoutMs: 0,
      fixIndentation: false,
      signal: new AbortController().signal,
    });
    return outcome;
  }
}
