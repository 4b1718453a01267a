import assert from "node:assert/strict";
import { describe, it } from "node:test";
import sharp from "sharp";
import { photoJpeg } from "../../../test/fixtures/image/generate.js";
import { InternalError, InvalidArgumentError, unboundedScope } from "../../runtime/src/index.js";
import { truncation } from "./input.js";
import { DEFAULT_LIMITS } from "./limits.js";
import { type LimitedScope, type Raster, runStep } from "./raster.js";

const context = (limits = {}): LimitedScope => ({
  scope: unboundedScope(),
  limits: { ...DEFAULT_LIMITS, ...limits },
});

describe("truncation", () => {
  it("accepts complete JPEG, PNG and WebP, and bytes appended after a JPEG's end", async () => {
    const jpeg = await photoJpeg(64, 48);
    assert.equal(truncation(jpeg, "jpeg"), undefined);
    assert.equal(truncation(Buffer.concat([jpeg, Buffer.from("trailer with \xff\xd8 bytes")]), "jpeg"), undefined);
    assert.equal(truncation(await sharp(jpeg).png().toBuffer(), "png"), undefined);
    assert.equal(truncation(await sharp(jpeg).webp().toBuffer(), "webp"), undefined);
  });

  it("finds a JPEG cut inside its scan data or before its first scan", async () => {
    const jpeg = await photoJpeg(64, 48);
    assert.match(
      truncation(jpeg.subarray(0, jpeg.length - 2), "jpeg") ?? "",
      /no end-of-image marker after its scan data/,
    );
    assert.match(truncation(jpeg.subarray(0, 30), "jpeg") ?? "", /no complete start-of-scan segment/);
  });

  it("finds a PNG without IEND and a WebP shorter than its RIFF size", async () => {
    const png = await sharp(await photoJpeg(64, 48))
      .png()
      .toBuffer();
    assert.match(truncation(png.subarray(0, png.length - 12), "png") ?? "", /PNG has no IEND chunk/);
    const webp = await sharp(await photoJpeg(64, 48))
      .webp()
      .toBuffer();
    assert.match(
      truncation(webp.subarray(0, webp.length - 10), "webp") ?? "",
      /WebP declares \d+ bytes but \d+ arrived/,
    );
  });
});

describe("pass errors", () => {
  it("libvips' own pixel limit is a second line behind the header check, named like it", async () => {
    const big = await sharp({ create: { width: 200, height: 200, channels: 3, background: "gray" } })
      .png()
      .toBuffer();
    // A source whose declared size understates the real one, as a lying header would.
    const source = { kind: "encoded" as const, data: big, width: 10, height: 10, channels: 3 };
    await assert.rejects(
      runStep(source, context({ maxInputPixels: 1000 }), "decoding", (image) => image),
      (error: unknown) =>
        error instanceof InvalidArgumentError &&
        error.errorClass === "MODEL" &&
        /image\.data exceeds the limit of 1000 \(TOOLPLANE_IMAGE_MAX_INPUT_PIXELS\)/.test(error.message),
    );
  });

  it("a libvips failure on pixels the service made is INTERNAL, class INFRASTRUCTURE", async () => {
    const raster: Raster = { kind: "raster", data: Buffer.alloc(10 * 10 * 3), width: 10, height: 10, channels: 3 };
    await assert.rejects(
      runStep(raster, context(), "operations[0].crop", (image) =>
        image.extract({ left: 5, top: 5, width: 50, height: 50 }),
      ),
      (error: unknown) =>
        error instanceof InternalError &&
        error.errorClass === "INFRASTRUCTURE" &&
        /operations\[0\]\.crop failed: /.test(error.message),
    );
  });
});
