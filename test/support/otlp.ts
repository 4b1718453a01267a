import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { createInterface } from "node:readline";
import {
  loadPackageDefinition,
  Server,
  ServerCredentials,
  type ServerUnaryCall,
  type ServiceDefinition,
  type sendUnaryData,
} from "@grpc/grpc-js";
import { loadSync } from "@grpc/proto-loader";
import { distRoot } from "./processes.js";

/** Helpers for tracing tests: an OTLP/gRPC receiver and services started with the tracing preload. */
const repoRoot = join(distRoot, "..");
const PRELOAD = join(distRoot, "services", "runtime", "src", "telemetry-register.js");

export interface ReceivedSpan {
  service: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: string;
  attributes: Record<string, unknown>;
  statusCode: string;
  /** Nanoseconds since the epoch, as decimal strings (fixed64). */
  startTimeUnixNano: string;
  endTimeUnixNano: string;
}

interface WireKeyValue {
  key: string;
  value: Record<string, unknown> & { value?: string };
}
interface WireSpan {
  traceId: Buffer;
  spanId: Buffer;
  parentSpanId: Buffer;
  name: string;
  kind: string;
  attributes: WireKeyValue[];
  status?: { code: string };
  startTimeUnixNano: string;
  endTimeUnixNano: string;
}
interface WireRequest {
  resourceSpans: Array<{ resource?: { attributes: WireKeyValue[] }; scopeSpans: Array<{ spans: WireSpan[] }> }>;
}

function attributeMap(list: WireKeyValue[]): Record<string, unknown> {
  const map: Record<string, unknown> = {};
  for (const { key, value } of list) {
    const which = value.value;
    map[key] = which === undefined ? undefined : which === "intValue" ? Number(value[which]) : value[which];
  }
  return map;
}

export interface OtlpReceiver {
  port: number;
  /** Every span received so far, in arrival order. */
  spans: ReceivedSpan[];
  stop(): Promise<void>;
}

/** A minimal OTLP/gRPC trace receiver: what a collector or Jaeger would get. */
export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const definition = loadSync(join(repoRoot, "test", "fixtures", "otlp", "trace_service.proto"), {
    enums: String,
    longs: String,
    defaults: true,
    oneofs: true,
  });
  const loaded = loadPackageDefinition(definition) as unknown as {
    opentelemetry: { proto: { collector: { trace: { v1: { TraceService: { service: ServiceDefinition } } } } } };
  };
  const spans: ReceivedSpan[] = [];
  const server = new Server();
  server.addService(loaded.opentelemetry.proto.collector.trace.v1.TraceService.service, {
    Export(call: ServerUnaryCall<WireRequest, unknown>, callback: sendUnaryData<unknown>) {
      for (const resourceSpans of call.request.resourceSpans) {
        const service = String(attributeMap(resourceSpans.resource?.attributes ?? [])["service.name"]);
        for (const scope of resourceSpans.scopeSpans) {
          for (const span of scope.spans) {
            spans.push({
              service,
              traceId: span.traceId.toString("hex"),
              spanId: span.spanId.toString("hex"),
              parentSpanId: span.parentSpanId.toString("hex"),
              name: span.name,
              kind: span.kind,
              attributes: attributeMap(span.attributes),
              statusCode: span.status?.code ?? "STATUS_CODE_UNSET",
              startTimeUnixNano: span.startTimeUnixNano,
              endTimeUnixNano: span.endTimeUnixNano,
            });
          }
        }
      }
      callback(null, {});
    },
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", ServerCredentials.createInsecure(), (error, bound) =>
      error ? reject(error) : resolve(bound),
    ),
  );
  return { port, spans, stop: () => new Promise((resolve) => server.tryShutdown(() => resolve())) };
}

export interface TracedProcess {
  child: ChildProcess;
  address: string;
  output: string[];
  stop(): Promise<number | null>;
}

/**
 * Spawns a compiled main (path relative to dist/) the way a service opts into
 * tracing: `node --import telemetry-register.js main.js`; resolves once it listens.
 */
export async function spawnTraced(main: string, env: Record<string, string>): Promise<TracedProcess> {
  const child = spawn(process.execPath, ["--import", PRELOAD, join(distRoot, main)], {
    env: { ...process.env, TOOLPLANE_GRPC_PORT: "0", TOOLPLANE_LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (line) => output.push(line));
  const address = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${main} did not start:\n${output.join("\n")}`)), 30_000);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${main} exited with ${code}:\n${output.join("\n")}`));
    });
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      output.push(line);
      if (!line.includes('"grpc server listening"')) return;
      clearTimeout(timer);
      resolve((JSON.parse(line) as { address: string }).address);
    });
  });
  return {
    child,
    address,
    output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
      const code = await exited;
      clearTimeout(timer);
      return code;
    },
  };
}

export { waitFor } from "./processes.js";
