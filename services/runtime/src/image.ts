import { createHash } from "node:crypto";
import { inflateSync } from "node:zlib";
import type { Metadata } from "sharp";
import { limitError, overLimit } from "./arguments.js";
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
    throw new InvalidArgumentError(`${field} does not start like an accepted image (its first bytes); ${ACCEPTED}`);
  }
  // Loaded on first use: processes that never probe an image (run-all, the export CLI) do not load libvips.
  const { default: sharp } = await import("sharp");
  let metadata: Metadata;
  try {
    // The header only: the pixel limit is checked below, with a message naming the size and the limit.
    metadata = await sharp(data, { limitInputPixels: false }).metadata();
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

/**
 * PIL's own bound on one PNG text or ICC chunk, compressed or not
 * (PngImagePlugin.MAX_TEXT_CHUNK): the code sandbox opens every input image
 * with PIL, which refuses a larger one; so does the door.
 */
export const MAX_PNG_METADATA_CHUNK_BYTES = 1024 * 1024;
/** Ancillary PNG chunks whose data is zlib-compressed (iTXt when its flag says so). */
const COMPRESSED_PNG_CHUNKS = new Set(["zTXt", "iCCP"]);
const PNG_METADATA_CHUNKS = new Set(["tEXt", "zTXt", "iTXt", "iCCP", "eXIf"]);

/** Why a PNG's metadata chunks are out of bounds, if they are (raw size, and inflated size of compressed ones). */
function pngMetadataProblem(data: Buffer): string | undefined {
  let offset = 8;
  while (offset + 8 <= data.length) {
    const length = data.readUInt32BE(offset);
    const type = data.subarray(offset + 4, offset + 8).toString("latin1");
    const body = data.subarray(offset + 8, Math.min(data.length, offset + 8 + length));
    offset += 12 + length;
    if (!PNG_METADATA_CHUNKS.has(type)) continue;
    if (length > MAX_PNG_METADATA_CHUNK_BYTES) {
      return overLimit(`its ${type} chunk has ${length} bytes`, `${MAX_PNG_METADATA_CHUNK_BYTES} bytes`);
    }
    const keywordEnd = body.indexOf(0);
    let compressed: Buffer | undefined;
    if (COMPRESSED_PNG_CHUNKS.has(type) && keywordEnd >= 0) compressed = body.subarray(keywordEnd + 2);
    if (type === "iTXt" && keywordEnd >= 0 && body[keywordEnd + 1] === 1) {
      // keyword \0 flag method language \0 translated keyword \0 text
      const language = body.indexOf(0, keywordEnd + 3);
      const translated = language < 0 ? -1 : body.indexOf(0, language + 1);
      if (translated >= 0) compressed = body.subarray(translated + 1);
    }
    if (compressed === undefined) continue;
    try {
      inflateSync(compressed, { maxOutputLength: MAX_PNG_METADATA_CHUNK_BYTES });
    } catch (error) {
      if (error instanceof RangeError) {
        return overLimit(
          `its ${type} chunk inflates to more than ${MAX_PNG_METADATA_CHUNK_BYTES} bytes`,
          `${MAX_PNG_METADATA_CHUNK_BYTES} bytes`,
        );
      }
      return `its ${type} chunk does not inflate (${errorMessage(error)})`;
    }
  }
  return undefined;
}

/**
 * Checks an image a caller hands over (CreateSession, PutImage) fully enough
 * that nothing downstream can fail on it later: the whitelist by signature, the
 * header within `maxPixels`, PNG metadata chunks within PIL's bounds, and every
 * pixel of the first frame decoded with libvips failing on any warning (a
 * truncated file, corrupt entropy-coded data), which is what sharp does in
 * every later consumer. Every failure is INVALID_ARGUMENT naming `field`.
 */
export async function verifyImage(
  data: Uint8Array,
  field: string,
  maxPixels = DEFAULT_MAX_INPUT_PIXELS,
): Promise<ProbedImage> {
  const probed = await probeImage(data, field, maxPixels);
  const bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (probed.format === "png") {
    const problem = pngMetadataProblem(bytes);
    if (problem !== undefined) throw new InvalidArgumentError(`${field} is refused: ${problem}`);
  }
  const { default: sharp } = await import("sharp");
  try {
    // Sequential: libvips streams the rows and never needs the whole image twice.
    await sharp(bytes, { limitInputPixels: maxPixels, failOn: "warning", sequentialRead: true }).raw().toBuffer();
  } catch (error) {
    throw new InvalidArgumentError(
      `${field} does not decode completely (${errorMessage(error)}): truncated or corrupt ${probed.format.toUpperCase()}`,
    );
  }
  return probed;
}
