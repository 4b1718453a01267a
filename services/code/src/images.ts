import type { NamedImage } from "../../../generated/toolplane/code/v1/code.js";
import { InvalidArgumentError, limitError, probeImage } from "../../runtime/src/index.js";
import type { InputImage } from "./backend.js";

export interface InputImageLimits {
  /** Images one session may bind. */
  maxImages: number;
  /** Decoded pixels of one image (a decompression-bomb guard). */
  maxPixels: number;
}

/** Variable names both languages accept (and no dunder names that would shadow interpreter internals). */
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * Validates CreateSessionRequest.images at the edge: names, inline data, and
 * that each image decodes (its header, with sharp) within the pixel limit.
 */
export async function toInputImages(images: NamedImage[], limits: InputImageLimits): Promise<InputImage[]> {
  if (images.length > limits.maxImages) {
    throw limitError("images", images.length, limits.maxImages, "entries");
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
    const probed = await probeImage(data, `${field}.image.data`, limits.maxPixels);
    result.push({
      name: named.name,
      data,
      mimeType: probed.mimeType,
      width: probed.width,
      height: probed.height,
    });
  }
  return result;
}

/** Width and height from a PNG's IHDR chunk (the kernel only returns PNGs). */
export function pngSize(png: Buffer): { width: number; height: number } {
  if (png.length < 24 || png.readUInt32BE(12) !== 0x49484452) return { width: 0, height: 0 };
  return { width: png.readUInt32BE(16), height: png.readUInt32BE(20) };
}
