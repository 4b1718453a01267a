import assert from "node:assert/strict";
import { describe, it } from "node:test";
import sharp from "sharp";
import { displaySize, prepareForModel, referenceDisplaySize } from "./postprocess.js";

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

  it("DeepEyesV2's own arithmetic (maybe_resize_image), sizes from CPython running the reference function", () => {
    const cases: [number, number, number, number][] = [
      [3000, 10, 2400, 32],
      [10, 3000, 32, 2400],
      [5000, 7, 1050, 33],
      [201, 1, 1600, 32],
      [1000, 3, 2400, 32],
      [20, 20, 32, 32],
      [31, 100, 32, 104],
      [45000, 200, 22500, 400],
      [8001, 40, 4000, 80],
      [33, 7000, 66, 3500],
      [640, 480, 640, 480],
    ];
    for (const [width, height, expectedWidth, expectedHeight] of cases) {
      assert.deepEqual(
        referenceDisplaySize({ width, height }),
        { width: expectedWidth, height: expectedHeight },
        `${width}x${height}`,
      );
    }
  });

  it("resizes by the rule asked for: none leaves a tiny image as it is", async () => {
    const tiny = await sharp({ create: { width: 16, height: 8, channels: 3, background: "red" } })
      .png()
      .toBuffer();
    const kept = await prepareForModel(tiny, "none");
    assert.deepEqual([kept.width, kept.height], [16, 8]);
    assert.equal(kept.data, tiny);
    const reference = await prepareForModel(tiny, "deepeyes-v2");
    assert.deepEqual([reference.width, reference.height], [64, 32]);
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
