import { setImmediate as yieldToEventLoop } from "node:timers/promises";
import sharp from "sharp";
import type { AnnotateOp, Annotation } from "../../../../generated/toolplane/image/v1/image.js";
import { codePointLength, InvalidArgumentError, limitError, requireInteger } from "../../../runtime/src/index.js";
import { requireColour } from "../colour.js";
import { type ImageLimits, limitText } from "../limits.js";
import { type LimitedScope, type Raster, runStep, toRaster, writableRaster } from "../raster.js";
import { boxToPixels, boxToRegion, pointToPixels, requirePointInside, type Size } from "../units.js";
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

/**
 * XML 1.0's Char production: tab, newline, carriage return, and the planes
 * without surrogates, U+FFFE and U+FFFF. `u` flag: a lone surrogate is one
 * code point of its own, and matches.
 */
const NOT_XML_CHAR = /[^\t\n\r\u0020-\uD7FF\uE000-\uFFFD\u{10000}-\u{10FFFF}]/gu;

/**
 * Labels go into SVG text, parsed by librsvg as XML: markup is escaped, and a
 * character XML forbids (C0 controls, lone surrogates, U+FFFE, U+FFFF) is drawn
 * as U+FFFD, the replacement character, as a browser shows undecodable text.
 * Replacing rather than refusing: the label is the model's free text, and one
 * odd character is no reason to lose the drawing (docs/security.md, "Blame").
 */
export function escapeXml(text: string): string {
  return text
    .replace(NOT_XML_CHAR, "\uFFFD")
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
  const labelChars = codePointLength(annotation.label);
  if (labelChars > MAX_LABEL_CHARS) {
    throw limitError(`${field}.label`, labelChars, MAX_LABEL_CHARS, "characters");
  }
  requireInteger(`${field}.line_width`, annotation.lineWidth, 0, MAX_LINE_WIDTH);
  return {
    annotation,
    field,
    colour: requireColour(`${field}.color`, annotation.color, DEFAULT_COLOUR),
    label: escapeXml(annotation.label),
  };
}

/** A solid rectangle in one colour (box outlines are four of these). */
interface Fill {
  kind: "fill";
  left: number;
  top: number;
  width: number;
  height: number;
  colour: string;
}

/** A small SVG (point marker, label) rendered by librsvg and blended at (left, top). */
interface Drawing {
  kind: "svg";
  left: number;
  top: number;
  width: number;
  height: number;
  body: string;
}

type Mark = Fill | Drawing;

/** The part of [left, top, right, bottom) inside the image as a drawing, its body shifted to its origin. */
function drawingWithin(
  size: Size,
  bounds: { left: number; top: number; right: number; bottom: number },
  body: (dx: number, dy: number) => string,
): Drawing | undefined {
  const left = Math.max(0, Math.floor(bounds.left));
  const top = Math.max(0, Math.floor(bounds.top));
  const right = Math.min(size.width, Math.ceil(bounds.right));
  const bottom = Math.min(size.height, Math.ceil(bounds.bottom));
  if (right <= left || bottom <= top) return undefined;
  return { kind: "svg", left, top, width: right - left, height: bottom - top, body: body(-left, -top) };
}

/**
 * Where every annotation goes on an image of `size`; converting and checking
 * the boxes and points here means a bad one fails before any pixel work.
 * Box outlines lie inside their box; a label sits above its box (inside when
 * there is no room), right of its point, always kept on the image.
 */
export function layoutAnnotations(items: CheckedAnnotation[], size: Size): Mark[] {
  const short = Math.min(size.width, size.height);
  const defaultLine = Math.max(2, Math.round(short / 250));
  const fontSize = Math.max(10, Math.round(short / 40));
  const marks: Array<Mark | undefined> = [];
  for (const item of items) {
    const line = item.annotation.lineWidth || defaultLine;
    let labelX: number;
    let labelY: number;
    if (item.annotation.box !== undefined) {
      const field = `${item.field}.box`;
      const { left, top, width, height } = boxToRegion(boxToPixels(item.annotation.box, size, field), size, field);
      const across = Math.max(1, Math.min(line, Math.floor(width / 2), Math.floor(height / 2)));
      const edge = (l: number, t: number, w: number, h: number): Fill | undefined =>
        w > 0 && h > 0 ? { kind: "fill", left: l, top: t, width: w, height: h, colour: item.colour } : undefined;
      marks.push(
        edge(left, top, width, across),
        edge(left, top + height - across, width, across),
        edge(left, top + across, across, height - 2 * across),
        edge(left + width - across, top + across, across, height - 2 * across),
      );
      labelX = left;
      labelY = top >= fontSize + 4 ? top - fontSize - 4 : top;
    } else {
      const field = `${item.field}.point`;
      const point = requirePointInside(
        pointToPixels(item.annotation.point as NonNullable<Annotation["point"]>, size, field),
        size,
        field,
      );
      const radius = Math.max(3, line * 2);
      const reach = radius + 1;
      marks.push(
        drawingWithin(
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
      const width = Math.min(size.width, Math.ceil(codePointLength(item.annotation.label) * fontSize * 0.62) + 6);
      const height = fontSize + 4;
      const x = Math.max(0, Math.min(labelX, size.width - width));
      const y = Math.max(0, Math.min(labelY, size.height - height));
      marks.push(
        drawingWithin(
          size,
          { left: x, top: y, right: x + width, bottom: y + height },
          (dx, dy) =>
            `<rect x="${x + dx}" y="${y + dy}" width="${width}" height="${height}" fill="${item.colour}"/>` +
            `<text x="${x + dx + 3}" y="${y + dy + fontSize}" font-family="DejaVu Sans, sans-serif" font-size="${fontSize}" fill="white" stroke="black" stroke-width="0.4">${item.label}</text>`,
        ),
      );
    }
  }
  return marks.filter((mark): mark is Mark => mark !== undefined);
}

/** RGBA pixels of an SVG drawing, rendered by librsvg. */
function renderDrawing(mark: Drawing): Promise<Buffer> {
  const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${mark.width}" height="${mark.height}">${mark.body}</svg>`;
  return sharp(Buffer.from(svg)).ensureAlpha().raw().toBuffer();
}

/** One RGBA pixel of a CSS colour, parsed by sharp (so names work), each distinct colour once per call. */
function colourPixels(marks: Mark[]): Map<string, Promise<Buffer>> {
  const pixels = new Map<string, Promise<Buffer>>();
  for (const mark of marks) {
    if (mark.kind === "fill" && !pixels.has(mark.colour)) {
      const pixel = sharp({ create: { width: 1, height: 1, channels: 4, background: mark.colour } })
        .raw()
        .toBuffer();
      pixels.set(mark.colour, pixel);
    }
  }
  return pixels;
}

/**
 * Alpha-blends RGBA pixels into the raster in place. `source` is either
 * width x height pixels or a single pixel repeated. The raster is 3 (RGB) or
 * 4 (RGBA) channels; its alpha, when present, becomes "over" of both.
 */
function blend(raster: Raster, mark: Mark, source: Buffer): void {
  const { data, width: canvasWidth, channels } = raster;
  const single = source.length === 4;
  for (let y = 0; y < mark.height; y++) {
    let from = single ? 0 : y * mark.width * 4;
    let to = ((mark.top + y) * canvasWidth + mark.left) * channels;
    for (let x = 0; x < mark.width; x++) {
      const alpha = (source[from + 3] as number) / 255;
      if (alpha > 0) {
        const keep = 1 - alpha;
        for (let band = 0; band < 3; band++) {
          data[to + band] = Math.round((source[from + band] as number) * alpha + (data[to + band] as number) * keep);
        }
        if (channels === 4) data[to + 3] = Math.round(255 * alpha + (data[to + 3] as number) * keep);
      }
      if (!single) from += 4;
      to += channels;
    }
  }
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
  return async (source, context: LimitedScope) => {
    const marks = layoutAnnotations(items, sizeOf(source));
    // Marks are drawn straight into the decoded pixels: libvips' composite converts the whole image to float and
    // back, which costs more than decoding it; the marks themselves are a few thousand pixels each.
    const decoded = await toRaster(source, context);
    const raster =
      decoded.channels <= 2
        ? ((await runStep(decoded, context, `${field} (to colour)`, (image) => image, { space: "srgb" })) as Raster)
        : await writableRaster(decoded, context);
    const colours = colourPixels(marks);
    const pixels = await Promise.all(
      marks.map((mark) => (mark.kind === "svg" ? renderDrawing(mark) : (colours.get(mark.colour) as Promise<Buffer>))),
    );
    for (const [index, mark] of marks.entries()) {
      blend(raster, mark, pixels[index] as Buffer);
      if (index % 16 === 15) await yieldToEventLoop();
    }
    return raster;
  };
}
