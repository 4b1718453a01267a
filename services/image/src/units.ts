import { type Box, CoordinateUnit, type Point } from "../../../generated/toolplane/image/v1/image.js";
import { InvalidArgumentError, requireFinite } from "../../runtime/src/index.js";

/**
 * The one place where box and point coordinates become pixels. Units are always
 * relative to the image as it is at that step of the pipeline (after earlier
 * crops, rotations and resizes), never to the original input.
 */

export interface Size {
  width: number;
  height: number;
}

/** A box in (possibly fractional) pixels of the current image. */
export interface PixelBox {
  left: number;
  top: number;
  right: number;
  bottom: number;
}

/** An integer pixel rectangle, non-empty and inside the image. */
export interface Region {
  left: number;
  top: number;
  width: number;
  height: number;
}

export interface PixelPoint {
  x: number;
  y: number;
}

/** Multipliers from a unit to pixels along x and y. UNSPECIFIED reads as pixels (DeepEyes v1, Qwen2.5-VL). */
function scaleOf(unit: CoordinateUnit, size: Size, field: string): { x: number; y: number } {
  switch (unit) {
    case CoordinateUnit.COORDINATE_UNIT_UNSPECIFIED:
    case CoordinateUnit.COORDINATE_UNIT_PIXELS:
      return { x: 1, y: 1 };
    case CoordinateUnit.COORDINATE_UNIT_NORMALIZED_1000:
      return { x: size.width / 1000, y: size.height / 1000 };
    case CoordinateUnit.COORDINATE_UNIT_FRACTION:
      return { x: size.width, y: size.height };
    default:
      throw new InvalidArgumentError(
        `${field}.unit must be one of COORDINATE_UNIT_PIXELS, COORDINATE_UNIT_NORMALIZED_1000, COORDINATE_UNIT_FRACTION, got ${unit}`,
      );
  }
}

/** Converts a box to pixels of an image of `size`; coordinates must be finite, nothing else is checked. */
export function boxToPixels(box: Box | undefined, size: Size, field: string): PixelBox {
  if (box === undefined) throw new InvalidArgumentError(`${field} is required`);
  for (const side of ["left", "top", "right", "bottom"] as const) requireFinite(`${field}.${side}`, box[side]);
  const scale = scaleOf(box.unit, size, field);
  return {
    left: box.left * scale.x,
    top: box.top * scale.y,
    right: box.right * scale.x,
    bottom: box.bottom * scale.y,
  };
}

export function pointToPixels(point: Point, size: Size, field: string): PixelPoint {
  requireFinite(`${field}.x`, point.x);
  requireFinite(`${field}.y`, point.y);
  const scale = scaleOf(point.unit, size, field);
  return { x: point.x * scale.x, y: point.y * scale.y };
}

function describe(box: PixelBox): string {
  const round = (value: number) => Math.round(value * 100) / 100;
  return `[${round(box.left)}, ${round(box.top)}, ${round(box.right)}, ${round(box.bottom)}]`;
}

/**
 * Checks a pixel box is well formed and overlaps the image, then clamps it to
 * the image and rounds outwards (floor the start, ceil the end) so the region
 * covers every pixel the box touches. The result is never empty.
 */
export function boxToRegion(box: PixelBox, size: Size, field: string): Region {
  if (!(box.left < box.right)) {
    throw new InvalidArgumentError(`${field}: left (${box.left}) must be less than right (${box.right})`);
  }
  if (!(box.top < box.bottom)) {
    throw new InvalidArgumentError(`${field}: top (${box.top}) must be less than bottom (${box.bottom})`);
  }
  if (box.right <= 0 || box.bottom <= 0 || box.left >= size.width || box.top >= size.height) {
    throw new InvalidArgumentError(
      `${field} ${describe(box)} in pixels lies entirely outside the ${size.width}x${size.height} image`,
    );
  }
  const left = Math.max(0, Math.floor(box.left));
  const top = Math.max(0, Math.floor(box.top));
  const right = Math.min(size.width, Math.ceil(box.right));
  const bottom = Math.min(size.height, Math.ceil(box.bottom));
  return { left, top, width: right - left, height: bottom - top };
}

/** A point must lie on the image (edges included). */
export function requirePointInside(point: PixelPoint, size: Size, field: string): PixelPoint {
  if (point.x < 0 || point.y < 0 || point.x > size.width || point.y > size.height) {
    throw new InvalidArgumentError(
      `${field} (${point.x}, ${point.y}) in pixels lies outside the ${size.width}x${size.height} image`,
    );
  }
  return point;
}
