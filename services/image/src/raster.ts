import sharp, { type Metadata, type Sharp } from "sharp";
import { DeadlineExceededError, InternalError, InvalidArgumentError } from "../../runtime/src/index.js";
import { type ImageLimits, limitText } from "./limits.js";

/**
 * Between operations an image is held as raw 8-bit pixels. sharp applies the
 * operations queued on one instance in its own fixed order, not call order, so
 * every pipeline step is its own sharp pass from raw pixels to raw pixels:
 * that keeps each step's semantics exactly what the request says.
 */
export interface Raster {
  data: Buffer;
  width: number;
  height: number;
  channels: 1 | 2 | 3 | 4;
}

/** Where a pipeline runs: its limits and its caller's deadline. */
export interface StepContext {
  limits: ImageLimits;
  signal: AbortSignal;
  /** Absolute deadline (ms since the epoch) or undefined. */
  deadlineMs: number | undefined;
}

export const ACCEPTED_FORMATS = ["jpeg", "png", "webp", "gif", "tiff"] as const;

/** Throws DEADLINE_EXCEEDED when the caller has gone or its deadline has passed. */
export function ensureTimeLeft(context: StepContext, during: string): void {
  const expired = context.deadlineMs !== undefined && Date.now() >= context.deadlineMs;
  if (context.signal.aborted || expired) {
    throw new DeadlineExceededError(`deadline passed or call cancelled before ${during}`);
  }
}

/** libvips' own timeout for one pass, so even a single slow pass stops near the deadline (whole seconds, as sharp takes them). */
function withTimeout(image: Sharp, context: StepContext): Sharp {
  if (context.deadlineMs === undefined) return image;
  const seconds = Math.max(1, Math.ceil((context.deadlineMs - Date.now()) / 1000));
  return image.timeout({ seconds });
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && /timeout/i.test(error.message);
}

/** A sharp instance reading a raster. */
export function openRaster(raster: Raster, context: StepContext): Sharp {
  const { width, height, channels } = raster;
  return withTimeout(sharp(raster.data, { raw: { width, height, channels }, limitInputPixels: false }), context);
}

function colourSpaceOf(channels: number): "b-w" | "srgb" {
  return channels <= 2 ? "b-w" : "srgb";
}

async function toRaster(image: Sharp, space: "b-w" | "srgb"): Promise<Raster> {
  const { data, info } = await image.toColourspace(space).raw({ depth: "uchar" }).toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

/**
 * Runs one step: `build` adds operations to a sharp instance reading `raster`.
 * Grey images stay grey and colour stays colour unless the step names the
 * colour space it produces (greyscale, threshold: grey; annotations: colour).
 * Failures here are ours (the input was already decoded and the arguments
 * validated), except running out of time.
 */
export async function runStep(
  raster: Raster,
  context: StepContext,
  description: string,
  build: (image: Sharp) => Sharp,
  options: { space?: "b-w" | "srgb" } = {},
): Promise<Raster> {
  ensureTimeLeft(context, description);
  try {
    const space = options.space ?? colourSpaceOf(raster.channels);
    return await toRaster(build(openRaster(raster, context)), space);
  } catch (error) {
    if (isTimeout(error)) throw new DeadlineExceededError(`deadline reached during ${description}`, { cause: error });
    throw new InternalError(`${description} failed: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
}

export interface InputInfo {
  /** Width and height after EXIF orientation. */
  width: number;
  height: number;
  /** libvips' loader name: "jpeg", "png", "webp", "gif", "tiff", or another it recognised. */
  format: string;
  channels: number;
  hasAlpha: boolean;
  /** EXIF orientation 1..8, 0 when absent. */
  orientation: number;
  sizeBytes: number;
  pages: number;
}

function decodeError(error: unknown): InvalidArgumentError {
  const reason = error instanceof Error ? error.message : String(error);
  return new InvalidArgumentError(`image.data could not be decoded (corrupt, truncated or not an image): ${reason}`, {
    cause: error,
  });
}

/** Reads only the header: format, size after orientation, channels. Refuses empty and oversized data. */
export async function readHeader(data: Buffer, limits: ImageLimits): Promise<InputInfo> {
  if (data.length === 0) throw new InvalidArgumentError("image.data is empty");
  if (data.length > limits.maxInputBytes) {
    throw new InvalidArgumentError(`image.data is ${data.length} bytes, over ${limitText(limits, "maxInputBytes")}`);
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
    orientation: metadata.orientation ?? 0,
    sizeBytes: data.length,
    pages: metadata.pages ?? 1,
  };
}

/** Refuses, before any decoding, formats the service does not take and images over the pixel limit (decompression bombs). */
export function requireDecodable(info: InputInfo, limits: ImageLimits): void {
  if (!(ACCEPTED_FORMATS as readonly string[]).includes(info.format)) {
    throw new InvalidArgumentError(`image.data is ${info.format}; accepted formats are ${ACCEPTED_FORMATS.join(", ")}`);
  }
  const pixels = info.width * info.height;
  if (pixels > limits.maxInputPixels) {
    throw new InvalidArgumentError(
      `image.data is ${info.width}x${info.height} = ${pixels} pixels, over ${limitText(limits, "maxInputPixels")}`,
    );
  }
}

/**
 * Decodes the first frame, applies the EXIF orientation and converts to 8-bit
 * sRGB (or grey). Anything failing here is the caller's image: corrupt or
 * truncated data is INVALID_ARGUMENT (MODEL), as PIL would refuse it too.
 */
export async function decode(data: Buffer, info: InputInfo, context: StepContext): Promise<Raster> {
  ensureTimeLeft(context, "decoding");
  const image = sharp(data, {
    limitInputPixels: context.limits.maxInputPixels,
    failOn: "warning",
    autoOrient: true,
    pages: 1,
  });
  try {
    const grey = info.channels - (info.hasAlpha ? 1 : 0) === 1;
    return await toRaster(withTimeout(image, context), grey ? "b-w" : "srgb");
  } catch (error) {
    if (isTimeout(error)) throw new DeadlineExceededError("deadline reached while decoding", { cause: error });
    if (error instanceof Error && /pixel limit/i.test(error.message)) {
      throw new InvalidArgumentError(`image.data exceeds ${limitText(context.limits, "maxInputPixels")}`, {
        cause: error,
      });
    }
    throw decodeError(error);
  }
}

export type OutputFormat = "png" | "jpeg" | "webp";

export interface EncodedImage {
  data: Buffer;
  format: OutputFormat;
  mimeType: string;
  width: number;
  height: number;
}

/** Encodes the final raster. JPEG has no alpha, so transparent areas become white there. */
export async function encode(
  raster: Raster,
  format: OutputFormat,
  quality: number,
  context: StepContext,
): Promise<EncodedImage> {
  ensureTimeLeft(context, "encoding");
  let image = openRaster(raster, context);
  const hasAlpha = raster.channels === 2 || raster.channels === 4;
  if (format === "jpeg") {
    if (hasAlpha) image = image.flatten({ background: "#ffffff" });
    image = image.jpeg({ quality });
  } else if (format === "webp") {
    image = image.webp({ quality });
  } else {
    image = image.png();
  }
  try {
    const { data, info } = await image.toBuffer({ resolveWithObject: true });
    return { data, format, mimeType: `image/${format}`, width: info.width, height: info.height };
  } catch (error) {
    if (isTimeout(error)) throw new DeadlineExceededError("deadline reached while encoding", { cause: error });
    throw new InternalError(`encoding ${format} failed: ${error instanceof Error ? error.message : String(error)}`, {
      cause: error,
    });
  }
}
