import { z } from "zod";
import { ToolGatewayService } from "../../../generated/toolplane/gateway/v1/gateway.js";
import {
  ADDRESS_FORMS,
  address,
  baseConfigShape,
  boolean,
  combineObservers,
  createCallObserver,
  createLogger,
  createRecorder,
  eventsConfigShape,
  loadConfig,
  loadSecurityConfig,
  MetricsCallObserver,
  port,
  positiveInt,
  recorderConfigShape,
  runMain,
  startGrpcServer,
} from "../../runtime/src/index.js";
import { AdmissionController, exportAdmissionGauges } from "./admission.js";
import { createGrpcBackends } from "./backends.js";
import { codeTargetProblem } from "./code-replicas.js";
import { GATEWAY_DEFAULTS, ToolGateway } from "./gateway.js";
import { MemoryImageStore } from "./image-store.js";
import { openNatsStores } from "./nats-stores.js";
import { createToolGatewayImplementation } from "./server.js";
import { MemorySessionStore } from "./sessions.js";
import { ToolRegistry } from "./tools.js";

const gatewayConfigShape = {
  ...baseConfigShape,
  ...eventsConfigShape,
  ...recorderConfigShape,
  TOOLPLANE_GRPC_PORT: port(50051),
  TOOLPLANE_IMAGE_ADDR: address("127.0.0.1:50052"),
  // Every code replica: comma-separated addresses and/or dns:///name:port (re-resolved; a headless Service).
  TOOLPLANE_CODE_ADDR: z
    .string()
    .superRefine((value, context) => {
      const problem = codeTargetProblem(value);
      if (problem)
        context.addIssue({ code: "custom", message: `expected ${ADDRESS_FORMS}, comma-separated: ${problem}` });
    })
    .default("127.0.0.1:50053"),
  // With TOOLPLANE_NATS_URL: session records and images in JetStream, shared by every gateway (nats-stores.ts).
  // Opt-in: NATS then carries every call (a NATS outage fails calls), not only the events.
  TOOLPLANE_GATEWAY_SHARED_SESSIONS: boolean(false),
  TOOLPLANE_GATEWAY_SESSION_BUCKET: z
    .string()
    .regex(/^[-\w]+$/)
    .default("toolplane_sessions"),
  TOOLPLANE_GATEWAY_IMAGE_BUCKET: z
    .string()
    .regex(/^[-\w]+$/)
    .default("toolplane_images"),
  TOOLPLANE_GATEWAY_CODE_RESOLVE_INTERVAL_MS: positiveInt(5000),
  TOOLPLANE_GATEWAY_CODE_LOAD_INTERVAL_MS: positiveInt(1000),
  TOOLPLANE_SEARCH_ADDR: address("127.0.0.1:50054"),
  TOOLPLANE_GATEWAY_IMAGE_STORE_MB: positiveInt(512),
  TOOLPLANE_GATEWAY_SESSION_TTL_SECONDS: positiveInt(900),
  // With the 60 s the code session gets on top, this stays within the code service's default maximum (6 h).
  TOOLPLANE_GATEWAY_MAX_SESSION_TTL_SECONDS: positiveInt(21_540),
  TOOLPLANE_GATEWAY_SWEEP_INTERVAL_MS: positiveInt(1000),
  TOOLPLANE_GATEWAY_IMAGE_CONCURRENCY: positiveInt(32),
  TOOLPLANE_GATEWAY_IMAGE_QUEUE: positiveInt(1024),
  TOOLPLANE_GATEWAY_CODE_CONCURRENCY: positiveInt(64),
  TOOLPLANE_GATEWAY_CODE_QUEUE: positiveInt(1024),
  TOOLPLANE_GATEWAY_SEARCH_CONCURRENCY: positiveInt(64),
  TOOLPLANE_GATEWAY_SEARCH_QUEUE: positiveInt(1024),
  TOOLPLANE_GATEWAY_STREAM_MAX_IN_FLIGHT: positiveInt(256),
  TOOLPLANE_GATEWAY_MAX_CALLS_PER_TURN: positiveInt(GATEWAY_DEFAULTS.maxCallsPerTurn),
  TOOLPLANE_GATEWAY_MAX_INPUT_PIXELS: positiveInt(GATEWAY_DEFAULTS.maxInputPixels),
  TOOLPLANE_GATEWAY_MAX_QUEUED_PER_CODE_SESSION: positiveInt(GATEWAY_DEFAULTS.maxQueuedPerCodeSession),
  // Matches the image service's TOOLPLANE_IMAGE_DECODED_CACHE_ADMIT_ON: after that many sends it holds the image.
  TOOLPLANE_GATEWAY_IMAGE_BYTES_BEFORE_REFERENCE: z.coerce.number().int().min(0).max(1000).default(2),
};

runMain("toolplane-gateway", async () => {
  const config = loadConfig(gatewayConfigShape);
  const security = loadSecurityConfig();
  const logger = createLogger("gateway", config.TOOLPLANE_LOG_LEVEL);
  const backends = createGrpcBackends(
    {
      image: config.TOOLPLANE_IMAGE_ADDR,
      code: config.TOOLPLANE_CODE_ADDR,
      search: config.TOOLPLANE_SEARCH_ADDR,
    },
    config.TOOLPLANE_GATEWAY_IMAGE_BYTES_BEFORE_REFERENCE,
    logger,
    {
      resolveIntervalMs: config.TOOLPLANE_GATEWAY_CODE_RESOLVE_INTERVAL_MS,
      loadIntervalMs: config.TOOLPLANE_GATEWAY_CODE_LOAD_INTERVAL_MS,
    },
    security,
  );
  await backends.codeReplicas.start();
  // Events (NATS or log), tool metrics, and the trajectory journal when recording locally.
  const { recorder, journal } = createRecorder(config, logger);
  const observer = combineObservers(
    [createCallObserver(config, logger), new MetricsCallObserver(), ...(journal ? [journal] : [])],
    logger,
  );
  const admission = new AdmissionController({
    image: {
      maxConcurrent: config.TOOLPLANE_GATEWAY_IMAGE_CONCURRENCY,
      maxQueue: config.TOOLPLANE_GATEWAY_IMAGE_QUEUE,
    },
    code: { maxConcurrent: config.TOOLPLANE_GATEWAY_CODE_CONCURRENCY, maxQueue: config.TOOLPLANE_GATEWAY_CODE_QUEUE },
    search: {
      maxConcurrent: config.TOOLPLANE_GATEWAY_SEARCH_CONCURRENCY,
      maxQueue: config.TOOLPLANE_GATEWAY_SEARCH_QUEUE,
    },
  });
  exportAdmissionGauges(admission);
  // With NATS, session records and images are shared by every gateway replica; without, they stay in memory.
  const shared =
    config.TOOLPLANE_NATS_URL === undefined || !config.TOOLPLANE_GATEWAY_SHARED_SESSIONS
      ? undefined
      : await openNatsStores({
          url: config.TOOLPLANE_NATS_URL,
          sessionBucket: config.TOOLPLANE_GATEWAY_SESSION_BUCKET,
          imageBucket: config.TOOLPLANE_GATEWAY_IMAGE_BUCKET,
          imageMaxAgeMs: (config.TOOLPLANE_GATEWAY_MAX_SESSION_TTL_SECONDS + 3600) * 1000,
          cacheBytes: config.TOOLPLANE_GATEWAY_IMAGE_STORE_MB * 1024 * 1024,
        });
  const gateway = new ToolGateway({
    backends,
    store: shared?.images ?? new MemoryImageStore(config.TOOLPLANE_GATEWAY_IMAGE_STORE_MB * 1024 * 1024),
    sessions: shared?.sessions ?? new MemorySessionStore(),
    admission,
    observer,
    recorder,
    tools: new ToolRegistry(),
    logger,
    defaultIdleTtlMs: config.TOOLPLANE_GATEWAY_SESSION_TTL_SECONDS * 1000,
    maxIdleTtlMs: config.TOOLPLANE_GATEWAY_MAX_SESSION_TTL_SECONDS * 1000,
    sweepIntervalMs: config.TOOLPLANE_GATEWAY_SWEEP_INTERVAL_MS,
    maxCallsPerTurn: config.TOOLPLANE_GATEWAY_MAX_CALLS_PER_TURN,
    maxInputPixels: config.TOOLPLANE_GATEWAY_MAX_INPUT_PIXELS,
    maxQueuedPerCodeSession: config.TOOLPLANE_GATEWAY_MAX_QUEUED_PER_CODE_SESSION,
  });
  gateway.start();
  const server = await startGrpcServer({
    host: config.TOOLPLANE_HOST,
    port: config.TOOLPLANE_GRPC_PORT,
    services: [
      {
        name: "toolplane.gateway.v1.ToolGateway",
        definition: ToolGatewayService,
        implementation: createToolGatewayImplementation(gateway, logger, {
          maxInFlight: config.TOOLPLANE_GATEWAY_STREAM_MAX_IN_FLIGHT,
        }),
      },
    ],
    protoFiles: ["toolplane/gateway/v1/gateway.proto"],
    logger,
    metricsPort: config.TOOLPLANE_METRICS_PORT,
    protoDir: config.TOOLPLANE_PROTO_DIR,
    security,
  });
  logger.info(
    { image: config.TOOLPLANE_IMAGE_ADDR, code: config.TOOLPLANE_CODE_ADDR, search: config.TOOLPLANE_SEARCH_ADDR },
    "backends",
  );
  return {
    logger,
    stoppable: {
      stop: async () => {
        await server.shutdown(config.TOOLPLANE_SHUTDOWN_GRACE_MS);
        await gateway.stop();
        await shared?.close();
        backends.close();
        await observer.stop();
        await recorder.close();
      },
    },
  };
});
