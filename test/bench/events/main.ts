import { jetstream } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { createLogger, NatsCallObserver, type ToolCallEvent } from "../../../services/runtime/src/index.js";
import { spawnNats } from "../../support/processes.js";

/**
 * Cost of tool-call events. Figures: (1) time onEvent takes on the call path,
 * (2) events/s the NatsCallObserver gets acknowledged by JetStream, compared
 * with the baseline of the same publishes made directly with js.publish, one
 * awaited ack at a time (what ordered, acknowledged delivery costs at minimum),
 * and with all publishes in flight at once (unordered upper bound).
 * `--quick` runs a tiny count to prove it works.
 */
const quick = process.argv.includes("--quick");
const count = quick ? 200 : 20_000;
const logger = createLogger("bench-events", "silent");

function event(index: number): ToolCallEvent {
  return {
    phase: index % 2 === 0 ? "started" : "finished",
    callId: `call-${Math.floor(index / 2)}`,
    trajectoryId: `traj-${index % 64}`,
    rolloutId: "rollout-1",
    step: index % 16,
    tool: "image_zoom_in_tool",
    argumentsDigest: "9f".repeat(32),
    inputImages: ["ab".repeat(32)],
    outputImages: index % 2 === 0 ? [] : ["cd".repeat(32)],
    startedAtMs: Date.now(),
    ...(index % 2 === 0 ? {} : { status: "OK" as const, queueMs: 1, durationMs: 20 }),
  };
}

const nats = await spawnNats();
try {
  const events = Array.from({ length: count }, (_, index) => event(index));
  const observer = new NatsCallObserver({
    url: nats.url,
    jetStream: true,
    bufferLimit: count,
    publishTimeoutMs: 10_000,
    limits: { maxAgeSeconds: 3600, maxBytes: 1024 ** 3, maxMessages: 10_000_000 },
    logger,
  });
  await observer.ready();
  const enqueueStarted = performance.now();
  for (const item of events) observer.onEvent(item);
  const enqueueMs = performance.now() - enqueueStarted;
  const drainStarted = performance.now();
  await observer.stop(120_000);
  const observerMs = performance.now() - drainStarted + enqueueMs;

  const connection = await connect({ servers: nats.url });
  const js = jetstream(connection);
  const sequentialStarted = performance.now();
  for (const [index, item] of events.entries())
    await js.publish("toolplane.calls.bench.sequential", JSON.stringify(item), { msgID: `s${index}` });
  const sequentialMs = performance.now() - sequentialStarted;
  const parallelStarted = performance.now();
  await Promise.all(
    events.map((item, index) =>
      js.publish("toolplane.calls.bench.parallel", JSON.stringify(item), { msgID: `p${index}` }),
    ),
  );
  const parallelMs = performance.now() - parallelStarted;
  await connection.close();

  const rate = (ms: number) => Math.round((count / ms) * 1000);
  process.stdout.write(`events: ${count}${quick ? " (quick: figures not meaningful)" : ""}\n`);
  process.stdout.write(`onEvent on the call path: ${((enqueueMs * 1000) / count).toFixed(2)} µs per event\n`);
  process.stdout.write(`NatsCallObserver, ordered + acked: ${rate(observerMs)} events/s\n`);
  process.stdout.write(`baseline js.publish, one ack at a time: ${rate(sequentialMs)} events/s\n`);
  process.stdout.write(`js.publish, all in flight (unordered bound): ${rate(parallelMs)} events/s\n`);
  process.stdout.write(`ratio observer / sequential baseline: ${(sequentialMs / observerMs).toFixed(2)}\n`);
} finally {
  await nats.stop();
}
