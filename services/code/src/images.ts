import sharp, { type Metadata } from "sharp";
import type { NamedImage } from "../../../generated/toolplane/code/v1/code.js";
import { InvalidArgumentError } from "../../runtime/src/index.js";
import type { InputImage } from "./backend.js";

export interface InputImageLimits {
  /** Images one session may bind. */
  maxImages: number;
  /** Decoded pixels of one image (a decompression-bomb guard). */
  maxPixels: number;
}

/** Variable names both languages accept (and no dunder names that would shadow interpreter internals). */
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

const MIME_BY_FORMAT: Record<string, string> = {
  png: "image/png",
  jpeg: "image/jpeg",
  webp: "image/webp",
  gif: "image/gif",
  tiff: "image/tiff",
};

/**
 * Validates CreateSessionRequest.images at the edge: names, inline data, and
 * that each image decodes (its header, with sharp) within the pixel limit.
 */
export async function toInputImages(images: NamedImage[], limits: InputImageLimits): Promise<InputImage[]> {
  if (images.length > limits.maxImages) {
    throw new InvalidArgumentError(`images has ${images.length} entries; the maximum is ${limits.maxImages}`);
  }
  const seen = new Set<string>();
  const result: InputImage[] = [];
  for (const [index, named] of images.entries()) {
    const field = `images[${index}]`;
    if (!NAME.test(named.name) || named.name.startsWith("__")) {
      throw new InvalidArgumentError(
        `${field}.name ${JSON.stringify(named.name)} is not a valid variable name (letters, digits, _; 1-64 chars; no leading __)`,
      );
    }
    if (seen.has(named.name)) throw new InvalidArgumentError(`${field}.name ${JSON.stringify(named.name)} is repeated`);
    seen.add(named.name);
    const data = named.image?.data;
    if (!data || data.length === 0) {
      throw new InvalidArgumentError(
        `${field}.image.data is required (sha256 references are resolved by the gateway before the code service)`,
      );
    }
    let metadata: Metadata;
    try {
      metadata = await sharp(data, { limitInputPixels: limits.maxPixels }).metadata();
    } catch (error) {
      throw new InvalidArgumentError(`${field}.image.data is not a decodable image: ${(error as Error).message}`);
    }
    const mimeType = MIME_BY_FORMAT[metadata.format ?? ""];
    if (!mimeType || !metadata.width || !metadata.height) {
      throw new InvalidArgumentError(
        `${field}.image.data has format ${metadata.format ?? "unknown"}; supported: PNG, JPEG, WebP, GIF, TIFF`,
      );
    }
    if (metadata.width * metadata.height > limits.maxPixels) {
      throw new InvalidArgumentError(
        `${field}.image is ${metadata.width}x${metadata.height} pixels; the maximum is ${limits.maxPixels} pixels`,
      );
    }
    const rotated = (metadata.orientation ?? 1) >= 5;
    result.push({
      name: named.name,
      data,
      mimeType,
      width: rotated ? metadata.height : metadata.width,
      height: rotated ? metadata.width : metadata.height,
    });
  }
  return result;
}

/** Width and height from a PNG's IHDR chunk (the kernel only returns PNGs). */
export function pngSize(png: Buffer): { width: number; height: number } {
  if (png.length < 24 || png.readUInt32BE(12) !== 0x49484452) return { width: 0, height: 0 };
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}
