import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import sharp from "sharp";
import { ErrorClass } from "../../generated/toolplane/common/v1/common.js";
import {
  ExecuteRequest,
  ImageDelivery,
  ToolGatewayClient,
  type ToolResult,
} from "../../generated/toolplane/gateway/v1/gateway.js";
import { CALLS_STREAM } from "../../services/runtime/src/events.js";
import { createClient, invoke, ToolplaneError } from "../../services/runtime/src/index.js";
import { rssKb } from "../support/proc.js";
import { type SpawnedNats, type SpawnedService, spawnNats, spawnService } from "../support/processes.js";

/**
 * `make soak`: 10,000 mixed tool calls at 128 concurrency through the gateway,
 * loopback only, with NATS JetStream events on. Prints errors by class, p50/p99
 * and each service's RSS at start and end, then checks that every call left
 * exactly its two events (started, finished) in the stream. Exits non-zero on
 * a lost event or an unexpected error.
 */
const argument = (name: string, fallback: number) => {
  const found = process.argv.find((arg) => arg.startsWith(`--${name}=`));
  return found ? Number(found.split("=")[1]) : fallback;
};
const quick = process.argv.includes("--quick");
const CALLS = argument("calls", quick ? 200 : 10_000);
const CONCURRENCY = argument("concurrency", quick ? 16 : 128);
const SESSIONS = 64;

const rssMb = (pid: number | undefined): number => (pid === undefined ? 0 : rssKb(pid) / 1024);

const nats: SpawnedNats = await spawnNats();
const services: Record<string, SpawnedService> = {};
for (const name of ["image", "code", "search"]) services[name] = await spawnService(name);
const gateway = await spawnService("gateway", {
  TOOLPLANE_NATS_URL: nats.url,
  TOOLPLANE_IMAGE_ADDR: services.image?.address ?? "",
  TOOLPLANE_CODE_ADDR: services.code?.address ?? "",
  TOOLPLANE_SEARCH_ADDR: services.search?.address ?? "",
});
services.gateway = gateway;

const client = createClient(ToolGatewayClient, gateway.address);
const photo = await sharp({ create: { width: 1024, height: 768, channels: 3, background: { r: 40, g: 160, b: 90 } } })
  .png()
  .toBuffer();
const sessions: string[] = [];
for (let i = 0; i < SESSIONS; i++) {
  const session = await invoke(client, client.createSession, {
    rolloutId: "soak",
    trajectoryId: `soak-${i}`,
    images: [{ data: photo, mimeType: "", width: 0, height: 0 }],
    idleTtlSeconds: 600,
  });
  sessions.push(session.sessionId);
}

const rssStart = Object.fromEntries(Object.entries(services).map(([name, s]) => [name, rssMb(s.child.pid)]));

const MIX = [
  { name: "image_zoom_in_tool", args: (i: number) => ({ bbox_2d: [i % 500, 10, (i % 500) + 200, 300], label: "x" }) },
  { name: "code", args: (i: number) => ({ code: `total = globals().get('total', 0) + ${i}\nprint(total % 97)` }) },
  { name: "search", args: (i: number) => ({ query: `image processing ${i % 50}` }) },
  { name: "image_process", args: () => ({ operations: [{ rotate: { angle_degrees: 90 } }, { grayscale: {} }] }) },
];

const latencies: number[] = [];
const errors = { MODEL: 0, INFRASTRUCTURE: 0 };
const samples: string[] = [];
let overloaded = 0;
let next = 0;

async function oneCall(index: number): Promise<void> {
  const tool = MIX[index % MIX.length] as (typeof MIX)[number];
  const request = ExecuteRequest.fromPartial({
    sessionId: sessions[index % SESSIONS],
    call: { callId: `c${index}`, name: tool.name, argumentsJson: JSON.stringify(tool.args(index)) },
    imageDelivery: ImageDelivery.IMAGE_DELIVERY_REFERENCE,
    timeoutMs: 60_000,
    step: index,
  });
  const started = performance.now();
  for (;;) {
    let result: ToolResult | undefined;
    try {
      result = (await invoke(client, client.execute, request)).result;
    } catch (error) {
      if (error instanceof ToolplaneError && error.code === 8 && error.retryable) {
        overloaded += 1;
        await new Promise((resolve) => setTimeout(resolve, error.retryAfterMs ?? 20));
        continue;
      }
      errors.INFRASTRUCTURE += 1;
      if (samples.length < 5) samples.push(`${tool.name}: ${String(error)}`);
      return;
    }
    latencies.push(performance.now() - started);
    if (result?.error) {
      errors[result.error.errorClass === ErrorClass.ERROR_CLASS_MODEL ? "MODEL" : "INFRASTRUCTURE"] += 1;
      if (samples.length < 5) samples.push(`${tool.name}: ${result.error.code} ${result.error.message}`);
    }
    return;
  }
}

const started = performance.now();
await Promise.all(
  Array.from({ length: CONCURRENCY }, async () => {
    for (;;) {
      const index = next++;
      if (index >= CALLS) return;
      await oneCall(index);
    }
  }),
);
const seconds = (performance.now() - started) / 1000;
const rssEnd = Object.fromEntries(Object.entries(services).map(([name, s]) => [name, rssMb(s.child.pid)]));

for (const sessionId of sessions) await invoke(client, client.closeSession, { sessionId }).catch(() => undefined);
client.close();
// Stopping the gateway flushes its event buffer.
await gateway.stop();

const connection = await connect({ servers: nats.url });
const manager = await jetstreamManager(connection);
const stored = (await manager.streams.info(CALLS_STREAM)).state.messages;
await connection.close();
const expectedEvents = CALLS * 2;

const sorted = [...latencies].sort((a, b) => a - b);
const at = (fraction: number) => sorted[Math.min(sorted.length - 1, Math.round(fraction * (sorted.length - 1)))] ?? 0;
const report = {
  calls: CALLS,
  concurrency: CONCURRENCY,
  seconds: Number(seconds.toFixed(1)),
  calls_per_second: Number((CALLS / seconds).toFixed(1)),
  p50_ms: Number(at(0.5).toFixed(2)),
  p99_ms: Number(at(0.99).toFixed(2)),
  errors_by_class: errors,
  error_samples: samples,
  overloaded_retries: overloaded,
  events: { expected: expectedEvents, stored, lost: expectedEvents - stored },
  rss_mb: Object.fromEntries(
    Object.keys(rssStart).map((name) => [
      name,
      { start: Number(rssStart[name]?.toFixed(1)), end: Number(rssEnd[name]?.toFixed(1)) },
    ]),
  ),
};
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);

for (const service of [services.search, services.code, services.image]) await service?.stop();
await nats.stop();
const unexpected = errors.MODEL + errors.INFRASTRUCTURE;
process.exit(unexpected === 0 && stored >= expectedEvents ? 0 : 1);
