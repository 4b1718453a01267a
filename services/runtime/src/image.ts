import { createHash } from "node:crypto";
import type { Metadata } from "sharp";
import { limitError } from "./arguments.js";
import { errorMessage, InvalidArgumentError } from "./errors.js";

/** MIME type of each encoded format the system accepts, by sharp's format name. */
export const MIME_BY_FORMAT: Readonly<Record<string, string>> = {
  png: "image/png",
  jpeg: "image/jpeg",
  webp: "image/webp",
  gif: "image/gif",
  tiff: "image/tiff",
};

const ACCEPTED = "expected PNG, JPEG, WebP, GIF or TIFF";

/** libvips' own default pixel limit (0x3FFF * 0x3FFF). */
export const DEFAULT_MAX_INPUT_PIXELS = 268_402_689;

const SHA256_HEX = /^[0-9a-f]{64}$/;

/** Lowercase hex sha256: the id of an image everywhere in the system. */
export function sha256Hex(data: Uint8Array | string): string {
  return createHash("sha256").update(data).digest("hex");
}

export function isSha256(value: string): boolean {
  return SHA256_HEX.test(value);
}

export interface ProbedImage {
  /** sharp's format name: png, jpeg, webp, gif or tiff. */
  format: string;
  mimeType: string;
  /** Size after EXIF orientation. */
  width: number;
  height: number;
}

/**
 * Reads the header only (no pixel decode) and checks it is an accepted format
 * within `maxPixels`; every failure is INVALID_ARGUMENT naming `field`.
 */
export async function probeImage(
  data: Uint8Array,
  field: string,
  maxPixels = DEFAULT_MAX_INPUT_PIXELS,
): Promise<ProbedImage> {
  if (data.length === 0) throw new InvalidArgumentError(`${field} is empty; expected encoded image bytes`);
  // Loaded on first use: processes that never probe an image (run-all, the export CLI) do not load libvips.
  const { default: sharp } = await import("sharp");
  let metadata: Metadata;
  try {
    metadata = await sharp(data, { limitInputPixels: maxPixels }).metadata();
  } catch (error) {
    throw new InvalidArgumentError(`${field} is not a decodable image (${errorMessage(error)}); ${ACCEPTED}`);
  }
  const format = metadata.format ?? "";
  const mimeType = MIME_BY_FORMAT[format];
  if (mimeType === undefined || !metadata.width || !metadata.height) {
    throw new InvalidArgumentError(`${field} has unsupported format "${metadata.format ?? "unknown"}"; ${ACCEPTED}`);
  }
  const pixels = metadata.width * metadata.height;
  if (pixels > maxPixels) {
    throw limitError(`${field}`, pixels, maxPixels, "pixels", `${metadata.width}x${metadata.height}`);
  }
  const rotated = (metadata.orientation ?? 1) >= 5;
  return {
    format,
    mimeType,
    width: rotated ? metadata.height : metadata.width,
    height: rotated ? metadata.width : metadata.height,
  };
}
