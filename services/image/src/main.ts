import { availableParallelism } from "node:os";
import sharp from "sharp";
import { z } from "zod";
import { ImageServiceService } from "../../../generated/toolplane/image/v1/image.js";
import {
  baseConfigShape,
  ConfigError,
  createLogger,
  DEFAULT_MAX_MESSAGE_BYTES,
  loadConfig,
  loadSecurityConfig,
  port,
  positiveInt,
  runMain,
  startGrpcServer,
} from "../../runtime/src/index.js";
import { DecodedCache } from "./decoded-cache.js";
import { DEFAULT_LIMITS, WorkQueue } from "./limits.js";
import { exposeDecodedCacheMetrics, exposeWorkQueueMetrics } from "./metrics.js";
import { ImagePipeline } from "./pipeline.js";
import { createImageServiceImplementation } from "./server.js";

/** libuv's default pool size when UV_THREADPOOL_SIZE is unset. */
const LIBUV_DEFAULT_POOL = 4;
const MIB = 1024 * 1024;

const imageConfigShape = {
  ...baseConfigShape,
  TOOLPLANE_GRPC_PORT: port(50052),
  TOOLPLANE_IMAGE_MAX_INPUT_PIXELS: positiveInt(DEFAULT_LIMITS.maxInputPixels),
  TOOLPLANE_IMAGE_MAX_INPUT_BYTES: z.coerce
    .number()
    .int()
    .positive()
    .max(DEFAULT_MAX_MESSAGE_BYTES, `must be at most the gRPC message limit ${DEFAULT_MAX_MESSAGE_BYTES}`)
    .default(DEFAULT_LIMITS.maxInputBytes),
  TOOLPLANE_IMAGE_MAX_OUTPUT_PIXELS: positiveInt(DEFAULT_LIMITS.maxOutputPixels),
  TOOLPLANE_IMAGE_MAX_OPERATIONS: positiveInt(DEFAULT_LIMITS.maxOperations),
  TOOLPLANE_IMAGE_MAX_ANNOTATIONS: positiveInt(DEFAULT_LIMITS.maxAnnotations),
  TOOLPLANE_IMAGE_WORKERS: positiveInt(Math.min(availableParallelism(), LIBUV_DEFAULT_POOL - 1)),
  TOOLPLANE_IMAGE_MAX_QUEUE: z.coerce.number().int().min(0).default(64),
  TOOLPLANE_IMAGE_VIPS_THREADS: z.coerce.number().int().min(1).max(64).default(1),
  TOOLPLANE_IMAGE_RETRY_AFTER_MS: positiveInt(100),
  // 0 turns the decoded-image cache off; the ceiling only catches a value given in bytes by mistake.
  TOOLPLANE_IMAGE_DECODED_CACHE_MB: z.coerce.number().int().min(0).max(1_048_576).default(256),
  TOOLPLANE_IMAGE_DECODED_CACHE_ADMIT_ON: z.coerce.number().int().min(1).max(1000).default(2),
};

runMain("toolplane-image", async () => {
  const config = loadConfig(imageConfigShape);
  const security = loadSecurityConfig();
  // Each running pipeline holds one libuv thread; one more must stay free for
  // header reads, DNS and fs, or those queue behind image work. libuv reads
  // UV_THREADPOOL_SIZE before main runs, so it can only be checked here.
  const pool = Number(process.env.UV_THREADPOOL_SIZE) || LIBUV_DEFAULT_POOL;
  if (config.TOOLPLANE_IMAGE_WORKERS >= pool) {
    throw new ConfigError([
      `invalid environment variable TOOLPLANE_IMAGE_WORKERS=${config.TOOLPLANE_IMAGE_WORKERS}: needs UV_THREADPOOL_SIZE of at least ${config.TOOLPLANE_IMAGE_WORKERS + 1} in the environment (now ${pool})`,
    ]);
  }
  // One libvips thread per pipeline and one pipeline per core: under load
  // that saturates the cores without oversubscribing them. libvips' operation
  // cache keys on operations and their inputs, which are new buffers on every
  // call, so it would only hold memory: it is off. Repeated images are served
  // by the decoded-image cache instead, keyed by the bytes themselves.
  sharp.concurrency(config.TOOLPLANE_IMAGE_VIPS_THREADS);
  sharp.cache(false);

  const logger = createLogger("image", config.TOOLPLANE_LOG_LEVEL);
  const decodedCache =
    config.TOOLPLANE_IMAGE_DECODED_CACHE_MB > 0
      ? new DecodedCache(config.TOOLPLANE_IMAGE_DECODED_CACHE_MB * MIB, config.TOOLPLANE_IMAGE_DECODED_CACHE_ADMIT_ON)
      : undefined;
  if (decodedCache !== undefined) exposeDecodedCacheMetrics(decodedCache);
  const workers = new WorkQueue(
    config.TOOLPLANE_IMAGE_WORKERS,
    config.TOOLPLANE_IMAGE_MAX_QUEUE,
    config.TOOLPLANE_IMAGE_RETRY_AFTER_MS,
  );
  exposeWorkQueueMetrics(workers);
  const pipeline = new ImagePipeline(
    {
      maxInputPixels: config.TOOLPLANE_IMAGE_MAX_INPUT_PIXELS,
      maxInputBytes: config.TOOLPLANE_IMAGE_MAX_INPUT_BYTES,
      maxOutputPixels: config.TOOLPLANE_IMAGE_MAX_OUTPUT_PIXELS,
      maxOperations: config.TOOLPLANE_IMAGE_MAX_OPERATIONS,
      maxAnnotations: config.TOOLPLANE_IMAGE_MAX_ANNOTATIONS,
    },
    workers,
    decodedCache,
  );
  logger.info(
    {
      workers: config.TOOLPLANE_IMAGE_WORKERS,
      vipsThreads: sharp.concurrency(),
      threadpool: pool,
      maxInputPixels: config.TOOLPLANE_IMAGE_MAX_INPUT_PIXELS,
      decodedCacheMb: config.TOOLPLANE_IMAGE_DECODED_CACHE_MB,
    },
    "image pipeline configured",
  );
  const server = await startGrpcServer({
    host: config.TOOLPLANE_HOST,
    port: config.TOOLPLANE_GRPC_PORT,
    services: [
      {
        name: "toolplane.image.v1.ImageService",
        definition: ImageServiceService,
        implementation: createImageServiceImplementation(pipeline, logger),
      },
    ],
    protoFiles: ["toolplane/image/v1/image.proto"],
    logger,
    metricsPort: config.TOOLPLANE_METRICS_PORT,
    protoDir: config.TOOLPLANE_PROTO_DIR,
    security,
  });
  return { logger, stoppable: { stop: () => server.shutdown(config.TOOLPLANE_SHUTDOWN_GRACE_MS) } };
});
