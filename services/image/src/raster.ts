import sharp, { type Metadata, type Sharp } from "sharp";
import { DeadlineExceededError, InternalError, InvalidArgumentError } from "../../runtime/src/index.js";
import { type ImageLimits, limitText } from "./limits.js";

/**
 * What flows between pipeline steps. sharp applies the operations queued on
 * one instance in its own fixed order, not call order, so every step is its
 * own sharp pass and hands raw 8-bit pixels to the next: each step then means
 * exactly what the request says. The first step reads the encoded input
 * directly (decode, EXIF orientation and the step in one libvips pass), which
 * saves a full-size raw copy on the common crop/zoom request.
 */
export interface Raster {
  kind: "raster";
  data: Buffer;
  width: number;
  height: number;
  channels: number;
}

/** The request's image, not yet decoded. Sizes are after EXIF orientation; channels as decoding will produce them. */
export interface Encoded {
  kind: "encoded";
  data: Buffer;
  width: number;
  height: number;
  channels: number;
}

export type Source = Raster | Encoded;

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

/**
 * A sharp instance reading a source. Encoded input is decoded strictly
 * (failOn "warning": truncated data is refused, as PIL refuses it), first
 * frame only, EXIF orientation applied, with libvips' own pixel limit as a
 * second line behind the header check.
 */
function open(source: Source, context: StepContext): Sharp {
  const image =
    source.kind === "encoded"
      ? sharp(source.data, {
          limitInputPixels: context.limits.maxInputPixels,
          failOn: "warning",
          autoOrient: true,
          pages: 1,
        })
      : sharp(source.data, {
          raw: { width: source.width, height: source.height, channels: source.channels as 1 | 2 | 3 | 4 },
          limitInputPixels: false,
        });
  return withTimeout(image, context);
}

function colourSpaceOf(channels: number): "b-w" | "srgb" {
  return channels <= 2 ? "b-w" : "srgb";
}

function decodeError(error: unknown): InvalidArgumentError {
  const reason = error instanceof Error ? error.message : String(error);
  return new InvalidArgumentError(`image.data could not be decoded (corrupt, truncated or not an image): ${reason}`, {
    cause: error,
  });
}

/**
 * Maps a failed pass to the right error. A pass reading the encoded input
 * fails because of that input (its arguments were validated before), so it is
 * the caller's: INVALID_ARGUMENT, class MODEL. A pass over raw pixels we
 * produced failing is our bug: INTERNAL.
 */
function passError(error: unknown, source: Source, context: StepContext, description: string): Error {
  if (isTimeout(error)) return new DeadlineExceededError(`deadline reached during ${description}`, { cause: error });
  if (source.kind === "encoded") {
    if (error instanceof Error && /pixel limit/i.test(error.message)) {
      return new InvalidArgumentError(`image.data exceeds ${limitText(context.limits, "maxInputPixels")}`, {
        cause: error,
      });
    }
    return decodeError(error);
  }
  return new InternalError(`${description} failed: ${error instanceof Error ? error.message : String(error)}`, {
    cause: error,
  });
}

/**
 * Runs one step: `build` adds operations to a sharp instance reading `source`.
 * Grey images stay grey and colour stays colour unless the step names the
 * colour space it produces (greyscale, threshold: grey; annotations: colour).
 */
export async function runStep(
  source: Source,
  context: StepContext,
  description: string,
  build: (image: Sharp) => Sharp,
  options: { space?: "b-w" | "srgb" } = {},
): Promise<Raster> {
  ensureTimeLeft(context, description);
  const space = options.space ?? colourSpaceOf(source.channels);
  try {
    const { data, info } = await build(open(source, context))
      .toColourspace(space)
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
    return { kind: "raster", data, width: info.width, height: info.height, channels: info.channels };
  } catch (error) {
    throw passError(error, source, context, description);
  }
}

/** Raw pixels of a source (decoding it if needed), for steps done outside libvips. */
export function toRaster(source: Source, context: StepContext): Promise<Raster> {
  return source.kind === "raster" ? Promise.resolve(source) : runStep(source, context, "decoding", (image) => image);
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

/**
 * Refuses, before any decoding, formats the service does not take and images
 * over the pixel limit (decompression bombs), and returns the input as the
 * first source of a pipeline.
 */
export function decodable(data: Buffer, info: InputInfo, limits: ImageLimits): Encoded {
  if (!(ACCEPTED_FORMATS as readonly string[]).includes(info.format)) {
    throw new InvalidArgumentError(`image.data is ${info.format}; accepted formats are ${ACCEPTED_FORMATS.join(", ")}`);
  }
  const pixels = info.width * info.height;
  if (pixels > limits.maxInputPixels) {
    throw new InvalidArgumentError(
      `image.data is ${info.width}x${info.height} = ${pixels} pixels, over ${limitText(limits, "maxInputPixels")}`,
    );
  }
  const alpha = info.hasAlpha ? 1 : 0;
  const grey = info.channels - alpha === 1;
  return { kind: "encoded", data, width: info.width, height: info.height, channels: (grey ? 1 : 3) + alpha };
}

export type OutputFormat = "png" | "jpeg" | "webp";

export interface EncodedImage {
  data: Buffer;
  format: OutputFormat;
  mimeType: string;
  width: number;
  height: number;
}

/** Encodes the final image. JPEG has no alpha, so transparent areas become white there. */
export async function encode(
  source: Source,
  format: OutputFormat,
  quality: number,
  context: StepContext,
): Promise<EncodedImage> {
  ensureTimeLeft(context, "encoding");
  let image = open(source, context).toColourspace(colourSpaceOf(source.channels));
  const hasAlpha = source.channels === 2 || source.channels === 4;
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
    throw passError(error, source, context, `encoding ${format}`);
  }
}
