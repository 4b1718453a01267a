import assert from "node:assert/strict";
import { mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import { Language, Restored_Reason } from "../../generated/toolplane/code/v1/code.js";
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
