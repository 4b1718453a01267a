import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, nanos } from "@nats-io/transport-node";
import {
  CALLS_STREAM,
  createCallObserver,
  createLogger,
  eventsDropped,
  LoggingCallObserver,
  NatsCallObserver,
  type StreamLimits,
  type ToolCallEvent,
} from "../../services/runtime/src/index.js";
import { declareVariant, type NatsTarget, natsSkips, startNats } from "../support/containers.js";
import { freePort, type SpawnedNats, spawnNats } from "../support/processes.js";

const skips = await natsSkips();
const logger = createLogger("events-test", "silent");
const LIMITS: StreamLimits = { maxAgeSeconds: 3600, maxBytes: 16 * 1024 * 1024, maxMessages: 5000 };
const TOOLS = ["image_zoom_in_tool", "code.python", "search"];

function callEvents(index: number, trajectoryId = "traj-1"): [ToolCallEvent, ToolCallEvent] {
  const tool = TOOLS[index % TOOLS.length] ?? "search";
  const base = {
    callId: `call-${index}`,
    trajectoryId,
    rolloutId: "rollout-1",
    step: index,
    tool,
    argumentsDigest: `digest-${index}`,
    inputImages: [`in-${index}`],
    startedAtMs: 1_700_000_000_000 + index,
  };
  return [
    { ...base, phase: "started", outputImages: [] },
    {
      ...base,
      phase: "finished",
      outputImages: [`out-${index}`],
      status: index % 5 === 4 ? "MODEL_ERROR" : "OK",
      ...(index % 5 === 4 ? { errorClass: "MODEL", errorCode: "INVALID_ARGUMENT", errorMessage: "bad bbox" } : {}),
      queueMs: 1,
      durationMs: 12,
    },
  ];
}

function observer(url: string, bufferLimit = 10_000): NatsCallObserver {
  return new NatsCallObserver({ url, jetStream: true, bufferLimit, publishTimeoutMs: 1_000, limits: LIMITS, logger });
}

/** Reads the whole stream by sequence: independent of the code under test's consumer. */
async function readStream(url: string): Promise<Array<{ subject: string; event: ToolCallEvent }>> {
  const connection = await connect({ servers: url });
  try {
    const jsm = await jetstreamManager(connection);
    const { state } = await jsm.streams.info(CALLS_STREAM);
    const stored: Array<{ subject: string; event: ToolCallEvent }> = [];
    for (let seq = state.first_seq; seq <= state.last_seq && state.messages > 0; seq++) {
      const message = await jsm.streams.getMessage(CALLS_STREAM, { seq });
      if (message) stored.push({ subject: message.subject, event: message.json<ToolCallEvent>() });
    }
    return stored;
  } finally {
    await connection.close();
  }
}

function dropped(reason: "overflow" | "shutdown"): Promise<number> {
  return eventsDropped.get().then((metric) => metric.values.find((v) => v.labels.reason === reason)?.value ?? 0);
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

const expectedSubject = (event: ToolCallEvent) => `toolplane.calls.${event.tool.replace(".", "_")}.${event.phase}`;

describe("NATS call events (real nats-server with JetStream)", () => {
  const cleanups: Array<() => Promise<unknown>> = [];
  after(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  // Where NATS runs does not matter to this test and the core NATS one; the tests that kill, stop or restart it
  // use a local nats-server.
  let natsVia: NatsTarget["via"] | undefined;

  it("publishes every event in order, with its fields, to toolplane.calls.<tool>.<phase> in a bounded stream", async () => {
    const nats = await startNats();
    natsVia = nats.via;
    cleanups.push(() => nats.stop());
    const events = observer(nats.url);
    await events.ready();
    const sent: ToolCallEvent[] = [];
    for (let index = 0; index < 25; index++) {
      for (const event of callEvents(index)) {
        events.onEvent(event);
        sent.push(event);
      }
    }
    await waitFor(() => events.pending === 0, "events to be acknowledged");
    // A re-send of an already stored event (same callId and phase) is de-duplicated by msgID.
    events.onEvent(sent[0] as ToolCallEvent);
    await waitFor(() => events.pending === 0, "the duplicate to be acknowledged");
    await events.stop();

    const stored = await readStream(nats.url);
    assert.equal(stored.length, sent.length);
    stored.forEach(({ subject, event }, index) => {
      assert.deepEqual(event, sent[index]);
      assert.equal(subject, expectedSubject(event));
    });

    const connection = await connect({ servers: nats.url });
    const info = await (await jetstreamManager(connection)).streams.info(CALLS_STREAM);
    await connection.close();
    assert.deepEqual(info.config.subjects, ["toolplane.calls.>"]);
    assert.equal(info.config.max_msgs, LIMITS.maxMessages);
    assert.equal(info.config.max_bytes, LIMITS.maxBytes);
    assert.equal(info.config.max_age, nanos(LIMITS.maxAgeSeconds * 1000));
  });

  declareVariant("NATS", skips, () => natsVia);

  it("loses no event when nats-server is killed and restarted (same port and store) mid-run", async () => {
    const port = await freePort();
    const storeDir = mkdtempSync(join(tmpdir(), "toolplane-nats-restart-"));
    cleanups.push(async () => rmSync(storeDir, { recursive: true, force: true }));
    let nats: SpawnedNats = await spawnNats(port, storeDir);
    cleanups.push(() => nats.stop());
    const events = observer(nats.url);
    await events.ready();
    const sent: ToolCallEvent[] = [];
    const emit = (index: number) => {
      for (const event of callEvents(index)) {
        events.onEvent(event);
        sent.push(event);
      }
    };
    for (let index = 0; index < 30; index++) {
      emit(index);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await nats.stop("SIGKILL");
    // Calls go on while NATS is down: onEvent neither throws nor blocks.
    for (let index = 30; index < 60; index++) emit(index);
    assert.ok(events.pending > 0, "events wait in the buffer while NATS is down");
    nats = await spawnNats(port, storeDir);
    for (let index = 60; index < 90; index++) {
      emit(index);
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    await waitFor(() => events.pending === 0, "the buffer to drain after the restart");
    await events.stop();

    const stored = await readStream(nats.url);
    assert.deepEqual(
      stored.map(({ event }) => `${event.callId}.${event.phase}`),
      sent.map((event) => `${event.callId}.${event.phase}`),
      "every event exactly once, in emission order",
    );
  });

  it("drops the oldest events when the buffer overflows, counts them, and sends the rest once NATS is up", async () => {
    const port = await freePort();
    const url = `nats://127.0.0.1:${port}`;
    const events = observer(url, 5);
    const overflowBefore = await dropped("overflow");
    const sent: ToolCallEvent[] = [];
    for (let index = 0; index < 6; index++) {
      for (const event of callEvents(index, "traj-overflow")) {
        events.onEvent(event);
        sent.push(event);
      }
    }
    assert.equal(events.pending, 5);
    assert.equal((await dropped("overflow")) - overflowBefore, 7);

    const nats = await spawnNats(port);
    cleanups.push(() => nats.stop());
    await events.ready();
    await waitFor(() => events.pending === 0, "the kept events to be published");
    await events.stop();
    const stored = await readStream(url);
    assert.deepEqual(
      stored.map(({ event }) => event),
      sent.slice(-5),
      "the five newest events, in order",
    );
  });

  it("never drops the event whose publish is in flight when the buffer overflows", async () => {
    const nats = await spawnNats();
    cleanups.push(async () => {
      nats.child.kill("SIGCONT");
      await nats.stop();
    });
    const events = observer(nats.url, 3);
    await events.ready();
    const [warmUp] = callEvents(100, "traj-inflight");
    events.onEvent(warmUp);
    await waitFor(() => events.pending === 0, "the stream to exist");
    // A paused server keeps the first publish waiting for its ack while more events arrive.
    nats.child.kill("SIGSTOP");
    const sent = [
      ...callEvents(0, "traj-inflight"),
      ...callEvents(1, "traj-inflight"),
      ...callEvents(2, "traj-inflight"),
    ];
    const overflowBefore = await dropped("overflow");
    for (const event of sent) events.onEvent(event);
    assert.equal((await dropped("overflow")) - overflowBefore, 3);
    nats.child.kill("SIGCONT");
    await waitFor(() => events.pending === 0, "the kept events to be published");
    await events.stop();
    assert.deepEqual(
      (await readStream(nats.url)).map(({ event }) => `${event.callId}.${event.phase}`),
      [warmUp, sent[0], sent[4], sent[5]].map((event) => `${event?.callId}.${event?.phase}`),
      "the in-flight event and the two newest, each once",
    );
  });

  it("stop() gives up at its deadline when NATS stays down and counts what it could not send", async () => {
    const port = await freePort();
    const events = observer(`nats://127.0.0.1:${port}`);
    const shutdownBefore = await dropped("shutdown");
    for (const event of callEvents(1, "traj-stop")) events.onEvent(event);
    await events.stop(200);
    assert.equal(events.pending, 0);
    assert.equal((await dropped("shutdown")) - shutdownBefore, 2);
    // After stop, events are refused quietly (counted), never thrown.
    events.onEvent(callEvents(2, "traj-stop")[0]);
    assert.equal((await dropped("shutdown")) - shutdownBefore, 3);
  });

  it("publishes with core NATS when JetStream is turned off", async () => {
    const nats = await startNats();
    cleanups.push(() => nats.stop());
    const subscriber = await connect({ servers: nats.url });
    cleanups.push(() => subscriber.close());
    const subscription = subscriber.subscribe("toolplane.calls.>", { max: 4 });
    await subscriber.flush();
    const received: Array<{ subject: string; event: ToolCallEvent }> = [];
    const done = (async () => {
      for await (const message of subscription) received.push({ subject: message.subject, event: message.json() });
    })();
    const events = createCallObserver(
      {
        TOOLPLANE_NATS_URL: nats.url,
        TOOLPLANE_EVENTS_JETSTREAM: false,
        TOOLPLANE_EVENTS_BUFFER: 100,
        TOOLPLANE_EVENTS_PUBLISH_TIMEOUT_MS: 1_000,
        TOOLPLANE_EVENTS_MAX_AGE_S: 60,
        TOOLPLANE_EVENTS_MAX_BYTES: 1024 * 1024,
        TOOLPLANE_EVENTS_MAX_MSGS: 1000,
      },
      logger,
    );
    const sent = [...callEvents(0, "traj-core"), ...callEvents(1, "traj-core")];
    for (const event of sent) events.onEvent(event);
    await done;
    await events.stop();
    assert.deepEqual(
      received.map(({ event }) => event),
      sent,
    );
    assert.deepEqual(
      received.map(({ subject }) => subject),
      sent.map(expectedSubject),
    );
  });

  it("logs instead of publishing when TOOLPLANE_NATS_URL is unset", () => {
    const events = createCallObserver(
      {
        TOOLPLANE_EVENTS_JETSTREAM: true,
        TOOLPLANE_EVENTS_BUFFER: 100,
        TOOLPLANE_EVENTS_PUBLISH_TIMEOUT_MS: 1_000,
        TOOLPLANE_EVENTS_MAX_AGE_S: 60,
        TOOLPLANE_EVENTS_MAX_BYTES: 1024 * 1024,
        TOOLPLANE_EVENTS_MAX_MSGS: 1000,
      },
      logger,
    );
    assert.ok(events instanceof LoggingCallObserver);
    for (const event of callEvents(0)) events.onEvent(event);
  });
});
