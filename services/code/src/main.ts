import { tmpdir } from "node:os";
import { join } from "node:path";
import { z } from "zod";
import { CodeServiceService } from "../../../generated/toolplane/code/v1/code.js";
import {
  address,
  baseConfigShape,
  ConfigError,
  createLogger,
  errorMessage,
  loadConfig,
  loadSecurityConfig,
  port,
  positiveInt,
  runMain,
  startGrpcServer,
} from "../../runtime/src/index.js";
import { DiskCheckpointStore } from "./checkpoint-store.js";
import { MAX_RETURNED_PIXELS } from "./images.js";
import { createJavaScriptBackend } from "./javascript/backend.js";
import { NatsCheckpointStore } from "./nats-checkpoint-store.js";
import { PythonBackend } from "./python/backend.js";
import { defaultKernelPath, defaultSeccompPath, defaultSessionInitPath } from "./python/sandbox.js";
import { createCodeServiceImplementation } from "./server.js";
import { SessionManager } from "./sessions.js";

const MIB = 1024 * 1024;

/** Every variable with its documented default (see docs/code-python.md). */
const codeConfigShape = {
  ...baseConfigShape,
  TOOLPLANE_GRPC_PORT: port(50053),
  /** How Python sessions get a kernel: "zygote" (forked), "sandbox" (one bubblewrap each), "auto" (zygote if it works). */
  TOOLPLANE_CODE_PYTHON_START: z.enum(["auto", "zygote", "sandbox"]).default("auto"),
  TOOLPLANE_CODE_UNSHARE_PATH: z.string().min(1).default("/usr/bin/unshare"),
  /** Modules the zygote (or each sandbox) imports before the first cell; comma-separated. */
  TOOLPLANE_CODE_PRELOAD: z
    .string()
    .regex(/^[A-Za-z_][\w.]*(,[A-Za-z_][\w.]*)*$/, "expected comma-separated module names, e.g. numpy,PIL.Image")
    .default("numpy,PIL.Image,PIL.ImageOps,cv2,matplotlib.pyplot,scipy,scipy.ndimage"),
  /** Forked kernels kept ready (zygote start). */
  TOOLPLANE_CODE_FORK_POOL_SIZE: z.coerce.number().int().min(0).max(1024).default(16),
  TOOLPLANE_CODE_FORK_CONCURRENCY: positiveInt(2),
  /** Whole warm sandboxes kept ready (sandbox start). */
  TOOLPLANE_CODE_POOL_SIZE: z.coerce.number().int().min(0).max(64).default(2),
  TOOLPLANE_CODE_POOL_WARMUP_CONCURRENCY: positiveInt(2),
  /**
   * An idle forked session costs ~5 MB of PSS and ~8 MB of node memory with its page tables and namespaces
   * (docs/BENCHMARKS.md, code-python): 1,024 idle sessions take ~8 GiB of a 24 GiB node and leave two thirds of it
   * to what the sessions' code allocates.
   */
  TOOLPLANE_CODE_MAX_SESSIONS: positiveInt(1024),
  /** CreateSession calls that wait (in arrival order, within their deadline) for a slot when MAX_SESSIONS are open. */
  TOOLPLANE_CODE_MAX_WAITING_CREATES: positiveInt(1024),
  TOOLPLANE_CODE_DEFAULT_TIMEOUT_MS: positiveInt(30_000),
  TOOLPLANE_CODE_MAX_TIMEOUT_MS: positiveInt(300_000),
  TOOLPLANE_CODE_DEFAULT_MEMORY_MB: positiveInt(1024),
  TOOLPLANE_CODE_MAX_MEMORY_MB: positiveInt(4096),
  TOOLPLANE_CODE_DEFAULT_OUTPUT_BYTES: positiveInt(256 * 1024),
  TOOLPLANE_CODE_MAX_OUTPUT_BYTES: positiveInt(8 * MIB),
  TOOLPLANE_CODE_DEFAULT_IMAGES: positiveInt(10),
  TOOLPLANE_CODE_MAX_IMAGES: positiveInt(50),
  TOOLPLANE_CODE_DEFAULT_IDLE_TTL_SECONDS: positiveInt(600),
  TOOLPLANE_CODE_MAX_IDLE_TTL_SECONDS: positiveInt(6 * 3600),
  TOOLPLANE_CODE_SWEEP_INTERVAL_MS: positiveInt(1000),
  TOOLPLANE_CODE_RETRY_AFTER_MS: positiveInt(1000),
  TOOLPLANE_CODE_MAX_CODE_BYTES: positiveInt(MIB),
  TOOLPLANE_CODE_MAX_INPUT_IMAGES: positiveInt(50),
  TOOLPLANE_CODE_MAX_INPUT_PIXELS: positiveInt(100_000_000),
  TOOLPLANE_CODE_PYTHON_PATH: z.string().min(1).default("/usr/bin/python3"),
  TOOLPLANE_CODE_BWRAP_PATH: z.string().min(1).default("/usr/bin/bwrap"),
  /** Host uid (and gid) the sandboxes run as when the service runs as root; ignored otherwise. */
  TOOLPLANE_CODE_SANDBOX_UID: positiveInt(65534),
  TOOLPLANE_CODE_MAX_PROCESSES: positiveInt(32),
  TOOLPLANE_CODE_MAX_FILE_MB: positiveInt(16),
  TOOLPLANE_CODE_MAX_OPEN_FILES: positiveInt(256),
  TOOLPLANE_CODE_TMP_MB: positiveInt(64),
  TOOLPLANE_CODE_KILL_GRACE_MS: positiveInt(2000),
  // Checkpoints of Python sessions' state (docs/code-python.md, Checkpoints). The directory may be a volume
  // shared by replicas: a replica then continues any session of another. Empty = a directory under /tmp.
  TOOLPLANE_CODE_CHECKPOINTS: z.enum(["on", "off"]).default("on"),
  TOOLPLANE_CODE_CHECKPOINT_DIR: z.string().default(""),
  /** Set: checkpoints go to JetStream (Object Store + KV bucket of this name), shared by every replica. */
  TOOLPLANE_NATS_URL: z.string().min(1).optional(),
  TOOLPLANE_CODE_CHECKPOINT_BUCKET: z
    .string()
    .regex(/^[A-Za-z0-9_-]+$/)
    .default("toolplane_code_checkpoints"),
  TOOLPLANE_CODE_CHECKPOINT_MAX_MB: positiveInt(64),
  TOOLPLANE_CODE_CHECKPOINT_STORE_MB: positiveInt(4096),
  TOOLPLANE_CODE_CHECKPOINT_TIMEOUT_MS: positiveInt(10_000),
  TOOLPLANE_CODE_MAX_LIVE_KERNELS: positiveInt(256),
  /** JavaScript (see docs/code-js.md): warm isolates per sandbox host process. */
  TOOLPLANE_CODE_JS_POOL_SIZE: z.coerce.number().int().min(0).max(256).default(8),
  TOOLPLANE_CODE_JS_HOST_PROCESSES: z.coerce.number().int().min(1).max(32).default(2),
  TOOLPLANE_CODE_JS_ISOLATION: z.enum(["process", "in-process"]).default("process"),
  /**
   * Memory one JavaScript host process may commit (RLIMIT_DATA; 0 = unbounded): room for one lost isolate of
   * the largest memory_mb beside the host's live sessions, so a heap bomb ends in its host's bound.
   */
  TOOLPLANE_CODE_JS_HOST_MEMORY_MB: z.coerce.number().int().min(0).default(8192),
  TOOLPLANE_CODE_PRLIMIT_PATH: z.string().min(1).default("/usr/bin/prlimit"),
  /** Image service for JavaScript's image.process(); empty = the helper is absent. */
  TOOLPLANE_IMAGE_ADDR: address("", { optional: true }),
};

type CodeConfig = ReturnType<typeof loadConfig<typeof codeConfigShape>>;

function checkDefaultsWithinMaxima(config: CodeConfig): void {
  const pairs = [
    ["TIMEOUT_MS", config.TOOLPLANE_CODE_DEFAULT_TIMEOUT_MS, config.TOOLPLANE_CODE_MAX_TIMEOUT_MS],
    ["MEMORY_MB", config.TOOLPLANE_CODE_DEFAULT_MEMORY_MB, config.TOOLPLANE_CODE_MAX_MEMORY_MB],
    ["OUTPUT_BYTES", config.TOOLPLANE_CODE_DEFAULT_OUTPUT_BYTES, config.TOOLPLANE_CODE_MAX_OUTPUT_BYTES],
    ["IMAGES", config.TOOLPLANE_CODE_DEFAULT_IMAGES, config.TOOLPLANE_CODE_MAX_IMAGES],
    ["IDLE_TTL_SECONDS", config.TOOLPLANE_CODE_DEFAULT_IDLE_TTL_SECONDS, config.TOOLPLANE_CODE_MAX_IDLE_TTL_SECONDS],
  ] as const;
  const problems = pairs
    .filter(([, fallback, maximum]) => fallback > maximum)
    .map(
      ([name, fallback, maximum]) =>
        `invalid environment variable TOOLPLANE_CODE_DEFAULT_${name}=${fallback}: above TOOLPLANE_CODE_MAX_${name}=${maximum}`,
    );
  if (problems.length > 0) throw new ConfigError(problems);
}

runMain("toolplane-code", async () => {
  const config = loadConfig(codeConfigShape);
  const security = loadSecurityConfig();
  checkDefaultsWithinMaxima(config);
  const logger = createLogger("code", config.TOOLPLANE_LOG_LEVEL);
  const checkpointStore =
    config.TOOLPLANE_NATS_URL === undefined
      ? new DiskCheckpointStore(
          config.TOOLPLANE_CODE_CHECKPOINT_DIR || join(tmpdir(), "toolplane-checkpoints"),
          config.TOOLPLANE_CODE_CHECKPOINT_STORE_MB * MIB,
        )
      : await NatsCheckpointStore.connect({
          url: config.TOOLPLANE_NATS_URL,
          bucket: config.TOOLPLANE_CODE_CHECKPOINT_BUCKET,
          maxBytes: config.TOOLPLANE_CODE_CHECKPOINT_STORE_MB * MIB,
        });
  const python = new PythonBackend(
    {
      start: config.TOOLPLANE_CODE_PYTHON_START,
      unsharePath: config.TOOLPLANE_CODE_UNSHARE_PATH,
      sessionInitPath: defaultSessionInitPath(),
      seccompPath: defaultSeccompPath(),
      preload: config.TOOLPLANE_CODE_PRELOAD.split(","),
      poolSize: config.TOOLPLANE_CODE_POOL_SIZE,
      warmupConcurrency: config.TOOLPLANE_CODE_POOL_WARMUP_CONCURRENCY,
      forkPoolSize: config.TOOLPLANE_CODE_FORK_POOL_SIZE,
      forkConcurrency: config.TOOLPLANE_CODE_FORK_CONCURRENCY,
      retryAfterMs: config.TOOLPLANE_CODE_RETRY_AFTER_MS,
      bwrapPath: config.TOOLPLANE_CODE_BWRAP_PATH,
      pythonPath: config.TOOLPLANE_CODE_PYTHON_PATH,
      kernelPath: defaultKernelPath(),
      // As root, the sandbox runs under an unprivileged host uid: only then do the process-count limits bind.
      hostUid: process.getuid?.() === 0 ? config.TOOLPLANE_CODE_SANDBOX_UID : undefined,
      tmpBytes: config.TOOLPLANE_CODE_TMP_MB * MIB,
      maxFrameBytes: 256 * MIB,
      maxProcesses: config.TOOLPLANE_CODE_MAX_PROCESSES,
      maxFileBytes: config.TOOLPLANE_CODE_MAX_FILE_MB * MIB,
      maxOpenFiles: config.TOOLPLANE_CODE_MAX_OPEN_FILES,
      killGraceMs: config.TOOLPLANE_CODE_KILL_GRACE_MS,
      ...(config.TOOLPLANE_CODE_CHECKPOINTS === "on"
        ? {
            checkpoints: {
              store: checkpointStore,
              maxBytes: config.TOOLPLANE_CODE_CHECKPOINT_MAX_MB * MIB,
              timeoutMs: config.TOOLPLANE_CODE_CHECKPOINT_TIMEOUT_MS,
              maxLiveKernels: config.TOOLPLANE_CODE_MAX_LIVE_KERNELS,
            },
          }
        : {}),
    },
    logger.child({ language: "python" }),
  );
  const jsLogger = logger.child({ language: "javascript" });
  const javascript = createJavaScriptBackend({
    isolation: config.TOOLPLANE_CODE_JS_ISOLATION,
    hostProcesses: config.TOOLPLANE_CODE_JS_HOST_PROCESSES,
    poolSize: config.TOOLPLANE_CODE_JS_POOL_SIZE,
    poolMemoryMb: config.TOOLPLANE_CODE_DEFAULT_MEMORY_MB,
    ...(config.TOOLPLANE_IMAGE_ADDR === "" ? {} : { imageServiceAddress: config.TOOLPLANE_IMAGE_ADDR }),
    imageServiceSecurity: security,
    imageServiceHint: "TOOLPLANE_IMAGE_ADDR",
    maxDisplayBytes: 32 * MIB,
    // A displayed image is returned to the model: decoding one the return screen would drop is wasted host memory.
    maxDisplayPixels: Math.min(config.TOOLPLANE_CODE_MAX_INPUT_PIXELS, MAX_RETURNED_PIXELS),
    hardKillGraceMs: config.TOOLPLANE_CODE_KILL_GRACE_MS,
    hostMemoryMb: config.TOOLPLANE_CODE_JS_HOST_MEMORY_MB,
    prlimitPath: config.TOOLPLANE_CODE_PRLIMIT_PATH,
    // A retired host serves its sessions for as long as an idle session of the default TTL would live.
    hostDrainMs: config.TOOLPLANE_CODE_DEFAULT_IDLE_TTL_SECONDS * 1000,
    onHostEvent: (event) => jsLogger.warn({ event: event.kind, detail: event.detail }, "javascript sandbox host event"),
  });
  const manager = new SessionManager(
    [python, javascript],
    {
      defaults: {
        timeoutMs: config.TOOLPLANE_CODE_DEFAULT_TIMEOUT_MS,
        memoryMb: config.TOOLPLANE_CODE_DEFAULT_MEMORY_MB,
        maxOutputBytes: config.TOOLPLANE_CODE_DEFAULT_OUTPUT_BYTES,
        maxImages: config.TOOLPLANE_CODE_DEFAULT_IMAGES,
        idleTtlSeconds: config.TOOLPLANE_CODE_DEFAULT_IDLE_TTL_SECONDS,
      },
      maxima: {
        timeoutMs: config.TOOLPLANE_CODE_MAX_TIMEOUT_MS,
        memoryMb: config.TOOLPLANE_CODE_MAX_MEMORY_MB,
        maxOutputBytes: config.TOOLPLANE_CODE_MAX_OUTPUT_BYTES,
        maxImages: config.TOOLPLANE_CODE_MAX_IMAGES,
        idleTtlSeconds: config.TOOLPLANE_CODE_MAX_IDLE_TTL_SECONDS,
      },
      maxSessions: config.TOOLPLANE_CODE_MAX_SESSIONS,
      maxWaitingCreates: config.TOOLPLANE_CODE_MAX_WAITING_CREATES,
      retryAfterMs: config.TOOLPLANE_CODE_RETRY_AFTER_MS,
      sweepIntervalMs: config.TOOLPLANE_CODE_SWEEP_INTERVAL_MS,
      maxCodeBytes: config.TOOLPLANE_CODE_MAX_CODE_BYTES,
    },
    logger,
  );
  try {
    await manager.start();
    manager.exportGauges();
  } catch (error) {
    // The backends that did start (sandbox host processes, warm kernels) go first: nothing is left running.
    await manager.stop();
    throw new Error(
      `a code sandbox does not work (TOOLPLANE_CODE_BWRAP_PATH=${config.TOOLPLANE_CODE_BWRAP_PATH}, TOOLPLANE_CODE_PYTHON_PATH=${config.TOOLPLANE_CODE_PYTHON_PATH}, TOOLPLANE_CODE_JS_ISOLATION=${config.TOOLPLANE_CODE_JS_ISOLATION}): ${errorMessage(error)}`,
      { cause: error },
    );
  }
  const server = await startGrpcServer({
    host: config.TOOLPLANE_HOST,
    port: config.TOOLPLANE_GRPC_PORT,
    services: [
      {
        name: "toolplane.code.v1.CodeService",
        definition: CodeServiceService,
        implementation: createCodeServiceImplementation(
          manager,
          { maxImages: config.TOOLPLANE_CODE_MAX_INPUT_IMAGES, maxPixels: config.TOOLPLANE_CODE_MAX_INPUT_PIXELS },
          logger,
          config.TOOLPLANE_CODE_MAX_SESSIONS,
        ),
      },
    ],
    protoFiles: ["toolplane/code/v1/code.proto"],
    logger,
    metricsPort: config.TOOLPLANE_METRICS_PORT,
    protoDir: config.TOOLPLANE_PROTO_DIR,
    security,
  });
  return {
    logger,
    stoppable: {
      stop: async () => {
        await server.shutdown(config.TOOLPLANE_SHUTDOWN_GRACE_MS);
        await manager.stop();
        if (checkpointStore instanceof NatsCheckpointStore) await checkpointStore.close();
      },
    },
  };
});
