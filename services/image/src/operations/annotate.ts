import type { AnnotateOp, Annotation } from "../../../../generated/toolplane/image/v1/image.js";
import { InvalidArgumentError } from "../../../runtime/src/index.js";
import { requireColour } from "../colour.js";
import { type ImageLimits, limitText } from "../limits.js";
import { hasAlpha, pass } from "../raster.js";
import { boxToPixels, boxToRegion, pointToPixels, requirePointInside, type Size } from "../units.js";
import { requireInteger } from "../validate.js";
import { type Step, sizeOf } from "./step.js";

const MAX_LABEL_CHARS = 256;
const MAX_LINE_WIDTH = 256;
const DEFAULT_COLOUR = "red";

interface CheckedAnnotation {
  annotation: Annotation;
  field: string;
  colour: string;
  label: string;
}

/** Labels go into SVG text: escape markup and drop the control characters XML forbids. */
function escapeXml(text: string): string {
  return text
    .replace(/[\u0000-\u0008\u000b\u000c\u000e-\u001f]/g, "")
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;")
    .replace(/'/g, "&apos;");
}

function checkAnnotation(annotation: Annotation, field: string): CheckedAnnotation {
  if (annotation.box === undefined && annotation.point === undefined) {
    throw new InvalidArgumentError(`${field} needs a box or a point`);
  }
  if (annotation.label.length > MAX_LABEL_CHARS) {
    throw new InvalidArgumentError(
      `${field}.label is ${annotation.label.length} characters; at most ${MAX_LABEL_CHARS} are allowed`,
    );
  }
  requireInteger(`${field}.line_width`, annotation.lineWidth, 0, MAX_LINE_WIDTH);
  return {
    annotation,
    field,
    colour: requireColour(`${field}.color`, annotation.color, DEFAULT_COLOUR),
    label: escapeXml(annotation.label),
  };
}

/** One small SVG composited at (left, top); `body` is drawn in its own coordinates. */
export interface Overlay {
  left: number;
  top: number;
  width: number;
  height: number;
  body: string;
}

/** An overlay for the part of [left, top, right, bottom) inside the image, with the body shifted to its origin. */
function overlayWithin(
  size: Size,
  bounds: { left: number; top: number; right: number; bottom: number },
  body: (dx: number, dy: number) => string,
): Overlay | undefined {
  const left = Math.max(0, Math.floor(bounds.left));
  const top = Math.max(0, Math.floor(bounds.top));
  const right = Math.min(size.width, Math.ceil(bounds.right));
  const bottom = Math.min(size.height, Math.ceil(bounds.bottom));
  if (right <= left || bottom <= top) return undefined;
  return { left, top, width: right - left, height: bottom - top, body: body(-left, -top) };
}

/**
 * The overlays for all annotations: one per box, point and label, each only
 * as large as what it draws. libvips composites each over its own area, which
 * is several times faster than one transparent overlay the size of the image.
 */
export function annotationOverlays(items: CheckedAnnotation[], size: Size): Overlay[] {
  const short = Math.min(size.width, size.height);
  const defaultLine = Math.max(2, Math.round(short / 250));
  const fontSize = Math.max(10, Math.round(short / 40));
  const overlays: Array<Overlay | undefined> = [];
  for (const item of items) {
    const line = item.annotation.lineWidth || defaultLine;
    let labelX: number;
    let labelY: number;
    if (item.annotation.box !== undefined) {
      const field = `${item.field}.box`;
      const region = boxToRegion(boxToPixels(item.annotation.box, size, field), size, field);
      // The stroke is centred on the path: inset by half of it so the whole line lies inside the box.
      const inset = Math.min(line / 2, region.width / 2, region.height / 2);
      overlays.push(
        overlayWithin(
          size,
          { left: region.left, top: region.top, right: region.left + region.width, bottom: region.top + region.height },
          (dx, dy) =>
            `<rect x="${region.left + inset + dx}" y="${region.top + inset + dy}" width="${Math.max(0, region.width - 2 * inset)}" height="${Math.max(0, region.height - 2 * inset)}" fill="none" stroke="${item.colour}" stroke-width="${line}"/>`,
        ),
      );
      labelX = region.left;
      labelY = region.top >= fontSize + 4 ? region.top - fontSize - 4 : region.top;
    } else {
      const field = `${item.field}.point`;
      const point = requirePointInside(
        pointToPixels(item.annotation.point as NonNullable<Annotation["point"]>, size, field),
        size,
        field,
      );
      const radius = Math.max(3, line * 2);
      const reach = radius + 1;
      overlays.push(
        overlayWithin(
          size,
          { left: point.x - reach, top: point.y - reach, right: point.x + reach, bottom: point.y + reach },
          (dx, dy) =>
            `<circle cx="${point.x + dx}" cy="${point.y + dy}" r="${radius}" fill="${item.colour}" stroke="white" stroke-width="1"/>`,
        ),
      );
      labelX = point.x + radius + 2;
      labelY = point.y - fontSize / 2 - 2;
    }
    if (item.label !== "") {
      const width = Math.min(size.width, Math.ceil(item.annotation.label.length * fontSize * 0.62) + 6);
      const height = fontSize + 4;
      const x = Math.max(0, Math.min(labelX, size.width - width));
      const y = Math.max(0, Math.min(labelY, size.height - height));
      overlays.push(
        overlayWithin(
          size,
          { left: x, top: y, right: x + width, bottom: y + height },
          (dx, dy) =>
            `<rect x="${x + dx}" y="${y + dy}" width="${width}" height="${height}" fill="${item.colour}"/>` +
            `<text x="${x + dx + 3}" y="${y + dy + fontSize}" font-family="DejaVu Sans, sans-serif" font-size="${fontSize}" fill="white" stroke="black" stroke-width="0.4">${item.label}</text>`,
        ),
      );
    }
  }
  return overlays.filter((overlay): overlay is Overlay => overlay !== undefined);
}

function overlaySvg(overlay: Overlay): Buffer {
  return Buffer.from(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${overlay.width}" height="${overlay.height}">${overlay.body}</svg>`,
  );
}

export function compileAnnotate(op: AnnotateOp, field: string, limits: ImageLimits): Step {
  if (op.annotations.length === 0) throw new InvalidArgumentError(`${field}.annotations must not be empty`);
  if (op.annotations.length > limits.maxAnnotations) {
    throw new InvalidArgumentError(
      `${field}.annotations has ${op.annotations.length} entries, over ${limitText(limits, "maxAnnotations")}`,
    );
  }
  const items = op.annotations.map((annotation, index) =>
    checkAnnotation(annotation, `${field}.annotations[${index}]`),
  );
  return (raster) => {
    const overlays = annotationOverlays(items, sizeOf(raster)).map((overlay) => ({
      input: overlaySvg(overlay),
      left: overlay.left,
      top: overlay.top,
    }));
    // The overlays have alpha; an opaque image stays opaque (removeAlpha runs after the composite in sharp's order).
    const opaque = !hasAlpha(raster);
    return pass(
      raster,
      field,
      (image) => {
        const composited = image.composite(overlays);
        return opaque ? composited.removeAlpha() : composited;
      },
      { space: "srgb" },
    );
  };
}
