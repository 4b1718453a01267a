import { ImageFormat, type Operation, type OutputOptions } from "../../../generated/toolplane/image/v1/image.js";
import {
  type CallScope,
  InvalidArgumentError,
  isSha256,
  recordSpanError,
  requireInteger,
  startStage,
  withStage,
} from "../../runtime/src/index.js";
import { type DecodedCache, decodedCacheKey } from "./decoded-cache.js";
import { type EncodedImage, encode, type OutputFormat } from "./encode.js";
import { withMinShortSide } from "./geometry.js";
import { decodable, type InputInfo, readHeader, referenced } from "./input.js";
import { type ImageLimits, limitText, MAX_SIDE, type WorkQueue } from "./limits.js";
import { resizeFill } from "./operations/geometric.js";
import { compileOperation, type Step } from "./operations/index.js";
import { requireOutputSize } from "./operations/step.js";
import {
  decodeWhole,
  type Encoded,
  ImageNotHeldError,
  type LimitedScope,
  type Pass,
  type Raster,
  type Source,
  settle,
} from "./raster.js";

export interface ProcessResult {
  image: EncodedImage;
  input: InputInfo;
  timing: { queueMs: number; executeMs: number; totalMs: number };
}

const DEFAULT_QUALITY = 90;

interface CheckedOutput {
  format: OutputFormat | undefined;
  quality: number;
  minShortSide: number;
}

function checkOutput(output: OutputOptions | undefined): CheckedOutput {
  const formats: Record<number, OutputFormat | undefined> = {
    [ImageFormat.IMAGE_FORMAT_UNSPECIFIED]: undefined,
    [ImageFormat.IMAGE_FORMAT_PNG]: "png",
    [ImageFormat.IMAGE_FORMAT_JPEG]: "jpeg",
    [ImageFormat.IMAGE_FORMAT_WEBP]: "webp",
  };
  const requested = output?.format ?? ImageFormat.IMAGE_FORMAT_UNSPECIFIED;
  if (!(requested in formats)) {
    throw new InvalidArgumentError(
      `output.format must be IMAGE_FORMAT_PNG, IMAGE_FORMAT_JPEG or IMAGE_FORMAT_WEBP, got ${requested}`,
    );
  }
  const quality = output?.quality ? requireInteger("output.quality", output.quality, 1, 100) : DEFAULT_QUALITY;
  const minShortSide = requireInteger("output.min_short_side", output?.minShortSide ?? 0, 0, MAX_SIDE);
  return { format: formats[requested], quality, minShortSide };
}

/** Unspecified output keeps PNG, JPEG and WebP inputs in their format; GIF and TIFF become PNG. */
function outputFormatFor(input: InputInfo, requested: OutputFormat | undefined): OutputFormat {
  if (requested !== undefined) return requested;
  return input.format === "jpeg" || input.format === "webp" ? input.format : "png";
}

/** The request's image: its encoded bytes, or the sha256 of an image this service holds decoded. */
export type ImageInput = Buffer | { sha256: string };

/** A decoded image the cache cannot stand in for: the call reads its bytes instead. */
class NotServable extends Error {}

/**
 * Image pipelines: validate everything that can be validated up front, wait
 * for a worker slot, decode once (or take the pixels from the decoded-image
 * cache), run each step on the result of the last, encode once.
 */
export class ImagePipeline {
  constructor(
    private readonly limits: ImageLimits,
    private readonly queue: WorkQueue,
    private readonly cache?: DecodedCache,
  ) {}

  /** Header only: no pixel limit applies, so a caller can learn the size of an image it may not process. */
  metadata(data: Buffer): Promise<InputInfo> {
    return readHeader(data, this.limits);
  }

  /**
   * One pipeline on `source`: the image's bytes, or only its sha256 when the caller expects this service to hold it
   * decoded (ImageNotHeldError, NOT_FOUND, when it does not: the caller sends the bytes instead).
   */
  async process(
    source: ImageInput,
    operations: Operation[],
    output: OutputOptions | undefined,
    scope: CallScope,
  ): Promise<ProcessResult> {
    const started = performance.now();
    if (operations.length > this.limits.maxOperations) {
      throw new InvalidArgumentError(
        `operations has ${operations.length} entries, over ${limitText(this.limits, "maxOperations")}`,
      );
    }
    const steps: Step[] = operations.map((operation, index) => compileOperation(operation, index, this.limits));
    const checkedOutput = checkOutput(output);
    const context: LimitedScope = { scope, limits: this.limits };
    const { input, encoded } = Buffer.isBuffer(source)
      ? await this.byBytes(source, context)
      : this.byReference(source.sha256, context);

    const queued = performance.now();
    let admitted: number | undefined;
    const wait = startStage("queue_wait", { "toolplane.queue": "image_workers" });
    const image = await this.queue
      .run(() => {
        admitted = performance.now();
        wait.end();
        return withStage("image_pipeline", { "toolplane.operations": steps.length }, () =>
          this.execute(encoded, steps, checkedOutput, input, context),
        );
      }, scope.signal)
      .catch((error: unknown) => {
        // Refused or abandoned while queued: the wait span ends with the reason.
        if (admitted === undefined) {
          recordSpanError(wait, error);
          wait.end();
        }
        throw error;
      });
    const finished = performance.now();
    const ranFrom = admitted ?? queued;
    return {
      image,
      input,
      timing: { queueMs: ranFrom - queued, executeMs: finished - ranFrom, totalMs: finished - started },
    };
  }

  private async byBytes(data: Buffer, context: LimitedScope): Promise<{ input: InputInfo; encoded: Encoded }> {
    const key =
      this.cache !== undefined && data.length > 0 && data.length <= this.limits.maxInputBytes
        ? decodedCacheKey(data)
        : undefined;
    // A held image was read from these very bytes under these limits: only its header read is skipped; every
    // check below still runs, and the pixels are taken only when the first pass needs them.
    const held = key === undefined ? undefined : this.cache?.peek(key);
    const input = held?.input ?? (await readHeader(data, this.limits));
    return { input, encoded: this.cached(decodable(data, input, this.limits), input, key, context) };
  }

  /** The image named by its sha256: only a held one can be served, and its header passed every check when read. */
  private byReference(sha256: string, context: LimitedScope): { input: InputInfo; encoded: Encoded } {
    if (!isSha256(sha256)) {
      throw new InvalidArgumentError("image.sha256 must be 64 lowercase hex digits (the sha256 of the image's bytes)");
    }
    const held = this.cache?.peek(sha256);
    if (held === undefined) throw new ImageNotHeldError(sha256);
    return { input: held.input, encoded: this.cached(referenced(sha256, held.input), held.input, sha256, context) };
  }

  /** Runs the steps on the input, one after the other, then the output's minimum size, and encodes. */
  private async execute(
    encoded: Encoded,
    steps: Step[],
    checkedOutput: CheckedOutput,
    input: InputInfo,
    context: LimitedScope,
  ): Promise<EncodedImage> {
    let result: Source | Pass = encoded;
    for (const step of steps) result = await step(await settle(result, context), context);
    if (checkedOutput.minShortSide > 0) {
      const current = await settle(result, context);
      const minimum = withMinShortSide({ width: current.width, height: current.height }, checkedOutput.minShortSide);
      if (minimum.width !== current.width || minimum.height !== current.height) {
        requireOutputSize("output.min_short_side", minimum, this.limits);
        result = await resizeFill(current, "output.min_short_side", minimum, context);
      } else {
        result = current;
      }
    }
    return encode(result, outputFormatFor(input, checkedOutput.format), checkedOutput.quality, context);
  }

  /**
   * The input with access to its pixels through the decoded-image cache, when there is a cache and the image
   * fits in it. The first pass that needs pixels decodes the whole image once (or takes it, held or being
   * decoded by another call) and starts from those: the same 8-bit pixels every later step starts from, so a
   * result is the same with or without the cache. Not for images whose first pass works on more than that:
   * 16-bit samples, and grey with alpha (decoding it to raw grey drops the alpha).
   */
  private cached(encoded: Encoded, input: InputInfo, key: string | undefined, context: LimitedScope): Encoded {
    const cache = this.cache;
    const bytes = encoded.width * encoded.height * encoded.channels;
    if (cache === undefined || key === undefined || !cache.fits(bytes) || input.depth !== "uchar") return encoded;
    if (encoded.channels === 2 || !cache.admits(key)) return encoded;
    // A decode for the cache is its own stage: a trace shows which call paid for it.
    // A decode for the cache is its own stage: a trace shows which call paid for it.
    const decode = () =>
      withStage("image_decode", { "toolplane.decoded_bytes": bytes }, async () => {
        // Evicted since the call began: a reference has no bytes to decode.
        if (encoded.reference !== undefined) throw new ImageNotHeldError(encoded.reference);
        const raster = await decodeWhole(encoded, context);
        if (
          raster.width !== encoded.width ||
          raster.height !== encoded.height ||
          raster.channels !== encoded.channels
        ) {
          throw new NotServable(`decoded ${raster.width}x${raster.height}x${raster.channels}`);
        }
        return { raster: { ...raster, shared: true }, input };
      });
    const load = async (): Promise<Raster | undefined> => {
      try {
        return (await cache.get(key, decode, context.scope.signal)).raster;
      } catch (error) {
        // The whole image does not decode (or not as the header said), though the rows this call reads may: go on
        // exactly as without a cache.
        if (error instanceof InvalidArgumentError || error instanceof NotServable) return undefined;
        throw error;
      }
    };
    let pixels: Promise<Raster | undefined> | undefined;
    return { ...encoded, decoded: { key, input, pixels: () => (pixels ??= load()) } };
  }
}
