import { crc32, deflateSync } from "node:zlib";
import sharp from "sharp";

/**
 * Images a caller (or a model) might hand over that look like images at the
 * header but must be refused at the door: cut short, corrupted, metadata
 * bombs, over the pixel cap, and formats outside the whitelist.
 */

/** A small photo-like JPEG (noise, so its entropy-coded data is long enough to corrupt). */
export async function noisyJpeg(width = 256, height = 192): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 3);
  let seed = 7;
  for (let i = 0; i < pixels.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    pixels[i] = seed >>> 24;
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 90 })
    .toBuffer();
}

export function solidPng(width = 64, height = 48): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: "#446688" } })
    .png()
    .toBuffer();
}

function chunk(type: string, data: Buffer): Buffer {
  const header = Buffer.alloc(8);
  header.writeUInt32BE(data.length, 0);
  header.write(type, 4, "latin1");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([header.subarray(4), data])), 0);
  return Buffer.concat([header, data, crc]);
}

/** The PNG with one more chunk right after IHDR (offset 8 + 25). */
export function withChunk(png: Buffer, type: string, data: Buffer): Buffer {
  const afterHeader = 8 + 25;
  return Buffer.concat([png.subarray(0, afterHeader), chunk(type, data), png.subarray(afterHeader)]);
}

let made: Promise<Record<string, Buffer>> | undefined;

/** Named hostile variants of valid images, each refused with INVALID_ARGUMENT (made once per process). */
export function hostileImages(): Promise<Record<string, Buffer>> {
  made ??= makeHostileImages();
  return made;
}

async function makeHostileImages(): Promise<Record<string, Buffer>> {
  const jpeg = await noisyJpeg();
  const png = await solidPng();
  const corrupted = Buffer.from(jpeg);
  const middle = Math.floor(jpeg.length / 2);
  let seed = 99;
  for (let i = 0; i < 64; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    corrupted[middle + i * 3] = seed >>> 24;
  }
  // 200 MB of text deflates to ~200 KB: inflated, it is what PIL refuses (and a memory bomb).
  const zText = Buffer.concat([
    Buffer.from("Comment\0\0", "latin1"),
    deflateSync(Buffer.alloc(200 * 1024 * 1024, 0x61)),
  ]);
  const profile = Buffer.concat([Buffer.from("icc\0\0", "latin1"), deflateSync(Buffer.alloc(100 * 1024 * 1024, 1))]);
  const rawText = Buffer.concat([Buffer.from("Comment\0", "latin1"), Buffer.alloc(2 * 1024 * 1024, 0x62)]);
  return {
    "truncated JPEG": jpeg.subarray(0, Math.floor(jpeg.length * 0.7)),
    "JPEG with random middle bytes": corrupted,
    "truncated PNG": png.subarray(0, png.length - 20),
    "PNG with a zTXt inflating to 200 MB": withChunk(png, "zTXt", zText),
    "PNG with an iCCP inflating to 100 MB": withChunk(png, "iCCP", profile),
    "PNG with a 2 MB tEXt": withChunk(png, "tEXt", rawText),
    SVG: Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>'),
  };
}

/** A PNG of `width` x `height` in one colour: tiny to send, large to decode. */
export function hugePng(width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: "#000" }, limitInputPixels: false })
    .png({ compressionLevel: 9 })
    .toBuffer();
}
