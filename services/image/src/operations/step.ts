import { InvalidArgumentError } from "../../../runtime/src/index.js";
import { type ImageLimits, limitText, MAX_SIDE } from "../limits.js";
import type { LimitedScope, Pass, Source } from "../raster.js";
import type { Size } from "../units.js";

/**
 * One validated operation, ready to run on whatever image reaches it.
 * Compiling checks every argument that does not depend on the image, so a bad
 * argument late in a pipeline is reported before any pixel work; the step
 * itself checks what does (boxes against the current size). A step returns
 * its last libvips pass unrun, so the pipeline can fuse it with the encoder.
 */
export type Step = (source: Source, context: LimitedScope) => Source | Pass | Promise<Source | Pass>;

export function sizeOf(raster: Source): Size {
  return { width: raster.width, height: raster.height };
}

/** Refuses a step whose result would be empty, wider than any encoder allows, or over the output pixel limit. */
export function requireOutputSize(field: string, size: Size, limits: ImageLimits): void {
  if (size.width < 1 || size.height < 1) {
    throw new InvalidArgumentError(`${field} would produce an empty ${size.width}x${size.height} image`);
  }
  if (size.width > MAX_SIDE || size.height > MAX_SIDE) {
    throw new InvalidArgumentError(
      `${field} would produce a ${size.width}x${size.height} image; each side must be at most ${MAX_SIDE}`,
    );
  }
  const pixels = size.width * size.height;
  if (pixels > limits.maxOutputPixels) {
    throw new InvalidArgumentError(
      `${field} would produce ${size.width}x${size.height} = ${pixels} pixels, over ${limitText(limits, "maxOutputPixels")}`,
    );
  }
}
