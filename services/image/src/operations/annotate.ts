import type { AnnotateOp, Annotation } from "../../../../generated/toolplane/image/v1/image.js";
import { InvalidArgumentError } from "../../../runtime/src/index.js";
import { requireColour } from "../colour.js";
import { type ImageLimits, limitText } from "../limits.js";
import { runStep } from "../raster.js";
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

/** Builds the overlay: one SVG the size of the image, drawn by librsvg and composited by libvips. */
export function annotationSvg(items: CheckedAnnotation[], size: Size): string {
  const short = Math.min(size.width, size.height);
  const defaultLine = Math.max(2, Math.round(short / 250));
  const fontSize = Math.max(10, Math.round(short / 40));
  const parts: string[] = [];
  for (const item of items) {
    const line = item.annotation.lineWidth || defaultLine;
    let labelX: number;
    let labelY: number;
    if (item.annotation.box !== undefined) {
      const field = `${item.field}.box`;
      const region = boxToRegion(boxToPixels(item.annotation.box, size, field), size, field);
      // The stroke is centred on the path: inset by half of it so the whole line lies inside the box.
      const inset = Math.min(line / 2, region.width / 2, region.height / 2);
      parts.push(
        `<rect x="${region.left + inset}" y="${region.top + inset}" width="${Math.max(0, region.width - 2 * inset)}" height="${Math.max(0, region.height - 2 * inset)}" fill="none" stroke="${item.colour}" stroke-width="${line}"/>`,
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
      parts.push(
        `<circle cx="${point.x}" cy="${point.y}" r="${radius}" fill="${item.colour}" stroke="white" stroke-width="1"/>`,
      );
      labelX = point.x + radius + 2;
      labelY = point.y - fontSize / 2 - 2;
    }
    if (item.label !== "") {
      const labelWidth = Math.ceil(item.annotation.label.length * fontSize * 0.62) + 6;
      const x = Math.max(0, Math.min(labelX, size.width - labelWidth));
      const y = Math.max(0, Math.min(labelY, size.height - fontSize - 4));
      parts.push(`<rect x="${x}" y="${y}" width="${labelWidth}" height="${fontSize + 4}" fill="${item.colour}"/>`);
      parts.push(
        `<text x="${x + 3}" y="${y + fontSize}" font-family="DejaVu Sans, sans-serif" font-size="${fontSize}" fill="white" stroke="black" stroke-width="0.4">${item.label}</text>`,
      );
    }
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${size.width}" height="${size.height}">${parts.join("")}</svg>`;
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
  return (raster, context) => {
    const overlay = Buffer.from(annotationSvg(items, sizeOf(raster)));
    return runStep(raster, context, field, (image) => image.composite([{ input: overlay, left: 0, top: 0 }]), {
      space: "srgb",
    });
  };
}
