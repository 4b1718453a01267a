import assert from "node:assert/strict";
import { describe, it } from "node:test";
import sharp from "sharp";
import { sha256Hex } from "../../runtime/src/index.js";
import { MemoryImageStore } from "./image-store.js";

function png(width: number, height: number, seed = 0): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: { r: seed % 256, g: (seed >> 8) % 256, b: 7 } } })
    .png()
    .toBuffer();
}

describe("image store", () => {
  it("stores by sha256 with size and type, once per content", async () => {
    const store = new MemoryImageStore(10_000_000);
    const data = await png(40, 30);
    const first = await store.put(data);
    assert.equal(first.sha256, sha256Hex(data));
    assert.deepEqual([first.mimeType, first.width, first.height], ["image/png", 40, 30]);
    await store.put(Buffer.from(data));
    assert.equal(store.size.images, 1);
    assert.equal(store.size.bytes, data.length);
  });

  it("rejects bytes that are not an image, naming the field", async () => {
    const store = new MemoryImageStore(1000);
    await assert.rejects(
      store.put(Buffer.from("hello"), { field: "images[0].data" }),
      /images\[0\]\.data does not start like an accepted image/,
    );
    await assert.rejects(store.put(Buffer.alloc(0), { field: "data" }), /data is empty/);
  });

  it("evicts the least recently used unheld images when over its byte limit", async () => {
    const [a, b, c] = (await Promise.all([1, 2, 3].map((seed) => png(64, 64, seed)))) as [Buffer, Buffer, Buffer];
    const limit = a.length + b.length + 10;
    const store = new MemoryImageStore(limit);
    const storedA = await store.put(a);
    const storedB = await store.put(b);
    assert.ok(store.get(storedA.sha256), "touching a makes b the least recently used");
    await store.put(c);
    assert.ok(store.get(storedA.sha256));
    assert.equal(store.get(storedB.sha256), undefined);
    assert.ok(store.size.bytes <= limit);
  });

  it("never evicts an image a session holds; refuses new images instead of exceeding the limit", async () => {
    const [a, b] = (await Promise.all([png(64, 64, 1), png(64, 64, 2)])) as [Buffer, Buffer];
    const store = new MemoryImageStore(a.length + 5);
    const held = await store.put(a, { hold: true });
    await assert.rejects(store.put(b, { hold: true }), (error: Error) => {
      assert.equal(error.name, "ResourceExhaustedError");
      assert.match(error.message, /held by live sessions/);
      return true;
    });
    await assert.rejects(store.put(b), /image store full/, "an unheld image would not fit either");
    assert.ok(store.get(held.sha256), "the held image survives");
    store.release(held.sha256);
    const next = await store.put(b, { hold: true });
    assert.equal(store.get(held.sha256), undefined, "released, the old image was evicted for the new one");
    assert.ok(store.get(next.sha256));
    assert.ok(store.size.bytes <= a.length + 5);
  });

  it("require names the field on a bad or unknown sha256", () => {
    const store = new MemoryImageStore(1000);
    assert.throws(() => store.require("xyz", "images[1].sha256"), /images\[1\]\.sha256 must be 64 lowercase hex/);
    assert.throws(
      () => store.require("a".repeat(64), "sha256"),
      (error: Error) => {
        assert.equal(error.name, "NotFoundError");
        return true;
      },
    );
  });
});
