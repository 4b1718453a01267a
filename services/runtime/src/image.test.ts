import assert from "node:assert/strict";
import { describe, it } from "node:test";
import sharp from "sharp";
import { hostileImages, hugePng, noisyJpeg, solidPng } from "../../../test/support/hostile-images.js";
import { InvalidArgumentError } from "./errors.js";
import { hasAcceptedSignature, probeImage, verifyImage } from "./image.js";

describe("verifyImage: a caller's image checked at the door", () => {
  it("accepts whole images of every whitelisted format, with their size", async () => {
    const base = sharp({ create: { width: 30, height: 20, channels: 3, background: "#123456" } });
    for (const format of ["jpeg", "png", "webp", "gif", "tiff"] as const) {
      const data = await base.clone().toFormat(format).toBuffer();
      assert.ok(hasAcceptedSignature(data), format);
      const verified = await verifyImage(data, "images[0].data", 1_000_000);
      assert.deepEqual([verified.format, verified.width, verified.height], [format, 30, 20]);
    }
    assert.equal((await verifyImage(await noisyJpeg(), "x")).format, "jpeg");
  });

  it("refuses cut, corrupted, metadata-bomb and non-whitelisted images with INVALID_ARGUMENT naming the field", async () => {
    for (const [name, data] of Object.entries(await hostileImages())) {
      await assert.rejects(verifyImage(data, "images[3].data", 40_000_000), (error: unknown) => {
        assert.ok(error instanceof InvalidArgumentError, `${name}: ${error}`);
        assert.equal(error.errorClass, "MODEL");
        assert.match(error.message, /^images\[3\]\.data /, name);
        return true;
      });
    }
  });

  it("names the PNG chunk and the bound of a metadata bomb", async () => {
    const images = await hostileImages();
    await assert.rejects(
      verifyImage(images["PNG with a zTXt inflating to 200 MB"] as Buffer, "data"),
      /data is refused: its zTXt chunk inflates to more than 1048576 bytes/,
    );
    await assert.rejects(
      verifyImage(images["PNG with a 2 MB tEXt"] as Buffer, "data"),
      /data is refused: its tEXt chunk has 2097160 bytes, over the limit of 1048576 bytes/,
    );
  });

  it("refuses an image over the pixel cap before decoding it", async () => {
    const data = await hugePng(8000, 6000);
    await assert.rejects(
      verifyImage(data, "images[0].data", 40_000_000),
      /images\[0\]\.data is 8000x6000 = 48000000 pixels, over the limit of 40000000/,
    );
  });

  it("probeImage, header only, still refuses what is not on the whitelist before libvips parses it", async () => {
    const avif = await sharp({ create: { width: 8, height: 8, channels: 3, background: "#000" } })
      .avif()
      .toBuffer();
    await assert.rejects(
      probeImage(avif, "image"),
      /image does not start like an accepted image \(its first bytes\); expected PNG, JPEG, WebP, GIF or TIFF/,
    );
    assert.equal((await probeImage(await solidPng(), "image")).format, "png");
  });
});
