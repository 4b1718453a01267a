import sharp, { type Sharp } from "sharp";
import {
  type CallScope,
  DeadlineExceededError,
  errorMessage,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  throwIfStopped,
} from "../../runtime/src/index.js";
import type { InputInfo } from "./input.js";
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

/** Where a pipeline runs: its caller's scope (deadline, cancellation) and the service's image limits. */
export interface LimitedScope {
  scope: CallScope;
  limits: ImageLimits;
}

/** libvips' own timeout for one pass, so even a single slow pass stops near the deadline (whole seconds, as sharp takes them). */
function withTimeout(image: Sharp, context: LimitedScope): Sharp {
  const { deadlineMs } = context.scope;
  if (deadlineMs === undefined) return image;
  const seconds = Math.max(1, Math.ceil((deadlineMs - Date.now()) / 1000));
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
export function open(source: Source, context: LimitedScope): Sharp {
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

export function colourSpaceOf(channels: number): "b-w" | "srgb" {
  return channels <= 2 ? "b-w" : "srgb";
}

export function decodeError(error: unknown): InvalidArgumentError {
  const reason = errorMessage(error);
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
export function passError(error: unknown, source: Source, context: LimitedScope, description: string): Error {
  if (isTimeout(error)) return new DeadlineExceededError(`deadline reached during ${description}`, { cause: error });
  if (source.kind === "encoded") {
    if (error instanceof Error && /pixel limit/i.test(error.message)) {
      return new InvalidArgumentError(`image.data exceeds ${limitText(context.limits, "maxInputPixels")}`, {
        cause: error,
      });
    }
    return decodeError(error);
  }
  return new InternalError(`${description} failed: ${errorMessage(error)}`, {
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

/** Runs a pass to raw pixels; a source is returned as it is. */
export async function settle(result: Source | Pass, context: LimitedScope): Promise<Source> {
  if (result.kind !== "pass") return result;
  throwIfStopped(context.scope, result.description);
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
  context: LimitedScope,
  description: string,
  build: (image: Sharp) => Sharp,
  options: PassOptions = {},
): Promise<Source> {
  return settle(pass(source, description, build, options), context);
}

/** Raw pixels of a source (decoding it if needed), for steps done outside libvips. Treat them as read-only. */
export async function toRaster(source: Source, context: LimitedScope): Promise<Raster> {
  const readFrom = await readable(source, undefined);
  if (readFrom.kind === "raster") return readFrom;
  return (await runStep(readFrom, context, "decoding", (image) => image)) as Raster;
}

/** Raw pixels a step may write into: a copy when the decoded-image cache holds them too. */
export async function writableRaster(source: Source, context: LimitedScope): Promise<Raster> {
  const raster = await toRaster(source, context);
  return raster.shared ? { ...raster, data: Buffer.from(raster.data), shared: false } : raster;
}

/**
 * The whole image decoded to what every step hands on (8-bit, EXIF orientation applied), for the decoded-image
 * cache. The decoding is as strict as the first pass of a pipeline, so whatever fails here would fail there.
 */
export async function decodeWhole(encoded: Encoded, context: LimitedScope): Promise<Raster> {
  const { decoded: _, ...bytesOnly } = encoded;
  const whole = pass(bytesOnly, "decoding", (image) => image);
  return (await settle(whole, context)) as Raster;
}
