import { InvalidArgumentError } from "../../runtime/src/index.js";
import type { PixelBox, Region, Size } from "./units.js";

/**
 * Size arithmetic copied from the Python reference implementations the models
 * were trained with, so the same request gives the same pixels here as there.
 */

/** Python 3's round(): halves go to the even neighbour (round(2.5) == 2), unlike Math.round. */
export function pythonRound(value: number): number {
  const floor = Math.floor(value);
  const difference = value - floor;
  if (difference < 0.5) return floor;
  if (difference > 0.5) return floor + 1;
  return floor % 2 === 0 ? floor : floor + 1;
}

/** DeepEyes v1 grows boxes whose short side is under this many pixels. */
export const DEEPEYES_MIN_SIDE = 28;
/** DeepEyes v1 rejects boxes more elongated than this. */
export const DEEPEYES_MAX_ASPECT_RATIO = 100;

/** Why a DeepEyes box is invalid, or the fixed-up box. */
export type DeepEyesResult = { ok: true; box: PixelBox } | { ok: false; reason: string };

function deepEyesCheck(box: PixelBox): string | undefined {
  if (!(box.left < box.right && box.top < box.bottom)) {
    return `needs left < right and top < bottom, got [${box.left}, ${box.top}, ${box.right}, ${box.bottom}] after clamping to the image`;
  }
  const width = box.right - box.left;
  const height = box.bottom - box.top;
  const ratio = Math.max(width, height) / Math.min(width, height);
  if (ratio > DEEPEYES_MAX_ASPECT_RATIO) {
    return `aspect ratio ${ratio.toFixed(2)} exceeds ${DEEPEYES_MAX_ASPECT_RATIO}`;
  }
  return undefined;
}

/** Moves [start, end) to lie within [0, limit) without changing its length when it fits. */
function shiftInside(start: number, end: number, limit: number): [number, number] {
  if (start < 0) {
    end -= start;
    start = 0;
  }
  if (end > limit) {
    start -= end - limit;
    end = limit;
  }
  return [Math.max(0, start), end];
}

/**
 * DeepEyes v1's zoom-in box rules (visual toolbox maybe_resize_bbox): clamp to
 * the image; require left < right, top < bottom and aspect ratio <= 100; a box
 * with a side under 28 px is scaled up around its centre until its short side
 * is 28 px (same ceil/floor arithmetic as the reference), then, as the protocol
 * requires, shifted to stay inside the image, and checked again.
 */
export function applyDeepEyesRules(box: PixelBox, size: Size): DeepEyesResult {
  const clamped: PixelBox = {
    left: Math.max(0, box.left),
    top: Math.max(0, box.top),
    right: Math.min(size.width, box.right),
    bottom: Math.min(size.height, box.bottom),
  };
  const problem = deepEyesCheck(clamped);
  if (problem !== undefined) return { ok: false, reason: problem };
  const width = clamped.right - clamped.left;
  const height = clamped.bottom - clamped.top;
  if (width >= DEEPEYES_MIN_SIDE && height >= DEEPEYES_MIN_SIDE) return { ok: true, box: clamped };

  const centreX = (clamped.left + clamped.right) / 2;
  const centreY = (clamped.top + clamped.bottom) / 2;
  const ratio = DEEPEYES_MIN_SIDE / Math.min(width, height);
  const halfHeight = Math.ceil(height * ratio * 0.5);
  const halfWidth = Math.ceil(width * ratio * 0.5);
  const [left, right] = shiftInside(Math.floor(centreX - halfWidth), Math.ceil(centreX + halfWidth), size.width);
  const [top, bottom] = shiftInside(Math.floor(centreY - halfHeight), Math.ceil(centreY + halfHeight), size.height);
  const grown: PixelBox = { left, top, right, bottom };
  const grownProblem = deepEyesCheck(grown);
  if (grownProblem !== undefined) return { ok: false, reason: grownProblem };
  return { ok: true, box: grown };
}

/** The pixel region PIL's Image.crop takes for a box: each coordinate rounded the Python way. */
export function pilCropRegion(box: PixelBox): Region {
  const left = pythonRound(box.left);
  const top = pythonRound(box.top);
  return { left, top, width: pythonRound(box.right) - left, height: pythonRound(box.bottom) - top };
}

export interface SmartResizeParameters {
  factor: number;
  minPixels: number;
  maxPixels: number;
}

export const SMART_RESIZE_DEFAULTS: SmartResizeParameters = {
  factor: 28,
  minPixels: 4 * 28 * 28,
  maxPixels: 16384 * 28 * 28,
};

/** qwen_vl_utils refuses images more elongated than this. */
export const SMART_RESIZE_MAX_RATIO = 200;

/**
 * qwen_vl_utils.smart_resize: both sides multiples of `factor`, pixel count
 * within [minPixels, maxPixels], aspect ratio kept as closely as possible.
 * Same float operations in the same order as the Python, including its
 * round-half-to-even, so results match it exactly.
 */
export function smartResize(size: Size, parameters: SmartResizeParameters, field: string): Size {
  const { factor, minPixels, maxPixels } = parameters;
  const { width, height } = size;
  const ratio = Math.max(height, width) / Math.min(height, width);
  if (ratio > SMART_RESIZE_MAX_RATIO) {
    throw new InvalidArgumentError(
      `${field}: the ${width}x${height} image has aspect ratio ${ratio.toFixed(2)}, smart resize allows at most ${SMART_RESIZE_MAX_RATIO}`,
    );
  }
  let heightBar = Math.max(factor, pythonRound(height / factor) * factor);
  let widthBar = Math.max(factor, pythonRound(width / factor) * factor);
  if (heightBar * widthBar > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    heightBar = Math.floor(height / beta / factor) * factor;
    widthBar = Math.floor(width / beta / factor) * factor;
  } else if (heightBar * widthBar < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    heightBar = Math.ceil((height * beta) / factor) * factor;
    widthBar = Math.ceil((width * beta) / factor) * factor;
  }
  if (heightBar === 0 || widthBar === 0) {
    throw new InvalidArgumentError(
      `${field}: smart resize of the ${width}x${height} image with factor ${factor} and max_pixels ${maxPixels} leaves a side of 0 pixels; raise max_pixels`,
    );
  }
  return { width: widthBar, height: heightBar };
}

/** Size after enlarging so the short side is at least `minShortSide`, aspect ratio kept. */
export function withMinShortSide(size: Size, minShortSide: number): Size {
  const short = Math.min(size.width, size.height);
  if (minShortSide <= 0 || short >= minShortSide) return size;
  const factor = minShortSide / short;
  return {
    width: size.width === short ? minShortSide : Math.max(minShortSide, Math.round(size.width * factor)),
    height: size.height === short ? minShortSide : Math.max(minShortSide, Math.round(size.height * factor)),
  };
}
