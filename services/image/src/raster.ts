import sharp, { type Metadata, type Sharp } from "sharp";
import { DeadlineExceededError, InternalError, InvalidArgumentError, NotFoundError } from "../../runtime/src/index.js";
import { type ImageLimits, limitText } from "./limits.js";

/**
 * What flows between pipeline steps. sharp applies the operations queued on
 * one instance in its own fixed order, not call order, so every step is its
 * own sharp pass and hands raw 8-bit pixels to the next: each step then means
 * exactly what the request says. Without the decoded-image cache, the first
 * step reads the encoded input directly (decode, EXIF orientation and the step
 * in one libvips pass), which saves a full-size raw copy on the common
 * crop/zoom request; with it, the first step starts from the cached pixels.
 */
export interface Raster {
  kind: "raster";
  data: Buffer;
  width: number;
  height: number;
  channels: number;
  /** The pixels are also held by the decoded-image cache: a step that writes in place must copy them first. */
  shared?: boolean;
}

/** The request's image, not yet decoded. Sizes are after EXIF orientation; channels as decoding will produce them. */
export interface Encoded {
  kind: "encoded";
  data: Buffer;
  width: number;
  height: number;
  channels: number;
  /** Set when the decoded-image cache may serve this image's pixels instead of decoding it again. */
  decoded?: DecodedPixels;
  /** Set when the request named the image by its sha256 and `data` is empty: only held pixels can serve it. */
  reference?: string;
}

/** The whole image decoded once and shared between calls (decoded-cache.ts). */
export interface DecodedPixels {
  /** The image's cache key: the hex sha256 of its bytes. */
  key: string;
  /** The image's header: it decides which resizes read the bytes instead (`resizeReadsBytes`). */
  input: InputInfo;
  /**
   * The pixels as a step would see them after decoding, held or decoded now; undefined when the whole image
   * cannot be decoded, so the call reads the bytes as it would without a cache (and fails or not exactly as then).
   */
  pixels: () => Promise<Raster | undefined>;
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
 * One libvips pass not yet run: `build` adds a step's operations to a sharp
 * instance reading `source`. Keeping it unrun lets the pipeline run the last
 * step and the encoder as a single pass (no full-size raw copy through
 * JavaScript). Grey stays grey and colour stays colour unless the step names
 * the colour space it produces (greyscale, threshold: grey; annotations:
 * colour).
 */
export interface Pass {
  kind: "pass";
  source: Source;
  description: string;
  build: (image: Sharp) => Sharp;
  space: "b-w" | "srgb";
  /** Whether the result has an alpha channel. */
  hasAlpha: boolean;
  /** For a resize, the larger of its two scale factors (output / input); undefined for other passes. */
  scale?: number;
}

export interface PassOptions {
  space?: "b-w" | "srgb";
  hasAlpha?: boolean;
  scale?: number;
}

export function hasAlpha(source: Source): boolean {
  return source.channels === 2 || source.channels === 4;
}

export function pass(
  source: Source,
  description: string,
  build: (image: Sharp) => Sharp,
  options: PassOptions = {},
): Pass {
  return {
    kind: "pass",
    source,
    description,
    build,
    space: options.space ?? colourSpaceOf(source.channels),
    hasAlpha: options.hasAlpha ?? hasAlpha(source),
    scale: options.scale,
  };
}

/**
 * Whether a resize by `scale` (its larger factor) that is the first pass must read the encoded bytes, even with
 * decoded pixels at hand, to give the result it gives without them: sharp lets the JPEG decoder shrink by 2, 4
 * or 8 while decoding (from a shrink of 2 on both axes; faster, and different pixels) and the WebP decoder by any
 * factor, and it resizes an EXIF-oriented image before orienting it.
 */
export function resizeReadsBytes(input: InputInfo, scale: number): boolean {
  const decoderShrinks = (input.format === "jpeg" && scale <= 0.5) || (input.format === "webp" && scale < 1);
  return decoderShrinks || input.orientation > 1;
}

/** What a pass reads: the cache's decoded pixels of its source when they serve it, else the source as it is. */
export async function readable(source: Source, scale: number | undefined): Promise<Source> {
  if (source.kind !== "encoded" || source.decoded === undefined) return source;
  const pixels =
    scale !== undefined && resizeReadsBytes(source.decoded.input, scale) ? undefined : await source.decoded.pixels();
  if (pixels !== undefined) return pixels;
  // Sent by reference: without held pixels there is nothing to read, and the caller has the bytes.
  if (source.data.length === 0) throw new ImageNotHeldError(source.decoded.key);
  return source;
}

/**
 * A call sent `image.sha256` instead of the bytes, and this replica does not hold that image decoded (never
 * admitted, evicted, another replica, or a step that must read the bytes). Not the model's fault: the caller
 * (the gateway) sends the call again with `image.data`.
 */
export class ImageNotHeldError extends NotFoundError {
  constructor(sha256: string) {
    super(`image.sha256 ${sha256} is not held decoded by this image service for this call; send image.data instead`, {
      errorClass: "INFRASTRUCTURE",
    });
  }
}

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

/** Runs a pass to raw pixels; a source is returned as it is. */
export async function settle(result: Source | Pass, context: StepContext): Promise<Source> {
  if (result.kind !== "pass") return result;
  ensureTimeLeft(context, result.description);
  const source = await readable(result.source, result.scale);
  try {
    const { data, info } = await result
      .build(open(source, context))
      .toColourspace(result.space)
      .raw({ depth: "uchar" })
      .toBuffer({ resolveWithObject: true });
    return { kind: "raster", data, width: info.width, height: info.height, channels: info.channels };
  } catch (error) {
    throw passError(error, source, context, result.description);
  }
}

/** Runs one pass now (for steps made of several passes). */
export function runStep(
  source: Source,
  context: StepContext,
  description: string,
  build: (image: Sharp) => Sharp,
  options: PassOptions = {},
): Promise<Source> {
  return settle(pass(source, description, build, options), context);
}

/** Raw pixels of a source (decoding it if needed), for steps done outside libvips. Treat them as read-only. */
export async function toRaster(source: Source, context: StepContext): Promise<Raster> {
  const readFrom = await readable(source, undefined);
  if (readFrom.kind === "raster") return readFrom;
  return (await runStep(readFrom, context, "decoding", (image) => image)) as Raster;
}

/** Raw pixels a step may write into: a copy when the decoded-image cache holds them too. */
export async function writableRaster(source: Source, context: StepContext): Promise<Raster> {
  const raster = await toRaster(source, context);
  return raster.shared ? { ...raster, data: Buffer.from(raster.data), shared: false } : raster;
}

/**
 * The whole image decoded to what every step hands on (8-bit, EXIF orientation applied), for the decoded-image
 * cache. The decoding is as strict as the first pass of a pipeline, so whatever fails here would fail there.
 */
export async function decodeWhole(encoded: Encoded, context: StepContext): Promise<Raster> {
  const { decoded: _, ...bytesOnly } = encoded;
  const whole = pass(bytesOnly, "decoding", (image) => image);
  return (await settle(whole, context)) as Raster;
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

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const TIFF_SIGNATURES = ["II*\0", "MM\0*", "II+\0", "MM\0+"];

/** Whether the data starts like one of the accepted formats (the check libvips' loaders would make, done first). */
function hasAcceptedSignature(data: Buffer): boolean {
  const text = (start: number, end: number) => data.subarray(start, end).toString("latin1");
  return (
    (data[0] === 0xff && data[1] === 0xd8 && data[2] === 0xff) ||
    data.subarray(0, 8).equals(PNG_SIGNATURE) ||
    text(0, 4) === "GIF8" ||
    (text(0, 4) === "RIFF" && text(8, 12) === "WEBP") ||
    TIFF_SIGNATURES.includes(text(0, 4))
  );
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

export type OutputFormat = "png" | "jpeg" | "webp";

export interface EncodedImage {
  data: Buffer;
  format: OutputFormat;
  mimeType: string;
  width: number;
  height: number;
}

/**
 * Encodes the final image, running the last pending pass and the encoder as
 * one libvips pass. JPEG has no alpha: an image with alpha is first settled
 * and flattened onto white (sharp flattens before its other operations, so
 * this cannot be fused).
 */
export async function encode(
  result: Source | Pass,
  format: OutputFormat,
  quality: number,
  context: StepContext,
): Promise<EncodedImage> {
  const alpha = result.kind === "pass" ? result.hasAlpha : hasAlpha(result);
  const last = format === "jpeg" && alpha ? await settle(result, context) : result;
  ensureTimeLeft(context, "encoding");
  const description = last.kind === "pass" ? `${last.description} and encoding ${format}` : `encoding ${format}`;
  const source = await readable(
    last.kind === "pass" ? last.source : last,
    last.kind === "pass" ? last.scale : undefined,
  );
  let image =
    last.kind === "pass"
      ? last.build(open(source, context)).toColourspace(last.space)
      : open(source, context).toColourspace(colourSpaceOf(source.channels));
  if (format === "jpeg") {
    if (alpha) image = image.flatten({ background: "#ffffff" });
    // Two-pass Huffman optimisation (sharp's default) costs more CPU than the whole decode of a 2 MP photo for a few
    // per cent of bytes on a loopback hop; PIL does not do it by default either.
    image = image.jpeg({ quality, optimiseCoding: false });
  } else if (format === "webp") {
    image = image.webp({ quality });
  } else {
    image = image.png();
  }
  try {
    const { data, info } = await image.toBuffer({ resolveWithObject: true });
    return { data, format, mimeType: `image/${format}`, width: info.width, height: info.height };
  } catch (error) {
    throw passError(error, source, context, description);
  }
}
