import { type Attributes, type Span, SpanStatusCode, trace } from "@opentelemetry/api";
import { errorMessage } from "./error-message.js";

/**
 * Tracing. Off unless an OTLP endpoint is configured with the standard
 * variables (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT;
 * OTEL_SERVICE_NAME names the service; OTEL_TRACES_EXPORTER=none or
 * OTEL_SDK_DISABLED=true turn it off). Spans go out over OTLP/gRPC.
 *
 * This module must not import @grpc/grpc-js (directly or through another
 * runtime module): telemetry-register.ts loads it before the gRPC
 * instrumentation has patched grpc-js. Helpers below work whether or not the
 * SDK runs; without it they produce no-op spans.
 */

export const TRACER_NAME = "toolplane";

export const SpanAttribute = {
  tool: "toolplane.tool",
  trajectoryId: "toolplane.trajectory_id",
  rolloutId: "toolplane.rollout_id",
  step: "toolplane.step",
  errorClass: "toolplane.error_class",
} as const;

/** Stages a service reports as child spans of the call's server span. */
export type Stage =
  | "queue_wait"
  | "sandbox_execute"
  | "restore"
  | "provider_request"
  | "cache"
  | "image_decode"
  | "image_pipeline";

export interface CallSpanAttributes {
  tool?: string;
  trajectoryId?: string;
  rolloutId?: string;
  step?: number;
}

export function callAttributes(call: CallSpanAttributes): Attributes {
  const attributes: Attributes = {};
  if (call.tool !== undefined) attributes[SpanAttribute.tool] = call.tool;
  if (call.trajectoryId !== undefined) attributes[SpanAttribute.trajectoryId] = call.trajectoryId;
  if (call.rolloutId !== undefined) attributes[SpanAttribute.rolloutId] = call.rolloutId;
  if (call.step !== undefined) attributes[SpanAttribute.step] = call.step;
  return attributes;
}

export function telemetryEnabled(env: NodeJS.ProcessEnv = process.env): boolean {
  if ((env.OTEL_SDK_DISABLED ?? "").toLowerCase() === "true") return false;
  const exporters = (env.OTEL_TRACES_EXPORTER ?? "otlp").split(",").map((name) => name.trim());
  if (!exporters.includes("otlp")) return false;
  return Boolean(env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || env.OTEL_EXPORTER_OTLP_ENDPOINT);
}

interface RunningSdk {
  shutdown(): Promise<void>;
}

let running: RunningSdk | undefined;

/**
 * Starts the OpenTelemetry NodeSDK (W3C trace-context propagation, gRPC
 * instrumentation, batched OTLP/gRPC export) once per process. For the gRPC
 * instrumentation to see grpc-js, call this from the preload
 * (telemetry-register.js), not from a main that has already imported grpc-js.
 * The SDK packages are imported only when tracing is on, so a service without
 * tracing does not pay their start-up cost.
 */
export async function startTelemetry(env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  if (running !== undefined) return true;
  if (!telemetryEnabled(env)) return false;
  const { GrpcInstrumentation } = await import("@opentelemetry/instrumentation-grpc");
  // Constructing the instrumentation installs its module hooks; the exporter (which loads grpc-js) comes after.
  const grpcInstrumentation = new GrpcInstrumentation({
    // Health probes and reflection are noise in a trace of tool calls.
    ignoreGrpcMethods: [/^Check$/, /^Watch$/, /^ServerReflectionInfo$/],
  });
  const [{ NodeSDK }, { OTLPTraceExporter }, { BatchSpanProcessor }] = await Promise.all([
    import("@opentelemetry/sdk-node"),
    import("@opentelemetry/exporter-trace-otlp-grpc"),
    import("@opentelemetry/sdk-trace-base"),
  ]);
  const sdk = new NodeSDK({
    spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter())],
    instrumentations: [grpcInstrumentation],
  });
  sdk.start();
  running = sdk;
  return true;
}

/** Flushes pending spans and stops the SDK; a no-op when tracing is off. Called by runMain on shutdown. */
export async function shutdownTelemetry(): Promise<void> {
  const sdk = running;
  running = undefined;
  await sdk?.shutdown();
}

/** Duck-typed so this module stays free of errors.ts (which imports grpc-js). */
function errorClassOf(error: unknown): string {
  if (typeof error === "object" && error !== null && "errorClass" in error) {
    const value = (error as { errorClass: unknown }).errorClass;
    if (value === "MODEL" || value === "INFRASTRUCTURE") return value;
  }
  return "INFRASTRUCTURE";
}

/** Marks a span failed with the error and its class. */
export function recordSpanError(span: Span, error: unknown): void {
  span.recordException(error instanceof Error ? error : new Error(String(error)));
  span.setAttribute(SpanAttribute.errorClass, errorClassOf(error));
  span.setStatus({ code: SpanStatusCode.ERROR, message: errorMessage(error) });
}

/**
 * Runs fn inside a new active span (child of the current one): calls made in
 * fn, including gRPC calls to other services, are its children. A throw marks
 * the span failed with the error class and is rethrown.
 */
export async function withSpan<T>(name: string, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  return trace.getTracer(TRACER_NAME).startActiveSpan(name, { attributes }, async (span) => {
    try {
      return await fn(span);
    } catch (error) {
      recordSpanError(span, error);
      throw error;
    } finally {
      span.end();
    }
  });
}

/** A stage of a call (`toolplane.<stage>`) as a child span around fn. */
export function withStage<T>(stage: Stage, attributes: Attributes, fn: (span: Span) => Promise<T>): Promise<T> {
  return withSpan(`toolplane.${stage}`, attributes, fn);
}

/**
 * Starts a stage span the caller ends itself, for stages that do not wrap one
 * function (a queue wait starts at enqueue and ends at dequeue).
 */
export function startStage(stage: Stage, attributes: Attributes = {}): Span {
  return trace.getTracer(TRACER_NAME).startSpan(`toolplane.${stage}`, { attributes });
}

/** pino mixin: the active trace and span ids on every log line written inside a span. */
export function traceLogFields(): Record<string, string> {
  const spanContext = trace.getActiveSpan()?.spanContext();
  if (spanContext === undefined || !trace.isSpanContextValid(spanContext)) return {};
  return { trace_id: spanContext.traceId, span_id: spanContext.spanId };
}

/** How a tool call ended, as its span records it. */
export interface ToolCallSpanOutcome {
  status: "OK" | "MODEL_ERROR" | "INFRA_ERROR";
  errorClass?: "MODEL" | "INFRASTRUCTURE";
  errorMessage?: string;
}

/**
 * Runs one tool call inside a `toolplane.tool_call` span that is the active
 * span while it runs, so the admission wait and the calls to the services are
 * its children. A call that fails as a result (not by throwing) says so
 * through `outcomeOf`: its status and error class go on the span.
 */
export function withToolCallSpan<T>(
  attributes: Attributes,
  fn: () => Promise<T>,
  outcomeOf: (result: T) => ToolCallSpanOutcome,
): Promise<T> {
  return withSpan("toolplane.tool_call", attributes, async (span) => {
    const result = await fn();
    const outcome = outcomeOf(result);
    span.setAttribute("toolplane.status", outcome.status);
    if (outcome.errorClass !== undefined) {
      span.setAttribute(SpanAttribute.errorClass, outcome.errorClass);
      span.setStatus({ code: SpanStatusCode.ERROR, message: outcome.errorMessage ?? outcome.status });
    }
    return result;
  });
}
