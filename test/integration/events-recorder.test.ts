import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  canonicalJson,
  createLogger,
  createRecorder,
  DirectoryResultStore,
  NatsCallObserver,
  ObjectStoreResultStore,
  Recorder,
  type RecordKey,
  type ToolCallEvent,
  ToolplaneError,
  TrajectoryJournal,
} from "../../services/runtime/src/index.js";
import { declareVariant, type NatsTarget, natsSkips, startNats } from "../support/containers.js";
import { type Finished, freePort, runExportCli, spawnNats } from "../support/processes.js";

const skips = await natsSkips();
const logger = createLogger("recorder-test", "silent");

function key(tool: string, args: unknown, version = "1"): RecordKey {
  return { tool, canonicalArguments: canonicalJson(args), inputImages: ["ab".repeat(32)], toolVersion: version };
}

/** A result with every byte value, including the ones text encodings would mangle. */
function resultBytes(size: number): Uint8Array {
  const bytes = new Uint8Array(randomBytes(size));
  for (let value = 0; value < 256 && value < size; value++) bytes[value] = value;
  return bytes;
}

function event(trajectoryId: string, index: number, phase: "started" | "finished"): ToolCallEvent {
  return {
    phase,
    callId: `${trajectoryId}-call-${index}`,
    trajectoryId,
    rolloutId: "rollout-1",
    step: index,
    tool: "search",
    argumentsDigest: `d${index}`,
    inputImages: [],
    outputImages: [],
    startedAtMs: 1_700_000_000_000 + index,
    ...(phase === "finished" ? { status: "OK" as const, durationMs: 5 } : {}),
  };
}

/** The CLI, with the recorder's variables cleared unless `env` sets them. */
function runCli(args: string[], env: Record<string, string>): Promise<Finished> {
  return runExportCli(args, { TOOLPLANE_NATS_URL: "", TOOLPLANE_RECORD_DIR: "", ...env });
}

const parseLines = (text: string) =>
  text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as ToolCallEvent);

describe("result recorder on a local directory", () => {
  const dir = mkdtempSync(join(tmpdir(), "toolplane-recordings-"));
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("replays exactly the bytes recorded, keyed by tool, arguments, images and version", async () => {
    const store = new DirectoryResultStore(dir);
    const recording = new Recorder("record", store);
    const zoom = key("image_zoom_in_tool", { bbox_2d: [1, 2, 30, 40] });
    const bytes = resultBytes(300_000);
    assert.equal(await recording.lookup(zoom), undefined, "record mode always runs the tool");
    await recording.record(zoom, bytes);

    const replay = new Recorder("replay", store);
    assert.deepEqual(await replay.lookup(key("image_zoom_in_tool", { bbox_2d: [1, 2, 30, 40] })), bytes);
    assert.equal(await replay.lookup(key("image_zoom_in_tool", { bbox_2d: [1, 2, 30, 41] })), undefined);
    assert.equal(await replay.lookup(key("image_zoom_in_tool", { bbox_2d: [1, 2, 30, 40] }, "2")), undefined);
    // Replay stores nothing, so a replayed run cannot overwrite its own source.
    await replay.record(zoom, new Uint8Array([1, 2, 3]));
    assert.deepEqual(await replay.lookup(zoom), bytes);
  });

  it("does nothing when off", async () => {
    const offDir = mkdtempSync(join(tmpdir(), "toolplane-recordings-off-"));
    try {
      const { recorder, journal } = createRecorder(
        {
          TOOLPLANE_RECORD_MODE: "off",
          TOOLPLANE_RECORD_BACKEND: "auto",
          TOOLPLANE_RECORD_DIR: offDir,
          TOOLPLANE_RECORD_TIMEOUT_MS: 1000,
        },
        logger,
      );
      await recorder.record(key("search", { query: "x" }), new Uint8Array([1]));
      assert.equal(await recorder.lookup(key("search", { query: "x" })), undefined);
      assert.equal(journal, undefined);
      assert.deepEqual(readdirSync(offDir), []);
    } finally {
      rmSync(offDir, { recursive: true, force: true });
    }
  });

  it("a store that cannot be written is an INFRASTRUCTURE error, not a silent loss", async () => {
    const broken = mkdtempSync(join(tmpdir(), "toolplane-recordings-broken-"));
    try {
      // A file where the results directory should be makes every write fail.
      writeFileSync(join(broken, "results"), "not a directory");
      const recorder = new Recorder("record", new DirectoryResultStore(broken));
      await assert.rejects(recorder.record(key("search", { q: 1 }), new Uint8Array([1])), (error: unknown) => {
        assert.ok(error instanceof ToolplaneError);
        assert.equal(error.errorClass, "INFRASTRUCTURE");
        assert.match(error.message, /cannot store recorded result/);
        return true;
      });
    } finally {
      rmSync(broken, { recursive: true, force: true });
    }
  });

  it("journals trajectories and the CLI exports one of them as JSONL", async () => {
    const { journal } = createRecorder(
      {
        TOOLPLANE_RECORD_MODE: "record",
        TOOLPLANE_RECORD_BACKEND: "auto",
        TOOLPLANE_RECORD_DIR: dir,
        TOOLPLANE_RECORD_TIMEOUT_MS: 1000,
      },
      logger,
    );
    assert.ok(journal instanceof TrajectoryJournal);
    const wanted: ToolCallEvent[] = [];
    for (let index = 0; index < 3; index++) {
      for (const phase of ["started", "finished"] as const) {
        const mine = event("traj/A", index, phase);
        wanted.push(mine);
        journal.onEvent(mine);
        journal.onEvent(event("traj-B", index, phase));
      }
    }
    await journal.stop();
    const exported = await runCli(["traj/A"], { TOOLPLANE_RECORD_DIR: dir });
    assert.equal(exported.code, 0, exported.stderr);
    assert.deepEqual(parseLines(exported.stdout), wanted);

    const missing = await runCli(["no-such-trajectory"], { TOOLPLANE_RECORD_DIR: dir });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no calls found for trajectory "no-such-trajectory"/);
    const usage = await runCli([], { TOOLPLANE_RECORD_DIR: dir });
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /usage: export-trajectory <trajectory-id>/);
  });
});

describe("result recorder and export on NATS (real nats-server with JetStream)", () => {
  let nats: NatsTarget;
  before(async () => {
    nats = await startNats();
  });
  after(async () => {
    await nats?.stop();
  });

  declareVariant("NATS", skips, () => nats?.via);

  it("replays byte-identical results from the JetStream object store, large ones included", async () => {
    const record = createRecorder(
      {
        TOOLPLANE_RECORD_MODE: "record",
        TOOLPLANE_RECORD_BACKEND: "auto",
        TOOLPLANE_RECORD_DIR: join(tmpdir(), "unused"),
        TOOLPLANE_RECORD_TIMEOUT_MS: 5_000,
        TOOLPLANE_NATS_URL: nats.url,
      },
      logger,
    );
    assert.equal(record.journal, undefined, "with NATS the calls stream is the journal");
    const small = key("search", { query: "cats" });
    const large = key("code", { code: "plt.show()" });
    const smallBytes = resultBytes(1_000);
    const largeBytes = resultBytes(3 * 1024 * 1024);
    await record.recorder.record(small, smallBytes);
    await record.recorder.record(large, largeBytes);
    await record.recorder.close();

    const replay = new Recorder("replay", new ObjectStoreResultStore(nats.url, 5_000));
    try {
      assert.deepEqual(await replay.lookup(small), smallBytes);
      assert.deepEqual(await replay.lookup(large), largeBytes);
      assert.equal(await replay.lookup(key("search", { query: "dogs" })), undefined);
    } finally {
      await replay.close();
    }
  });

  it("replay against an unreachable NATS fails as INFRASTRUCTURE instead of missing", async () => {
    const port = await freePort();
    const replay = new Recorder("replay", new ObjectStoreResultStore(`nats://127.0.0.1:${port}`, 300));
    try {
      await assert.rejects(replay.lookup(key("search", { query: "cats" })), (error: unknown) => {
        assert.ok(error instanceof ToolplaneError);
        assert.equal(error.errorClass, "INFRASTRUCTURE");
        assert.match(error.message, /recorded results unreachable/);
        return true;
      });
    } finally {
      await replay.close();
    }
  });

  it("a recorder started while NATS was down uses it once it is up", async () => {
    const port = await freePort();
    const url = `nats://127.0.0.1:${port}`;
    const recorder = new Recorder("record", new ObjectStoreResultStore(url, 1_000));
    const late = key("search", { query: "late" });
    const bytes = resultBytes(2_000);
    try {
      await assert.rejects(recorder.record(late, bytes), (error: unknown) => {
        assert.ok(error instanceof ToolplaneError);
        assert.equal(error.errorClass, "INFRASTRUCTURE");
        return true;
      });
      const started = await spawnNats(port);
      try {
        await recorder.record(late, bytes);
        const replay = new Recorder("replay", new ObjectStoreResultStore(url, 5_000));
        assert.deepEqual(await replay.lookup(late), bytes);
        await replay.close();
      } finally {
        await started.stop();
      }
    } finally {
      await recorder.close();
    }
  });

  it("the CLI exports one trajectory's calls from the TOOLPLANE_CALLS stream", async () => {
    const events = new NatsCallObserver({
      url: nats.url,
      jetStream: true,
      bufferLimit: 1000,
      publishTimeoutMs: 2_000,
      limits: { maxAgeSeconds: 600, maxBytes: 1024 * 1024, maxMessages: 1000 },
      logger,
    });
    const wanted: ToolCallEvent[] = [];
    for (let index = 0; index < 4; index++) {
      for (const phase of ["started", "finished"] as const) {
        wanted.push(event("traj-stream-A", index, phase));
        events.onEvent(event("traj-stream-A", index, phase));
        events.onEvent(event("traj-stream-B", index, phase));
      }
    }
    await events.stop(10_000);
    const exported = await runCli(["traj-stream-A"], { TOOLPLANE_NATS_URL: nats.url });
    assert.equal(exported.code, 0, exported.stderr);
    assert.deepEqual(parseLines(exported.stdout), wanted);
    const missing = await runCli(["traj-none"], { TOOLPLANE_NATS_URL: nats.url });
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no calls found/);
  });
});
