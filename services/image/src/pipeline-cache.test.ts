import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { describe, it } from "node:test";
import sharp, { type Sharp } from "sharp";
import {
  ImageFormat,
  type Operation,
  type OutputOptions,
  ResizeOp_Fit,
} from "../../../generated/toolplane/image/v1/image.js";
import { photoJpeg, pixelBox, quadrants, resizeOp, zoomOp } from "../../../test/fixtures/image/generate.js";
import {
  CancelledError,
  DeadlineExceededError,
  InvalidArgumentError,
  unboundedScope,
} from "../../runtime/src/index.js";
import { DecodedCache } from "./decoded-cache.js";
import { DEFAULT_LIMITS, type ImageLimits, WorkQueue } from "./limits.js";
import { ImagePipeline } from "./pipeline.js";
import { ImageNotHeldError } from "./raster.js";

const live = unboundedScope();
const MIB = 1024 * 1024;

function pipelines(cacheBytes = 64 * MIB, limits: Partial<ImageLimits> = {}) {
  const cache = new DecodedCache(cacheBytes);
  const all = { ...DEFAULT_LIMITS, ...limits };
  return {
    cache,
    plain: new ImagePipeline(all, new WorkQueue(2, 16, 50)),
    cached: new ImagePipeline(all, new WorkQueue(2, 16, 50), cache),
  };
}

const output = (format: ImageFormat): OutputOptions => ({ format, quality: 90, minShortSide: 0 });
const png = output(ImageFormat.IMAGE_FORMAT_PNG);

/** Decoded pixels of an encoded result, with its size and channel count. */
async function rawOf(encoded: Uint8Array) {
  const { data, info } = await sharp(encoded).raw().toBuffer({ resolveWithObject: true });
  return { data, size: [info.width, info.height, info.channels] };
}

/** A photo-like 300x200 RGBA image with smooth and sharp detail, so resampling differences would show. */
function detailed(): Sharp {
  const width = 300;
  const height = 200;
  const raw = Buffer.alloc(width * height * 4);
  for (let index = 0; index < width * height; index++) {
    const x = index % width;
    const y = Math.floor(index / width);
    raw.set([(x * 255) / width, (y * 255) / height, (x * 7 + y * 13) & 255, 255 - ((x + y) & 127)], index * 4);
  }
  return sharp(raw, { raw: { width, height, channels: 4 } });
}

describe("pipeline with the decoded-image cache", () => {
  it("gives the pixels it gives without the cache, and the same bytes on a hit as on the miss", async () => {
    const inputs: Record<string, Buffer> = {
      jpeg: await detailed().removeAlpha().jpeg({ quality: 90 }).toBuffer(),
      "png with alpha": await detailed().png().toBuffer(),
      "grey png": await detailed().removeAlpha().toColourspace("b-w").png().toBuffer(),
      webp: await detailed().webp({ quality: 80 }).toBuffer(),
      "jpeg with EXIF orientation 6": await detailed().removeAlpha().jpeg().withMetadata({ orientation: 6 }).toBuffer(),
      "16-bit png": await detailed().toColourspace("rgb16").png().toBuffer(),
    };
    const operations: Record<string, Operation[]> = {
      zoom: [zoomOp(pixelBox(10, 20, 110, 90), { scale: 2.3, deepeyesRules: true })],
      "smart resize (enlarges)": [resizeOp({ smart: { factor: 28, minPixels: 0, maxPixels: 0 } })],
      "resize to a third (decoders shrink)": [resizeOp({ width: 90, height: 60, fit: ResizeOp_Fit.FIT_FILL })],
      "resize to 0.7": [resizeOp({ scale: 0.7 })],
      "contain in a strip": [resizeOp({ width: 100, height: 10, fit: ResizeOp_Fit.FIT_CONTAIN })],
      "rotate 33": [{ rotate: { angleDegrees: 33, background: "#00000080" } }],
      "adjust with gamma": [{ adjust: { brightness: 1.2, contrast: 0.9, gamma: 1.4, saturation: 1.3 } }],
      annotate: [
        { annotate: { annotations: [{ box: pixelBox(10, 10, 100, 80), label: "cat", color: "blue", lineWidth: 0 }] } },
      ],
      "crop, blur, halve": [
        { crop: { box: pixelBox(5, 5, 250, 180) } },
        { blur: { sigma: 1.5 } },
        resizeOp({ scale: 0.5 }),
      ],
      "no operation": [],
    };
    const formats = [ImageFormat.IMAGE_FORMAT_PNG, ImageFormat.IMAGE_FORMAT_JPEG, ImageFormat.IMAGE_FORMAT_WEBP];
    const { plain, cached, cache } = pipelines();
    for (const [inputName, input] of Object.entries(inputs)) {
      for (const [name, ops] of Object.entries(operations)) {
        for (const format of formats) {
          const what = `${name} of ${inputName} to ${ImageFormat[format]}`;
          const expected = await plain.process(input, ops, output(format), live);
          const miss = await cached.process(input, ops, output(format), live);
          const hit = await cached.process(input, ops, output(format), live);
          assert.deepEqual(hit.image.data, miss.image.data, `${what}: hit and miss differ`);
          const [want, got] = [await rawOf(expected.image.data), await rawOf(miss.image.data)];
          assert.deepEqual(got.size, want.size, what);
          // Identical pixels; the bytes may differ only in the resolution field the encoded input carried.
          assert.ok(got.data.equals(want.data), `${what}: pixels differ`);
          assert.deepEqual(miss.input, expected.input, what);
        }
      }
    }
    const { hits, misses } = cache.stats();
    assert.equal(misses, 5, "every input but the 16-bit one was decoded once for the cache");
    assert.ok(hits > 100, `hits ${hits}`);
  });

  it("a repeated image is decoded once, and its header is not read again", async () => {
    const { cached, cache } = pipelines();
    const photo = await photoJpeg(640, 480);
    const zoom: Operation[] = [zoomOp(pixelBox(100, 100, 300, 250), { scale: 2 })];
    const results = await Promise.all(Array.from({ length: 6 }, () => cached.process(photo, zoom, png, live)));
    results.push(await cached.process(photo, zoom, png, live));
    assert.ok(results.every((result) => result.image.data.equals(results[0]?.image.data as Buffer)));
    assert.deepEqual(cache.stats(), { hits: 6, misses: 1, bytes: 640 * 480 * 3, entries: 1, bypasses: 0 });
  });

  it("serves a held image named by its sha256 alone, with the bytes a call with the image gives", async () => {
    const { cache, cached, plain } = pipelines();
    const photo = await photoJpeg(640, 480);
    const sha256 = createHash("sha256").update(photo).digest("hex");
    const zoom: Operation[] = [zoomOp(pixelBox(100, 100, 300, 250), { scale: 2, deepeyesRules: true })];
    await assert.rejects(cached.process({ sha256 }, zoom, png, live), (error) => {
      assert.ok(error instanceof ImageNotHeldError);
      assert.equal(error.errorClass, "INFRASTRUCTURE", "the caller has the bytes: not the model's fault");
      return true;
    });
    await assert.rejects(plain.process({ sha256 }, zoom, png, live), ImageNotHeldError, "no cache, nothing held");
    const byBytes = await cached.process(photo, zoom, png, live);
    const byReference = await cached.process({ sha256 }, zoom, png, live);
    assert.ok(byReference.image.data.equals(byBytes.image.data));
    assert.deepEqual(byReference.input, byBytes.input);
    assert.equal(cache.stats().hits, 1);
    // A resize the JPEG decoder would shrink while decoding reads the bytes, which a reference does not carry.
    await assert.rejects(cached.process({ sha256 }, [resizeOp({ scale: 0.25 })], png, live), ImageNotHeldError);
    await assert.rejects(
      cached.process({ sha256: "A".repeat(64) }, zoom, png, live),
      /image\.sha256 must be 64 lowercase hex digits/,
    );
  });

  it("annotating a held image draws into a copy, never into the held pixels", async () => {
    const { plain, cached } = pipelines();
    const input = await (await quadrants(200, 100)).png().toBuffer();
    const annotate: Operation[] = [
      { annotate: { annotations: [{ box: pixelBox(0, 0, 200, 100), label: "all", color: "yellow", lineWidth: 20 }] } },
    ];
    await cached.process(input, [], png, live);
    await cached.process(input, annotate, png, live);
    const after = await cached.process(input, [], png, live);
    const expected = await plain.process(input, [], png, live);
    assert.deepEqual(after.image.data, expected.image.data);
  });

  it("a corrupt image is never held, and fails or succeeds exactly as without the cache", async () => {
    const { plain, cached, cache } = pipelines();
    // Damage late in the scan data: the top rows decode, the whole image does not.
    const damaged = Buffer.from(await photoJpeg(320, 480));
    const at = Math.floor(damaged.length * 0.8);
    for (let index = at; index < at + 64; index++) damaged[index] = (index * 37 + 11) & 0xff;
    damaged.set([0xff, 0xd3], at + 10);
    const top: Operation[] = [{ crop: { box: pixelBox(0, 0, 100, 50) } }];
    const expected = await plain.process(damaged, top, png, live);
    for (let attempt = 0; attempt < 2; attempt++) {
      const result = await cached.process(damaged, top, png, live);
      assert.deepEqual(result.image.data, expected.image.data);
      await assert.rejects(cached.process(damaged, [], png, live), (error: unknown) => {
        assert.ok(error instanceof InvalidArgumentError);
        assert.equal(error.errorClass, "MODEL");
        assert.match(error.message, /image\.data could not be decoded .*Corrupt JPEG data/);
        return true;
      });
    }
    assert.deepEqual(cache.stats(), { hits: 0, misses: 4, bytes: 0, entries: 0, bypasses: 0 });
  });

  it("truncated data, decompression bombs and deadlines are refused as before, and nothing is held", async () => {
    const { cached, cache } = pipelines(64 * MIB, { maxInputPixels: 1_000_000 });
    const photo = await photoJpeg(320, 240);
    await assert.rejects(
      cached.process(photo.subarray(0, photo.length / 2), [{ crop: { box: pixelBox(0, 0, 10, 10) } }], png, live),
      /image\.data is truncated: JPEG has no end-of-image marker after its scan data/,
    );
    const bomb = await sharp({ create: { width: 2000, height: 2000, channels: 3, background: "black" } })
      .png()
      .toBuffer();
    await assert.rejects(cached.process(bomb, [], png, live), /4000000 pixels, over the limit of 1000000/);
    const cancelled = new AbortController();
    cancelled.abort();
    await assert.rejects(cached.process(photo, [], png, { signal: cancelled.signal }), CancelledError);
    await assert.rejects(
      cached.process(photo, [{ invert: {} }], png, unboundedScope(Date.now() - 1)),
      DeadlineExceededError,
    );
    assert.deepEqual(cache.stats(), { hits: 0, misses: 0, bytes: 0, entries: 0, bypasses: 0 });
    // The same image, once its call has time, is decoded and held.
    await cached.process(photo, [{ invert: {} }], png, live);
    assert.equal(cache.stats().entries, 1);
  });

  it("an image larger than the whole budget is processed as without a cache", async () => {
    const { plain, cached, cache } = pipelines(100_000);
    const photo = await photoJpeg(320, 240);
    const ops: Operation[] = [{ crop: { box: pixelBox(10, 10, 110, 60) } }];
    const result = await cached.process(photo, ops, png, live);
    assert.deepEqual(result.image.data, (await plain.process(photo, ops, png, live)).image.data);
    assert.deepEqual(cache.stats(), { hits: 0, misses: 0, bytes: 0, entries: 0, bypasses: 0 });
  });
});
