import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Objm } from "@nats-io/obj";
import { connect } from "@nats-io/transport-node";
import sharp from "sharp";
import { Language, Restored_Reason } from "../../generated/toolplane/code/v1/code.js";
import { NatsCheckpointStore } from "../../services/code/src/nats-checkpoint-store.js";
import { sha256Hex } from "../../services/runtime/src/index.js";
import { assertRpcError, codeClient } from "../support/code.js";
import { type SpawnedNats, type SpawnedService, spawnNats, spawnService } from "../support/processes.js";

const NOT_FOUND = 5;

for (const storeKind of ["disk", "nats"] as const) {
  describe(`code service checkpoints across a restart of the whole service (same ${storeKind} store)`, () => {
    const dir = mkdtempSync(join(tmpdir(), "toolplane-checkpoint-it-"));
    const env: Record<string, string> = { TOOLPLANE_CODE_FORK_POOL_SIZE: "1", TOOLPLANE_CODE_CHECKPOINT_DIR: dir };
    const spawned: SpawnedService[] = [];
    let nats: SpawnedNats | undefined;
    before(async () => {
      if (storeKind === "nats") {
        nats = await spawnNats();
        // The disk directory stays empty: everything must come from JetStream.
        env.TOOLPLANE_NATS_URL = nats.url;
      }
    });
    after(async () => {
      await Promise.all(spawned.map((service) => service.stop()));
      await nats?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it("continues a session by id on a new service process, images and namespace restored", async () => {
      const first = await spawnService("code", env);
      spawned.push(first);
      const api = codeClient(first.address, Language.LANGUAGE_PYTHON, { label: "checkpoint-restart" });
      const png = await sharp({ create: { width: 40, height: 30, channels: 3, background: "#ff8000" } })
        .png()
        .toBuffer();
      const { sessionId } = await api.create({
        images: [{ name: "image_1", image: { data: png, mimeType: "", width: 0, height: 0 } }],
      });
      const setup = await api.execute(
        sessionId,
        "crop = image_1.crop((0, 0, 10, 10))\nscale = lambda v: v * 3\nseen = {'n': 7}",
      );
      assert.equal(setup.error, undefined, setup.stderr);
      // A further cell waits for the first one's checkpoint to be stored.
      assert.equal((await api.execute(sessionId, "None")).error, undefined);
      api.client.close();
      await first.stop();

      const second = await spawnService("code", env);
      spawned.push(second);
      const moved = codeClient(second.address, Language.LANGUAGE_PYTHON, { label: "checkpoint-restart" });
      const response = await moved.execute(
        sessionId,
        "print(crop.size, crop.getpixel((0, 0)), scale(seen['n']), image_1.size)",
      );
      assert.equal(response.error, undefined, response.stderr);
      assert.equal(response.stdout, "(10, 10) (255, 128, 0) 21 (40, 30)\n");
      assert.equal(response.restored?.reason, Restored_Reason.REASON_MOVED);
      assert.equal(response.restored?.complete, true);
      assert.deepEqual(response.restored?.lostNames, []);
      if (storeKind === "nats") assert.deepEqual(readdirSync(dir), [], "nothing was written to the local directory");
      // Closed means gone from the store too: no replica restores it afterwards.
      await moved.close(sessionId);
      await assert.rejects(moved.execute(sessionId, "1"), (error) => assertRpcError(error, NOT_FOUND, "MODEL"));
      moved.client.close();
    });
  });
}

describe("JetStream checkpoint store (real nats-server)", () => {
  let nats: SpawnedNats | undefined;
  let store: NatsCheckpointStore | undefined;
  after(async () => {
    await store?.close();
    await nats?.stop();
  });

  it("stores an input image once for every session that binds it, and forgets only the session on delete", async () => {
    nats = await spawnNats();
    store = await NatsCheckpointStore.connect({ url: nats.url, bucket: "checkpoint_test", maxBytes: 64 * 1024 * 1024 });
    const image = { name: "image_1", data: Buffer.alloc(300_000, 7), mimeType: "image/png", width: 1, height: 1 };
    const record = {
      version: 1 as const,
      language: "python" as const,
      limits: { timeoutMs: 1000, memoryMb: 256, maxOutputBytes: 100, maxImages: 1 },
      idleTtlMs: 1000,
      label: "t",
      images: [{ name: "image_1", mimeType: "image/png", width: 1, height: 1 }],
    };
    const [first, second] = [randomUUID(), randomUUID()];
    await store.save(first, record, [image], Buffer.from("one"));
    await store.save(second, record, [image], Buffer.from("two"));
    const observer = await connect({ servers: nats.url });
    const objects = await new Objm(observer).open("checkpoint_test");
    const names: string[] = [];
    for (const info of await objects.list()) names.push(info.name);
    await observer.close();
    assert.deepEqual(
      names.sort(),
      [`checkpoint.${first}`, `checkpoint.${second}`, `image.${sha256Hex(image.data)}`].sort(),
    );
    const loaded = await store.load(second);
    assert.equal(loaded?.checkpoint.toString(), "two");
    assert.deepEqual(loaded?.images[0]?.data, image.data);
    await store.delete(first);
    assert.equal(await store.load(first), undefined);
    assert.equal((await store.load(second))?.checkpoint.toString(), "two");
  });
});
