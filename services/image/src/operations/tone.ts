import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import type {
  AdjustOp,
  BlurOp,
  NormalizeOp,
  SharpenOp,
  ThresholdOp,
} from "../../../../generated/toolplane/image/v1/image.js";
import { InvalidArgumentError, requireInteger, requireRange, throwIfStopped } from "../../../runtime/src/index.js";
import { type LimitedScope, pass, type Raster, runStep, type Source, toRaster } from "../raster.js";
import type { Step } from "./step.js";

const MAX_TONE_FACTOR = 10;

/** Colour bands of a raster: alpha, when present, is never touched by tone operations. */
function colourBands(channels: number): number {
  return channels === 2 || channels === 4 ? channels - 1 : channels;
}

/** Pixels between event-loop yields when a lookup table is applied in JavaScript (~1.5 ms of work). */
const LOOKUP_CHUNK_PIXELS = 1 << 18;

/**
 * Maps every colour value through a 256-entry table. libvips has no
 * per-value power function that sharp exposes for any exponent, so gamma
 * runs here, in chunks that yield to the event loop so other calls keep
 * flowing.
 */
async function applyLookupTable(source: Source, table: Uint8Array, context: LimitedScope): Promise<Raster> {
  const raster = await toRaster(source, context);
  const { data, channels } = raster;
  const bands = colourBands(channels);
  const out = Buffer.allocUnsafe(data.length);
  const pixels = raster.width * raster.height;
  for (let start = 0; start < pixels; start += LOOKUP_CHUNK_PIXELS) {
    throwIfStopped(context.scope, "gamma adjustment");
    const end = Math.min(pixels, start + LOOKUP_CHUNK_PIXELS);
    for (let pixel = start; pixel < end; pixel++) {
      const offset = pixel * channels;
      for (let band = 0; band < channels; band++) {
        const value = data[offset + band] as number;
        out[offset + band] = band < bands ? (table[value] as number) : value;
      }
    }
    if (end < pixels) await yieldToEventLoop();
  }
  return { kind: "raster", data: out, width: raster.width, height: raster.height, channels };
}

/** out = 255 * (in / 255) ^ (1 / gamma): gamma > 1 brightens mid-tones, < 1 darkens them. */
export function gammaTable(gamma: number): Uint8Array {
  const table = new Uint8Array(256);
  for (let value = 0; value < 256; value++) table[value] = Math.round(255 * (value / 255) ** (1 / gamma));
  return table;
}

function optionalFactor(field: string, value: number): number | undefined {
  if (value === 0) return undefined;
  return requireRange(field, value, 0, MAX_TONE_FACTOR, { minExclusive: true });
}

/**
 * Brightness and contrast as one linear map (v * b, then around mid-grey 128
 * by c), then saturation, then gamma: each only when set.
 */
export function compileAdjust(op: AdjustOp, field: string): Step {
  const brightness = optionalFactor(`${field}.brightness`, op.brightness) ?? 1;
  const contrast = optionalFactor(`${field}.contrast`, op.contrast) ?? 1;
  const gamma = optionalFactor(`${field}.gamma`, op.gamma);
  const saturation = optionalFactor(`${field}.saturation`, op.saturation);
  return async (raster, context) => {
    let current: Source = raster;
    if (brightness !== 1 || contrast !== 1) {
      const bands = colourBands(current.channels);
      const multiply = Array.from({ length: current.channels }, (_, band) =>
        band < bands ? brightness * contrast : 1,
      );
      const add = Array.from({ length: current.channels }, (_, band) => (band < bands ? 128 * (1 - contrast) : 0));
      current = await runStep(current, context, `${field} (brightness/contrast)`, (image) =>
        image.linear(multiply, add),
      );
    }
    if (saturation !== undefined && saturation !== 1 && colourBands(current.channels) >= 3) {
      current = await runStep(current, context, `${field} (saturation)`, (image) => image.modulate({ saturation }));
    }
    if (gamma !== undefined && gamma !== 1) current = await applyLookupTable(current, gammaTable(gamma), context);
    return current;
  };
}

export function compileSharpen(op: SharpenOp, field: string): Step {
  if (op.sigma === 0) {
    return (raster) => pass(raster, field, (image) => image.sharpen());
  }
  const sigma = requireRange(`${field}.sigma`, op.sigma, 0, 10, { minExclusive: true });
  return (raster) => pass(raster, field, (image) => image.sharpen({ sigma }));
}

export function compileBlur(op: BlurOp, field: string): Step {
  const sigma = requireRange(`${field}.sigma`, op.sigma, 0.3, 100);
  return (raster) => pass(raster, field, (image) => image.blur(sigma));
}

/** Percentiles of luminance mapped to black and white; 0 means the default (1 and 99). */
export function compileNormalize(op: NormalizeOp, field: string): Step {
  const lower = op.lowerPercentile === 0 ? 1 : requireRange(`${field}.lower_percentile`, op.lowerPercentile, 0, 99);
  const upper = op.upperPercentile === 0 ? 99 : requireRange(`${field}.upper_percentile`, op.upperPercentile, 1, 100);
  if (lower >= upper) {
    throw new InvalidArgumentError(
      `${field}.lower_percentile (${lower}) must be less than ${field}.upper_percentile (${upper})`,
    );
  }
  return (raster) => pass(raster, field, (image) => image.normalise({ lower, upper }));
}

export function compileGrayscale(field: string): Step {
  return (raster) =>
    pass(raster, field, (image) => image.greyscale(), {
      space: "b-w",
    });
}

/** Pixels with luminance >= level become white, the rest black; 0 means the default 128. */
export function compileThreshold(op: ThresholdOp, field: string): Step {
  const level = op.level === 0 ? 128 : requireInteger(`${field}.level`, op.level, 0, 255);
  return (raster) =>
    pass(raster, field, (image) => image.threshold(level), {
      space: "b-w",
    });
}

export function compileInvert(field: string): Step {
  return (raster) => pass(raster, field, (image) => image.negate({ alpha: false }));
}
