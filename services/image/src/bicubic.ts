import { createRequire } from "node:module";
import { errorMessage, InternalError, throwIfStopped } from "../../runtime/src/index.js";
import { type LimitedScope, type Raster, readable, runStep, type Source } from "./raster.js";
import type { Region, Size } from "./units.js";

/**
 * Enlargements with Pillow's bicubic filter, computed by a small native addon (native/resample.c, built by
 * `make build`): bit-identical to `image.crop(box).resize(size, Image.BICUBIC)`, which is what the DeepEyes tools
 * and the Qwen-VL processor do, and about 6x faster than libvips' enlargement (vips_affine with a 4x4
 * interpolator). Reductions stay in libvips, whose separable reduce is fast and can shrink while decoding.
 */
interface NativeResample {
  resample(
    source: Buffer,
    sourceWidth: number,
    sourceHeight: number,
    channels: number,
    left: number,
    top: number,
    width: number,
    height: number,
    outputWidth: number,
    outputHeight: number,
  ): Promise<Buffer>;
}

const native = createRequire(import.meta.url)("../native/resample.node") as NativeResample;

/** Channel counts the resampler takes: grey and RGB (Pillow premultiplies alpha first, which it does not do). */
const CHANNELS = new Set([1, 3]);

/** Whether `region` to `target` is an enlargement the native resampler takes (larger or equal on both axes). */
export function isBicubicEnlargement(channels: number, region: Size, target: Size): boolean {
  const larger = target.width >= region.width && target.height >= region.height;
  const same = target.width === region.width && target.height === region.height;
  return CHANNELS.has(channels) && larger && !same;
}

/**
 * `region` of `source` enlarged to `target`, as Pillow computes it. Pixels held by the decoded-image cache (or a
 * previous step) are read in place; an image not decoded yet is decoded only down to the region's last row
 * (one libvips pass), as a crop would be. Call only when `isBicubicEnlargement` holds.
 */
export async function enlargeBicubic(
  source: Source,
  region: Region,
  target: Size,
  context: LimitedScope,
  description: string,
): Promise<Raster> {
  let pixels = await readable(source, undefined);
  let within = region;
  if (pixels.kind !== "raster") {
    pixels = (await runStep(pixels, context, description, (image) => image.extract(region))) as Raster;
    within = { left: 0, top: 0, width: region.width, height: region.height };
  }
  throwIfStopped(context.scope, description);
  let data: Buffer;
  try {
    data = await native.resample(
      pixels.data,
      pixels.width,
      pixels.height,
      pixels.channels,
      within.left,
      within.top,
      within.width,
      within.height,
      target.width,
      target.height,
    );
  } catch (error) {
    // Every argument was checked before: a refusal here is this service's bug, not the caller's.
    throw new InternalError(`${description} failed: ${errorMessage(error)}`, {
      cause: error,
    });
  }
  return { kind: "raster", data, width: target.width, height: target.height, channels: pixels.channels };
}
