import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  type handleUnaryCall,
  type Metadata,
  Server,
  type ServerUnaryCall,
  type ServiceDefinition,
  status,
  type UntypedServiceImplementation,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { ReflectionService } from "@grpc/reflection";
import { trace } from "@opentelemetry/api";
import { HealthImplementation, protoPath as healthProtoPath } from "grpc-health-check";
import type { CallScope } from "./call-scope.js";
import { setDeadlineTimer } from "./deadline.js";
import { CancelledError, DeadlineExceededError, ERROR_CLASS_KEY, toServiceError } from "./errors.js";
import type { Logger } from "./logger.js";
import {
  grpcServerCalls,
  grpcServerDuration,
  grpcServerErrors,
  type MetricsServer,
  startMetricsServer,
} from "./metrics.js";
import { type SecurityConfig, serverCredentials, serverInterceptors } from "./security.js";

/** Largest message a service accepts or sends: images travel inline. */
export const DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

export interface ServiceRegistration {
  /** Fully qualified name, e.g. "toolplane.image.v1.ImageService" (used for health). */
  name: string;
  definition: ServiceDefinition;
  /** Handlers by method name; a missing method answers UNIMPLEMENTED. */
  implementation: object;
}

export interface GrpcServerOptions {
  host: string;
  port: number;
  services: ServiceRegistration[];
  /** Proto files (relative to proto/) that describe the services, for reflection. */
  protoFiles: string[];
  logger: Logger;
  maxMessageBytes?: number;
  /** Serve Prometheus /metrics on this port (0 = ephemeral); undefined: no endpoint. main.ts passes TOOLPLANE_METRICS_PORT. */
  metricsPort?: number | undefined;
  /** Service token and mutual TLS, as main.ts read them (loadSecurityConfig); default: neither. */
  security?: SecurityConfig;
  /** proto/ for reflection (TOOLPLANE_PROTO_DIR, from main.ts); default: found from this module's location. */
  protoDir?: string | undefined;
}

export interface RunningServer {
  /** Port actually bound (differs from the requested one when that was 0). */
  port: number;
  address: string;
  health: HealthImplementation;
  /** The /metrics endpoint, when metricsPort was given. */
  metrics: MetricsServer | undefined;
  /** Stops accepting calls, waits up to graceMs for in-flight ones, then cancels the rest. */
  shutdown(graceMs: number): Promise<void>;
}

/** The proto/ directory: the configured one, else found from this module's location (src or dist layout). */
export function protoRoot(configured?: string): string {
  if (configured) return configured;
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const candidate = join(dir, "proto");
    if (existsSync(join(candidate, "toolplane"))) return candidate;
    const parent = dirname(dir);
    if (parent === dir) throw new Error("cannot find the proto/ directory; set TOOLPLANE_PROTO_DIR");
    dir = parent;
  }
}

/**
 * Starts a gRPC server with the given services plus the standard health
 * (grpc.health.v1) and reflection services, so any generic client can discover
 * and probe it.
 */
export async function startGrpcServer(options: GrpcServerOptions): Promise<RunningServer> {
  const maxBytes = options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
  const security = options.security ?? {};
  const server = new Server({
    "grpc.max_receive_message_length": maxBytes,
    "grpc.max_send_message_length": maxBytes,
    interceptors: serverInterceptors(security),
  });
  for (const service of options.services)
    server.addService(service.definition, service.implementation as UntypedServiceImplementation);

  const health = new HealthImplementation({ "": "NOT_SERVING" });
  health.addToServer(server);

  const root = protoRoot(options.protoDir);
  const packageDefinition = loadSync([...options.protoFiles.map((file) => join(root, file)), healthProtoPath], {
    includeDirs: [root],
  });
  new ReflectionService(packageDefinition).addToServer(server);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host}:${options.port}`, serverCredentials(security), (error, boundPort) =>
      error ? reject(error) : resolve(boundPort),
    );
  });
  for (const service of options.services) health.setStatus(service.name, "SERVING");
  health.setStatus("", "SERVING");
  const address = `${options.host}:${port}`;
  // Metrics bind before "grpc server listening" so whoever waits for that line can scrape at once.
  const metricsPort = options.metricsPort;
  const metrics =
    metricsPort === undefined ? undefined : await startMetricsServer(options.host, metricsPort, options.logger);
  options.logger.info(
    {
      address,
      services: options.services.map((s) => s.name),
      mutualTls: security.tls !== undefined,
      serviceToken: security.serviceToken !== undefined,
      apiKeys: security.apiKeys?.map((key) => key.client) ?? [],
    },
    "grpc server listening",
  );

  let stopping: Promise<void> | undefined;
  const shutdown = (graceMs: number): Promise<void> => {
    stopping ??= new Promise<void>((resolve) => {
      health.setStatus("", "NOT_SERVING");
      for (const service of options.services) health.setStatus(service.name, "NOT_SERVING");
      const timer = setTimeout(() => {
        options.logger.warn({ graceMs }, "grace period over, cancelling in-flight calls");
        server.forceShutdown();
        resolve();
      }, graceMs);
      server.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    }).then(() => metrics?.close());
    return stopping;
  };
  return { port, address, health, metrics, shutdown };
}

/** What a unary handler gets besides its request: the call's scope, and who sent it with which metadata. */
export interface IncomingCall {
  /** The caller's deadline, and a signal aborted when the caller cancels or that deadline passes. */
  scope: CallScope;
  metadata: Metadata;
  peer: string;
}

export type UnaryHandler<Request, Response> = (request: Request, call: IncomingCall) => Promise<Response>;

function deadlineOf(call: ServerUnaryCall<unknown, unknown>): number | undefined {
  const deadline = call.getDeadline();
  if (deadline instanceof Date) return deadline.getTime();
  if (typeof deadline === "number" && Number.isFinite(deadline)) return deadline;
  return undefined;
}

/**
 * Adapts an async domain function to grpc-js: errors are mapped to status codes
 * in one place, cancellation and deadline become an AbortSignal, each call is
 * logged once and counted in the standard gRPC metrics (calls, errors by class,
 * latency). The error class also lands on the call's trace span when tracing is on.
 */
export function unary<Request, Response>(
  method: string,
  logger: Logger,
  handler: UnaryHandler<Request, Response>,
): handleUnaryCall<Request, Response> {
  return (call, callback) => {
    const started = performance.now();
    const controller = new AbortController();
    const deadlineMs = deadlineOf(call as ServerUnaryCall<unknown, unknown>);
    // The reason tells work that stops on this signal which of the two happened (stoppedError).
    const timer =
      deadlineMs === undefined
        ? undefined
        : setDeadlineTimer(deadlineMs, () => controller.abort(new DeadlineExceededError("deadline exceeded")));
    let answered = false;
    // grpc-js also emits "cancelled" once the answer is sent, for every call: only an
    // earlier one means the caller went away (aborting after the fact would cost an Error per call).
    call.on("cancelled", () => {
      if (!answered) controller.abort(new CancelledError("cancelled by caller"));
    });
    const incoming: IncomingCall = {
      scope: { deadlineMs, signal: controller.signal },
      metadata: call.metadata,
      peer: call.getPeer(),
    };
    handler(call.request, incoming).then(
      (response) => {
        answered = true;
        timer?.clear();
        const ms = performance.now() - started;
        logger.debug({ method, ms }, "call ok");
        grpcServerCalls.inc({ method, code: "OK" });
        grpcServerDuration.observe({ method }, ms / 1000);
        callback(null, response);
      },
      (error: unknown) => {
        answered = true;
        timer?.clear();
        const serviceError = toServiceError(error);
        const errorClass = serviceError.metadata?.get(ERROR_CLASS_KEY)[0] === "MODEL" ? "MODEL" : "INFRASTRUCTURE";
        const ms = performance.now() - started;
        logger[errorClass === "MODEL" ? "info" : "warn"](
          { method, ms, code: serviceError.code, err: serviceError.details },
          "call failed",
        );
        const code = status[serviceError.code] ?? String(serviceError.code);
        grpcServerCalls.inc({ method, code });
        grpcServerErrors.inc({ method, code, error_class: errorClass });
        grpcServerDuration.observe({ method }, ms / 1000);
        trace.getActiveSpan()?.setAttribute("toolplane.error_class", errorClass);
        callback(serviceError as never, null);
      },
    );
  };
}
