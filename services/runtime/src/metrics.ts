import { createServer, type Server } from "node:http";
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { ToolCallEvent } from "./call-events.js";
import type { Logger } from "./logger.js";

/**
 * One registry per process: every service is its own process, so the standard
 * metrics below are module singletons that any code of the service can update.
 */
export const metricsRegistry = new Registry();
collectDefaultMetrics({ register: metricsRegistry });

/** Latency buckets (seconds) from a cache hit (~1 ms) up to a long sandbox run (5 min). */
const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300];

export const grpcServerCalls = new Counter({
  name: "toolplane_grpc_server_calls_total",
  help: "Unary gRPC calls handled, by method and status code",
  labelNames: ["method", "code"] as const,
  registers: [metricsRegistry],
});

export const grpcServerErrors = new Counter({
  name: "toolplane_grpc_server_errors_total",
  help: "Unary gRPC calls that failed, by method, status code and error class (MODEL or INFRASTRUCTURE)",
  labelNames: ["method", "code", "error_class"] as const,
  registers: [metricsRegistry],
});

export const grpcServerDuration = new Histogram({
  name: "toolplane_grpc_server_duration_seconds",
  help: "Unary gRPC call latency, by method",
  labelNames: ["method"] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

export const toolCalls = new Counter({
  name: "toolplane_tool_calls_total",
  help: "Tool calls, by tool and status (OK, MODEL_ERROR, INFRA_ERROR)",
  labelNames: ["tool", "status"] as const,
  registers: [metricsRegistry],
});

export const toolErrors = new Counter({
  name: "toolplane_tool_errors_total",
  help: "Failed tool calls, by tool and error class",
  labelNames: ["tool", "error_class"] as const,
  registers: [metricsRegistry],
});

export const toolDuration = new Histogram({
  name: "toolplane_tool_duration_seconds",
  help: "Tool call latency from acceptance to result, by tool",
  labelNames: ["tool"] as const,
  buckets: LATENCY_BUCKETS,
  registers: [metricsRegistry],
});

export const queueDepth = new Gauge({
  name: "toolplane_queue_depth",
  help: "Work items waiting, by queue",
  labelNames: ["queue"] as const,
  registers: [metricsRegistry],
});

export const poolSize = new Gauge({
  name: "toolplane_pool_size",
  help: "Pooled resources (sandboxes, isolates, connections), by pool and state (idle, busy, starting)",
  labelNames: ["pool", "state"] as const,
  registers: [metricsRegistry],
});

export const eventsDropped = new Counter({
  name: "toolplane_events_dropped_total",
  help: "Tool-call events that never reached NATS, by reason (overflow: buffer full while NATS was down; shutdown: not flushed before the stop deadline)",
  labelNames: ["reason"] as const,
  registers: [metricsRegistry],
});

export const eventsBuffered = new Gauge({
  name: "toolplane_events_buffered",
  help: "Tool-call events waiting to be published to NATS",
  registers: [metricsRegistry],
});

const scrapeHooks: Array<() => void> = [];

/**
 * Runs fn before every scrape, for gauges read from state rather than updated
 * as it changes (e.g. `queueDepth.set({queue}, limiter.stats.queued)`).
 */
export function onScrape(fn: () => void): void {
  scrapeHooks.push(fn);
}

/** Records one finished tool call (used by the gateway). */
export function observeToolCall(
  tool: string,
  status: "OK" | "MODEL_ERROR" | "INFRA_ERROR",
  seconds: number,
  errorClass?: "MODEL" | "INFRASTRUCTURE",
): void {
  toolCalls.inc({ tool, status });
  if (errorClass !== undefined) toolErrors.inc({ tool, error_class: errorClass });
  toolDuration.observe({ tool }, seconds);
}

/** Feeds the toolplane_tool_* metrics from the gateway's finished events. */
export class MetricsCallObserver {
  onEvent(event: ToolCallEvent): void {
    if (event.phase !== "finished" || event.status === undefined) return;
    observeToolCall(event.tool, event.status, (event.durationMs ?? 0) / 1000, event.errorClass);
  }

  async stop(): Promise<void> {}
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** Serves GET /metrics in the Prometheus text format; any other path is 404. */
export async function startMetricsServer(host: string, port: number, logger: Logger): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    if (request.method !== "GET" || request.url?.split("?")[0] !== "/metrics") {
      response.writeHead(404, { "content-type": "text/plain" }).end("only GET /metrics is served here\n");
      return;
    }
    for (const hook of scrapeHooks) {
      try {
        hook();
      } catch (error) {
        logger.warn({ err: error }, "metrics scrape hook failed");
      }
    }
    metricsRegistry.metrics().then(
      (body) => response.writeHead(200, { "content-type": metricsRegistry.contentType }).end(body),
      (error: unknown) => {
        logger.error({ err: error }, "metrics collection failed");
        response.writeHead(500, { "content-type": "text/plain" }).end("metrics collection failed\n");
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => resolve());
  });
  const address = server.address();
  const boundPort = typeof address === "object" && address ? address.port : port;
  logger.info({ address: `${host}:${boundPort}`, path: "/metrics" }, "metrics listening");
  return {
    port: boundPort,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
