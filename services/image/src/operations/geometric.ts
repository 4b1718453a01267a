import {
  type CropOp,
  type FlipOp,
  FlipOp_Axis,
  type ResizeOp,
  ResizeOp_Fit,
  type RotateOp,
  type ZoomOp,
} from "../../../../generated/toolplane/image/v1/image.js";
import { InvalidArgumentError, requireFinite, requireInteger, requireRange } from "../../../runtime/src/index.js";
import { enlargeBicubic, isBicubicEnlargement } from "../bicubic.js";
import { colourIsOpaque, requireColour } from "../colour.js";
import {
  applyDeepEyesRules,
  pilCropRegion,
  SMART_RESIZE_DEFAULTS,
  type SmartResizeParameters,
  smartResize,
  withMinShortSide,
} from "../geometry.js";
import { MAX_SIDE } from "../limits.js";
import { hasAlpha, type LimitedScope, type Pass, type PassOptions, pass, type Raster, type Source } from "../raster.js";
import { boxToPixels, boxToRegion, type Region, type Size } from "../units.js";
import { requireOutputSize, type Step, sizeOf } from "./step.js";

/**
 * Catmull-Rom cubic: what PIL's BICUBIC (and so the Qwen-VL processor) uses,
 * and about twice as fast in libvips as its default Lanczos-3.
 */
export const RESIZE_KERNEL = "cubic";

/**
 * A fill resize of `region` (the whole image when absent) to `target`: Pillow's bicubic (native) for an
 * enlargement of grey or RGB pixels, libvips' cubic otherwise (reductions, alpha).
 */
export function resizeFill(
  source: Source,
  field: string,
  target: Size,
  context: LimitedScope,
  region?: Region,
  options: PassOptions = {},
): Pass | Promise<Raster> {
  const from = region ?? { left: 0, top: 0, width: source.width, height: source.height };
  if (isBicubicEnlargement(source.channels, from, target)) {
    return enlargeBicubic(source, from, target, context, field);
  }
  return pass(
    source,
    field,
    (image) =>
      (region ? image.extract(region) : image).resize(target.width, target.height, {
        fit: "fill",
        kernel: RESIZE_KERNEL,
      }),
    options,
  );
}

export function compileCrop(op: CropOp, field: string): Step {
  return (raster) => {
    const region = boxToRegion(boxToPixels(op.box, sizeOf(raster), `${field}.box`), sizeOf(raster), `${field}.box`);
    return pass(raster, field, (image) => image.extract(region));
  };
}

/** Largest zoom factor; beyond it the output pixel limit is the real bound anyway. */
const MAX_ZOOM_SCALE = 64;

/** Output size of a zoom: exact targets, one target with the other side from the aspect ratio, or the scale. */
function zoomSize(region: Region, op: ZoomOp, scale: number): Size {
  let size: Size;
  if (op.targetWidth > 0 && op.targetHeight > 0) {
    size = { width: op.targetWidth, height: op.targetHeight };
  } else if (op.targetWidth > 0) {
    size = { width: op.targetWidth, height: Math.max(1, Math.round((op.targetWidth * region.height) / region.width)) };
  } else if (op.targetHeight > 0) {
    size = {
      width: Math.max(1, Math.round((op.targetHeight * region.width) / region.height)),
      height: op.targetHeight,
    };
  } else {
    size = {
      width: Math.max(1, Math.round(region.width * scale)),
      height: Math.max(1, Math.round(region.height * scale)),
    };
  }
  return withMinShortSide(size, op.minShortSide);
}

export function compileZoom(op: ZoomOp, field: string): Step {
  const scale =
    op.scale === 0 ? 1 : requireRange(`${field}.scale`, op.scale, 0, MAX_ZOOM_SCALE, { minExclusive: true });
  requireInteger(`${field}.target_width`, op.targetWidth, 0, MAX_SIDE);
  requireInteger(`${field}.target_height`, op.targetHeight, 0, MAX_SIDE);
  requireInteger(`${field}.min_short_side`, op.minShortSide, 0, MAX_SIDE);
  return (raster, context) => {
    const size = sizeOf(raster);
    const box = boxToPixels(op.box, size, `${field}.box`);
    let region: Region;
    if (op.deepeyesRules) {
      const fixed = applyDeepEyesRules(box, size);
      if (!fixed.ok) throw new InvalidArgumentError(`${field}.box is invalid under DeepEyes rules: ${fixed.reason}`);
      region = pilCropRegion(fixed.box);
    } else {
      region = boxToRegion(box, size, `${field}.box`);
    }
    const target = zoomSize(region, op, scale);
    requireOutputSize(field, target, context.limits);
    return resizeFill(raster, field, target, context, region);
  };
}

/** Bounding size of a w x h image rotated by `degrees`, as libvips computes it. */
function rotatedSize(size: Size, degrees: number): Size {
  const radians = (degrees * Math.PI) / 180;
  const cos = Math.abs(Math.cos(radians));
  const sin = Math.abs(Math.sin(radians));
  return {
    width: Math.ceil(size.width * cos + size.height * sin),
    height: Math.ceil(size.width * sin + size.height * cos),
  };
}

export function compileRotate(op: RotateOp, field: string): Step {
  const angle = requireFinite(`${field}.angle_degrees`, op.angleDegrees);
  const background = requireColour(`${field}.background`, op.background, "#000000");
  const normalized = ((angle % 360) + 360) % 360;
  if (normalized === 0) return async (raster) => raster;
  if (normalized % 90 === 0) {
    // Quarter turns move pixels without resampling: lossless, and no background is needed.
    return (raster) => pass(raster, field, (image) => image.rotate(normalized));
  }
  return async (raster, context) => {
    requireOutputSize(field, rotatedSize(sizeOf(raster), normalized), context.limits);
    // A translucent background gives an opaque image an alpha channel for its corners.
    const alpha = hasAlpha(raster) || !(await colourIsOpaque(background));
    return pass(raster, field, (image) => image.rotate(normalized, { background }), { hasAlpha: alpha });
  };
}

export function compileFlip(op: FlipOp, field: string): Step {
  switch (op.axis) {
    case FlipOp_Axis.AXIS_HORIZONTAL:
      return (raster) => pass(raster, field, (image) => image.flop());
    case FlipOp_Axis.AXIS_VERTICAL:
      return (raster) => pass(raster, field, (image) => image.flip());
    default:
      throw new InvalidArgumentError(`${field}.axis must be AXIS_HORIZONTAL or AXIS_VERTICAL, got ${op.axis}`);
  }
}

const FITS = {
  [ResizeOp_Fit.FIT_UNSPECIFIED]: "inside",
  [ResizeOp_Fit.FIT_INSIDE]: "inside",
  [ResizeOp_Fit.FIT_COVER]: "cover",
  [ResizeOp_Fit.FIT_FILL]: "fill",
  [ResizeOp_Fit.FIT_CONTAIN]: "contain",
  [ResizeOp_Fit.FIT_OUTSIDE]: "outside",
} as const;
type SharpFit = (typeof FITS)[keyof typeof FITS];

/** How sharp scales each axis for a width/height resize with this fit (before any padding or cropping). */
function fitScale(size: Size, width: number, height: number, fit: SharpFit): { x: number; y: number } {
  if (width > 0 && height > 0) {
    if (fit === "fill") return { x: width / size.width, y: height / size.height };
    const ratio = (fit === "inside" || fit === "contain" ? Math.min : Math.max)(
      width / size.width,
      height / size.height,
    );
    return { x: ratio, y: ratio };
  }
  const ratio = width > 0 ? width / size.width : height / size.height;
  return { x: ratio, y: ratio };
}

/** What sharp will produce for a width/height resize with this fit (used for the limit check before any work). */
function fittedSize(size: Size, width: number, height: number, fit: SharpFit): Size {
  if (width > 0 && height > 0 && (fit === "fill" || fit === "cover" || fit === "contain")) return { width, height };
  const { x: ratio } = fitScale(size, width, height, fit);
  return { width: Math.max(1, Math.round(size.width * ratio)), height: Math.max(1, Math.round(size.height * ratio)) };
}

/** The larger scale factor of a resize from `size` to `target` (pass option `scale`: below 1 it shrinks both axes). */
function largerScale(size: Size, target: Size): number {
  return Math.max(target.width / size.width, target.height / size.height);
}

const MAX_RESIZE_SCALE = 64;

function smartParameters(op: ResizeOp, field: string): SmartResizeParameters {
  const smart = op.smart ?? SMART_RESIZE_DEFAULTS;
  const factor = smart.factor === 0 ? SMART_RESIZE_DEFAULTS.factor : smart.factor;
  const minPixels = smart.minPixels === 0 ? SMART_RESIZE_DEFAULTS.minPixels : smart.minPixels;
  const maxPixels = smart.maxPixels === 0 ? SMART_RESIZE_DEFAULTS.maxPixels : smart.maxPixels;
  requireInteger(`${field}.smart.factor`, factor, 1, 1024);
  requireInteger(`${field}.smart.min_pixels`, minPixels, 1, 2 ** 32 - 1);
  requireInteger(`${field}.smart.max_pixels`, maxPixels, 1, 2 ** 32 - 1);
  if (minPixels > maxPixels) {
    throw new InvalidArgumentError(
      `${field}.smart.min_pixels (${minPixels}) must not exceed ${field}.smart.max_pixels (${maxPixels})`,
    );
  }
  return { factor, minPixels, maxPixels };
}

/**
 * Exactly one way of sizing per resize: smart (Qwen-VL), scale, or
 * width/height with a fit. Mixing them is refused rather than guessed.
 */
export function compileResize(op: ResizeOp, field: string): Step {
  const hasSides = op.width > 0 || op.height > 0;
  const modes = [op.smart !== undefined, op.scale !== 0, hasSides].filter(Boolean).length;
  if (modes === 0) throw new InvalidArgumentError(`${field} needs width and/or height, scale, or smart`);
  if (modes > 1) throw new InvalidArgumentError(`${field} takes only one of width/height, scale, or smart`);

  if (op.smart !== undefined) {
    const parameters = smartParameters(op, field);
    return (raster, context) => {
      const target = smartResize(sizeOf(raster), parameters, `${field}.smart`);
      requireOutputSize(field, target, context.limits);
      return resizeFill(raster, field, target, context, undefined, { scale: largerScale(sizeOf(raster), target) });
    };
  }
  if (op.scale !== 0) {
    const scale = requireRange(`${field}.scale`, op.scale, 0, MAX_RESIZE_SCALE, { minExclusive: true });
    return (raster, context) => {
      const target = {
        width: Math.max(1, Math.round(raster.width * scale)),
        height: Math.max(1, Math.round(raster.height * scale)),
      };
      requireOutputSize(field, target, context.limits);
      return resizeFill(raster, field, target, context, undefined, { scale: largerScale(sizeOf(raster), target) });
    };
  }
  requireInteger(`${field}.width`, op.width, 0, MAX_SIDE);
  requireInteger(`${field}.height`, op.height, 0, MAX_SIDE);
  const fit = FITS[op.fit as keyof typeof FITS];
  if (fit === undefined) throw new InvalidArgumentError(`${field}.fit must be a ResizeOp.Fit value, got ${op.fit}`);
  return (raster, context) => {
    requireOutputSize(field, fittedSize(sizeOf(raster), op.width, op.height, fit), context.limits);
    if (fit === "fill" && op.width > 0 && op.height > 0) {
      const target = { width: op.width, height: op.height };
      return resizeFill(raster, field, target, context, undefined, { scale: largerScale(sizeOf(raster), target) });
    }
    const transparent = raster.channels === 2 || raster.channels === 4;
    const scale = fitScale(sizeOf(raster), op.width, op.height, fit);
    return pass(
      raster,
      field,
      (image) =>
        image.resize(op.width || undefined, op.height || undefined, {
          fit,
          kernel: RESIZE_KERNEL,
          background: transparent ? { r: 0, g: 0, b: 0, alpha: 0 } : "#000000",
        }),
      { scale: Math.max(scale.x, scale.y) },
    );
  };
}
