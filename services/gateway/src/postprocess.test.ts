import assert from "node:assert/strict";
import { describe, it } from "node:test";
import sharp from "sharp";
import { displaySize, prepareForModel } from "./postprocess.js";

describe("images prepared for the model", () => {
  it("leaves ordinary sizes alone", () => {
    assert.deepEqual(displaySize({ width: 640, height: 480 }), { width: 640, height: 480 });
    assert.deepEqual(displaySize({ width: 32, height: 6400 }), { width: 32, height: 6400 });
  });

  it("upscales a short side under 32 px, rounding up", () => {
    assert.deepEqual(displaySize({ width: 20, height: 10 }), { width: 64, height: 32 });
    assert.deepEqual(displaySize({ width: 1, height: 1 }), { width: 32, height: 32 });
  });

  it("squashes an aspect ratio above 200 to 150, then upscales", () => {
    assert.deepEqual(displaySize({ width: 4000, height: 10 }), { width: 4800, height: 32 });
    assert.deepEqual(displaySize({ width: 40, height: 10_000 }), { width: 40, height: 6000 });
  });

  it("re-encodes only images that need it", async () => {
    const small = await sharp({ create: { width: 16, height: 8, channels: 3, background: "red" } })
      .png()
      .toBuffer();
    const prepared = await prepareForModel(small);
    assert.deepEqual([prepared.width, prepared.height, prepared.mimeType], [64, 32, "image/png"]);
    assert.deepEqual((await sharp(prepared.data).metadata()).width, 64);
    const fine = await sharp({ create: { width: 64, height: 64, channels: 3, background: "red" } })
      .jpeg()
      .toBuffer();
    const same = await prepareForModel(fine);
    assert.equal(same.data, fine);
    assert.equal(same.mimeType, "image/jpeg");
  });

  it("an undecodable tool image is an infrastructure error", async () => {
    await assert.rejects(prepareForModel(Buffer.from("nope")), (error: Error & { errorClass?: string }) => {
      assert.equal(error.errorClass, "INFRASTRUCTURE");
      return true;
    });
  });
});
