import sharp, { type Metadata } from "sharp";
import { ACCEPTED_FORMATS, hasAcceptedSignature, InvalidArgumentError } from "../../runtime/src/index.js";
import { type ImageLimits, limitText } from "./limits.js";
import { decodeError, type Encoded } from "./raster.js";

/**
 * The request's image before any pixel work: its header read and checked
 * (format, signature, truncation, pixel limit) so a bad input fails at the
 * door, and the first source of a pipeline made from it.
 */

/** The request's image known only by its sha256, with the header the decoded-image cache kept for it. */
export function referenced(sha256: string, info: InputInfo): Encoded {
  return {
    kind: "encoded",
    data: Buffer.alloc(0),
    width: info.width,
    height: info.height,
    channels: decodedChannels(info),
    reference: sha256,
  };
}

/** Channels as decoding hands them on: grey or RGB, plus alpha when the image has it. */
function decodedChannels(info: InputInfo): number {
  const alpha = info.hasAlpha ? 1 : 0;
  const grey = info.channels - alpha === 1;
  return (grey ? 1 : 3) + alpha;
}

export interface InputInfo {
  /** Width and height after EXIF orientation. */
  width: number;
  height: number;
  /** libvips' loader name: "jpeg", "png", "webp", "gif", "tiff", or another it recognised. */
  format: string;
  channels: number;
  hasAlpha: boolean;
  /** libvips' sample format as decoded: "uchar" (8 bits), "ushort" (16 bits), ... */
  depth: string;
  /** EXIF orientation 1..8, 0 when absent. */
  orientation: number;
  sizeBytes: number;
  pages: number;
}

/**
 * Reads only the header: format, size after orientation, channels. Refuses
 * empty and oversized data, and anything that does not start like an accepted
 * format, so libvips' other loaders (SVG, PDF, HEIF, ...) never parse
 * untrusted bytes.
 */
export async function readHeader(data: Buffer, limits: ImageLimits): Promise<InputInfo> {
  if (data.length === 0) throw new InvalidArgumentError("image.data is empty");
  if (data.length > limits.maxInputBytes) {
    throw new InvalidArgumentError(`image.data is ${data.length} bytes, over ${limitText(limits, "maxInputBytes")}`);
  }
  if (!hasAcceptedSignature(data)) {
    throw new InvalidArgumentError(
      `image.data is not a ${ACCEPTED_FORMATS.join(", ")} image (its first bytes match none of them)`,
    );
  }
  let metadata: Metadata;
  try {
    metadata = await sharp(data, { limitInputPixels: false }).metadata();
  } catch (error) {
    throw decodeError(error);
  }
  return {
    width: metadata.autoOrient?.width ?? metadata.width ?? 0,
    height: metadata.autoOrient?.height ?? metadata.height ?? 0,
    format: metadata.format as string,
    channels: metadata.channels ?? 0,
    hasAlpha: metadata.hasAlpha ?? false,
    depth: metadata.depth ?? "uchar",
    orientation: metadata.orientation ?? 0,
    sizeBytes: data.length,
    pages: metadata.pages ?? 1,
  };
}

const JPEG_START_OF_SCAN = 0xda;
const JPEG_END_OF_IMAGE = Buffer.from([0xff, 0xd9]);

/** Offset just past a JPEG's first start-of-scan header, walking the marker segments (so an EXIF thumbnail's markers are skipped). */
function jpegScanStart(data: Buffer): number | undefined {
  let offset = 2;
  while (offset + 4 <= data.length) {
    if (data[offset] !== 0xff) return undefined;
    const marker = data[offset + 1] as number;
    if (marker === 0xff) {
      offset += 1;
      continue;
    }
    const length = data.readUInt16BE(offset + 2);
    if (marker === JPEG_START_OF_SCAN) return offset + 2 + length;
    offset += 2 + length;
  }
  return undefined;
}

/**
 * Why the data is cut short, if it is. The first pipeline step decodes only
 * the rows it needs, so a crop near the top of a truncated JPEG would
 * otherwise succeed; PIL refuses such files, and so does this service. JPEG:
 * an end-of-image marker must follow the first scan (entropy-coded data
 * cannot contain one, and bytes appended after it, as in motion photos, are
 * fine). PNG: the IEND chunk must be present. WebP: the RIFF size must fit.
 */
export function truncation(data: Buffer, format: string): string | undefined {
  if (format === "jpeg") {
    const scan = jpegScanStart(data);
    if (scan === undefined) return "JPEG has no complete start-of-scan segment";
    if (data.indexOf(JPEG_END_OF_IMAGE, scan) === -1) return "JPEG has no end-of-image marker after its scan data";
  } else if (format === "png") {
    if (data.indexOf("IEND", 8, "latin1") === -1) return "PNG has no IEND chunk";
  } else if (format === "webp" && data.length >= 8) {
    const declared = data.readUInt32LE(4) + 8;
    if (data.length < declared) return `WebP declares ${declared} bytes but ${data.length} arrived`;
  }
  return undefined;
}

/**
 * Refuses, before any decoding, formats the service does not take and images
 * over the pixel limit (decompression bombs), and returns the input as the
 * first source of a pipeline.
 */
export function decodable(data: Buffer, info: InputInfo, limits: ImageLimits): Encoded {
  if (!(ACCEPTED_FORMATS as readonly string[]).includes(info.format)) {
    throw new InvalidArgumentError(`image.data is ${info.format}; accepted formats are ${ACCEPTED_FORMATS.join(", ")}`);
  }
  const truncated = truncation(data, info.format);
  if (truncated !== undefined) throw new InvalidArgumentError(`image.data is truncated: ${truncated}`);
  const pixels = info.width * info.height;
  if (pixels > limits.maxInputPixels) {
    throw new InvalidArgumentError(
      `image.data is ${info.width}x${info.height} = ${pixels} pixels, over ${limitText(limits, "maxInputPixels")}`,
    );
  }
  return { kind: "encoded", data, width: info.width, height: info.height, channels: decodedChannels(info) };
}
