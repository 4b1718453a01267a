import { SpanAttribute } from "../../services/runtime/src/telemetry.js";
import { startJaeger } from "./containers.js";
import { startOtlpReceiver } from "./otlp.js";

/** One span of a stored trace, as a trace store's query gives it back. */
export interface StoredSpan {
  traceId: string;
  service: string;
  name: string;
}

/**
 * Where services send their spans in a test, and how a trace is found again by trajectory id: Jaeger all-in-one
 * (OTLP in, its HTTP query API out) in a container, or the test's own OTLP receiver.
 */
export interface TraceStore {
  via: "container" | "local";
  otlpEndpoint: string;
  /** Every span of the traces in which `service` tagged a span with this trajectory id (none yet: []). */
  tracesOfTrajectory(service: string, trajectoryId: string): Promise<StoredSpan[]>;
  stop(): Promise<void>;
}

export async function startLocalTraceStore(): Promise<TraceStore> {
  const receiver = await startOtlpReceiver();
  return {
    via: "local",
    otlpEndpoint: `http://127.0.0.1:${receiver.port}`,
    async tracesOfTrajectory(service, trajectoryId) {
      const traceIds = new Set(
        receiver.spans
          .filter((span) => span.service === service && span.attributes[SpanAttribute.trajectoryId] === trajectoryId)
          .map((span) => span.traceId),
      );
      return receiver.spans
        .filter((span) => traceIds.has(span.traceId))
        .map(({ traceId, service: spanService, name }) => ({ traceId, service: spanService, name }));
    },
    stop: () => receiver.stop(),
  };
}

interface JaegerTraces {
  data: Array<{
    traceID: string;
    spans: Array<{ operationName: string; processID: string }>;
    processes: Record<string, { serviceName: string }>;
  }>;
}

export async function startJaegerTraceStore(): Promise<TraceStore> {
  const jaeger = await startJaeger();
  return {
    via: "container",
    otlpEndpoint: jaeger.otlpEndpoint,
    async tracesOfTrajectory(service, trajectoryId) {
      const query = new URLSearchParams({
        service,
        tags: JSON.stringify({ [SpanAttribute.trajectoryId]: trajectoryId }),
        limit: "20",
      });
      const response = await fetch(`${jaeger.queryUrl}/api/traces?${query}`);
      if (!response.ok) return [];
      const { data } = (await response.json()) as JaegerTraces;
      return (data ?? []).flatMap((trace) =>
        trace.spans.map((span) => ({
          traceId: trace.traceID,
          service: trace.processes[span.processID]?.serviceName ?? "",
          name: span.operationName,
        })),
      );
    },
    stop: () => jaeger.stop(),
  };
}
