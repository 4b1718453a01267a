import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import { CancelledError, DeadlineExceededError, InvalidArgumentError } from "../../runtime/src/index.js";
import { DecodedCache, type DecodedImage, decodedCacheKey } from "./decoded-cache.js";

const live = new AbortController().signal;

/** A decoded image of `bytes` pixel bytes (a 1-pixel-high RGB strip, the byte count rounded down to a pixel). */
function image(bytes: number, fill = 0): DecodedImage {
  const width = Math.max(1, Math.floor(bytes / 3));
  return {
    raster: { kind: "raster", data: Buffer.alloc(width * 3, fill), width, height: 1, channels: 3, shared: true },
    input: {
      width,
      height: 1,
      format: "png",
      channels: 3,
      hasAlpha: false,
      depth: "uchar",
      orientation: 0,
      sizeBytes: 100,
      pages: 1,
    },
  };
}

/** A decode that counts its runs and resolves (or rejects) only when told to. */
function controlledDecode(result: DecodedImage) {
  const pending: Array<{ resolve: (image: DecodedImage) => void; reject: (error: Error) => void }> = [];
  let runs = 0;
  return {
    decode: () => {
      runs += 1;
      return new Promise<DecodedImage>((resolve, reject) => pending.push({ resolve, reject }));
    },
    get runs() {
      return runs;
    },
    succeed: () => pending.shift()?.resolve(result),
    fail: (error: Error) => pending.shift()?.reject(error),
  };
}

/** Lets queued promise callbacks run, so a started decode is registered before the test goes on. */
const settled = () => new Promise<void>((resolve) => setImmediate(resolve));

describe("decoded-image cache", () => {
  it("keys on the sha256 of the bytes", () => {
    const bytes = Buffer.from("the same bytes");
    assert.equal(decodedCacheKey(bytes), decodedCacheKey(Buffer.from("the same bytes")));
    assert.notEqual(decodedCacheKey(bytes), decodedCacheKey(Buffer.from("the same bytez")));
    // Lowercase hex, as the gateway's image store names images: a caller can send the reference instead of the bytes.
    assert.equal(decodedCacheKey(bytes), createHash("sha256").update(bytes).digest("hex"));
  });

  it("decodes on a miss, then serves the held pixels without decoding", async () => {
    const cache = new DecodedCache(1000);
    let decodes = 0;
    const held = image(300);
    const decode = async () => {
      decodes += 1;
      return held;
    };
    assert.equal(cache.peek("a"), undefined);
    assert.equal(await cache.get("a", decode, live), held);
    assert.equal(await cache.get("a", decode, live), held);
    assert.equal(decodes, 1);
    assert.equal(cache.peek("a"), held);
    assert.deepEqual(cache.stats(), { hits: 1, misses: 1, bytes: 300, entries: 1, bypasses: 0 });
  });

  it("admits an image on its n-th sighting; until then calls go without the cache", async () => {
    const cache = new DecodedCache(1000, 2);
    assert.equal(cache.admits("a"), false, "first sighting: read the bytes as without a cache");
    assert.equal(cache.admits("b"), false);
    assert.equal(cache.admits("a"), true, "second sighting: decode for the cache");
    await cache.get("a", async () => image(100), live);
    assert.equal(cache.admits("a"), true, "held: always served");
    assert.equal(cache.admits("b"), true);
    assert.deepEqual(cache.stats(), { hits: 0, misses: 1, bytes: 99, entries: 1, bypasses: 2 });
    assert.equal(new DecodedCache(1000).admits("c"), true, "by default every image is admitted at once");
  });

  it("evicts the least recently used images when the pixel bytes exceed the budget", async () => {
    const cache = new DecodedCache(1000);
    await cache.get("a", async () => image(450), live);
    await cache.get("b", async () => image(450), live);
    await cache.get("a", async () => assert.fail("a is held"), live);
    await cache.get("c", async () => image(450), live);
    assert.ok(cache.peek("a") !== undefined, "a was used last and stays");
    assert.equal(cache.peek("b"), undefined, "b was least recently used and goes");
    assert.ok(cache.peek("c") !== undefined);
    assert.deepEqual(cache.stats(), { hits: 1, misses: 3, bytes: 900, entries: 2, bypasses: 0 });
  });

  it("never holds an image larger than the whole budget, and says so before decoding", async () => {
    const cache = new DecodedCache(1000);
    await cache.get("small", async () => image(600), live);
    assert.equal(cache.fits(1000), true);
    assert.equal(cache.fits(1200), false);
    const big = image(1200);
    assert.equal(await cache.get("big", async () => big, live), big, "the caller still gets its pixels");
    assert.equal(cache.peek("big"), undefined);
    assert.ok(cache.peek("small") !== undefined, "an image that cannot be held evicts nothing");
    assert.equal(cache.stats().bytes, 600);
  });

  it("concurrent misses on the same bytes share one decode", async () => {
    const cache = new DecodedCache(1000);
    const decoding = controlledDecode(image(300));
    const calls = Array.from({ length: 8 }, () => cache.get("a", decoding.decode, live));
    await settled();
    decoding.succeed();
    const results = await Promise.all(calls);
    assert.equal(decoding.runs, 1);
    assert.ok(results.every((result) => result === results[0]));
    assert.deepEqual(cache.stats(), { hits: 7, misses: 1, bytes: 300, entries: 1, bypasses: 0 });
  });

  it("a failed decode reaches every caller waiting for it and is not held", async () => {
    const cache = new DecodedCache(1000);
    const decoding = controlledDecode(image(300));
    const calls = Array.from({ length: 3 }, () => cache.get("a", decoding.decode, live));
    await settled();
    decoding.fail(new InvalidArgumentError("image.data could not be decoded"));
    for (const call of calls) await assert.rejects(call, InvalidArgumentError);
    assert.equal(cache.peek("a"), undefined);
    assert.equal(decoding.runs, 1);

    const next = cache.get("a", decoding.decode, live);
    await settled();
    decoding.succeed();
    await next;
    assert.equal(decoding.runs, 2, "the next call decodes afresh");
    assert.ok(cache.peek("a") !== undefined);
  });

  it("when the decoding call's own deadline ends its decode, a waiting call decodes under its own", async () => {
    const cache = new DecodedCache(1000);
    const decoding = controlledDecode(image(300));
    const owner = cache.get("a", decoding.decode, live);
    const waiter = cache.get("a", decoding.decode, live);
    await settled();
    decoding.fail(new DeadlineExceededError("deadline reached during decoding"));
    await assert.rejects(owner, DeadlineExceededError);
    await settled();
    assert.equal(decoding.runs, 2, "the waiter started its own decode");
    decoding.succeed();
    assert.equal((await waiter).raster.width, 100);
    assert.deepEqual(cache.stats(), { hits: 0, misses: 2, bytes: 300, entries: 1, bypasses: 0 });
  });

  it("a waiting call whose caller has gone stops waiting; the decode goes on and is held", async () => {
    const cache = new DecodedCache(1000);
    const decoding = controlledDecode(image(300));
    const owner = cache.get("a", decoding.decode, live);
    const controller = new AbortController();
    const waiter = cache.get("a", decoding.decode, controller.signal);
    await settled();
    controller.abort();
    await assert.rejects(waiter, (error: unknown) => {
      assert.ok(error instanceof CancelledError);
      assert.match(error.message, /while another call decoded the same image/);
      return true;
    });
    decoding.succeed();
    await owner;
    assert.ok(cache.peek("a") !== undefined);
  });
});
