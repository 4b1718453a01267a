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

/** The one image-format whitelist: every service that decodes untrusted bytes takes these and nothing else. */
export const ACCEPTED_FORMATS = ["jpeg", "png", "webp", "gif", "tiff"] as const;

const ACCEPTED = "expected PNG, JPEG, WebP, GIF or TIFF";

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const TIFF_SIGNATURES = ["II*\0", "MM\0*", "II+\0", "MM\0+"];

/**
 * Whether the data starts like one of ACCEPTED_FORMATS: checked before libvips sees the bytes, so its
 * other loaders (SVG via librsvg, HEIF/AVIF via libheif, PDF, ...) never parse untrusted input.
 */
export function hasAcceptedSignature(data: Uint8Array): boolean {
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const text = (start: number, end: number) => bytes.subarray(start, end).toString("latin1");
  return (
    (bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff) ||
    bytes.subarray(0, 8).equals(PNG_SIGNATURE) ||
    text(0, 4) === "GIF8" ||
    (text(0, 4) === "RIFF" && text(8, 12) === "WEBP") ||
    TIFF_SIGNATURES.includes(text(0, 4))
  );
}

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
  if (!hasAcceptedSignature(data)) {
    throw new InvalidArgumentError(
      `${field} is not a decodable image (its first bytes match no accepted format); ${ACCEPTED}`,
    );
  }
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
