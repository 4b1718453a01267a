import sharp from "sharp";
import type { NamedImage } from "../../../generated/toolplane/code/v1/code.js";
import {
  errorMessage,
  hasAcceptedSignature,
  InvalidArgumentError,
  limitError,
  MIME_BY_FORMAT,
  probeImage,
} from "../../runtime/src/index.js";
import type { InputImage } from "./backend.js";

export interface InputImageLimits {
  /** Images one session may bind. */
  maxImages: number;
  /** Decoded pixels of one image (a decompression-bomb guard). */
  maxPixels: number;
}

/** Variable names both languages accept (and no dunder names that would shadow interpreter internals). */
const NAME = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/**
 * Validates CreateSessionRequest.images at the edge: names, inline data, and
 * that each image decodes (its header, with sharp) within the pixel limit.
 */
export async function toInputImages(images: NamedImage[], limits: InputImageLimits): Promise<InputImage[]> {
  if (images.length > limits.maxImages) {
    throw limitError("images", images.length, limits.maxImages, "entries");
  }
  const seen = new Set<string>();
  const result: InputImage[] = [];
  for (const [index, named] of images.entries()) {
    const field = `images[${index}]`;
    if (!NAME.test(named.name) || named.name.startsWith("__")) {
      throw new InvalidArgumentError(
        `${field}.name ${JSON.stringify(named.name)} is not a valid variable name (letters, digits, _; 1-64 chars; no leading __)`,
      );
    }
    if (seen.has(named.name)) throw new InvalidArgumentError(`${field}.name ${JSON.stringify(named.name)} is repeated`);
    seen.add(named.name);
    const data = named.image?.data;
    if (!data || data.length === 0) {
      throw new InvalidArgumentError(
        `${field}.image.data is required (sha256 references are resolved by the gateway before the code service)`,
      );
    }
    const probed = await probeImage(data, `${field}.image.data`, limits.maxPixels);
    result.push({
      name: named.name,
      data,
      mimeType: probed.mimeType,
      width: probed.width,
      height: probed.height,
    });
  }
  return result;
}

/** Pixels one image returned by model code may have (the kernel refuses larger figures before rendering them). */
export const MAX_RETURNED_PIXELS = 50_000_000;

export interface ReturnedImage {
  data: Buffer;
  mimeType: string;
  width: number;
  height: number;
}

/**
 * Checks every image a sandbox returned, whatever produced it (a figure, display(), or model code that
 * reached into the kernel's own image list): an accepted format by its first bytes, real header dimensions
 * within the pixel cap, and a full decode (streamed, to an 8x8 thumbnail, so memory stays small). An image
 * that fails is dropped with a line on stderr for the model; the call itself still succeeds, because the
 * image is the model's code's product and never an infrastructure failure.
 */
export async function screenReturnedImages(
  images: Buffer[],
  maxPixels = MAX_RETURNED_PIXELS,
): Promise<{ images: ReturnedImage[]; notes: string }> {
  const kept: ReturnedImage[] = [];
  let notes = "";
  for (const [index, data] of images.entries()) {
    const problem = await returnedImageProblem(data, maxPixels);
    if (typeof problem === "string") notes += `[image ${index + 1} dropped: ${problem}]\n`;
    else kept.push({ data, ...problem });
  }
  return { images: kept, notes };
}

async function returnedImageProblem(
  data: Buffer,
  maxPixels: number,
): Promise<string | { mimeType: string; width: number; height: number }> {
  if (!hasAcceptedSignature(data)) return "its bytes are not a PNG, JPEG, WebP, GIF or TIFF image";
  try {
    const metadata = await sharp(data, { limitInputPixels: false }).metadata();
    const width = metadata.width ?? 0;
    const height = metadata.height ?? 0;
    if (width * height > maxPixels) {
      return `${width}x${height} is above the ${maxPixels} pixel limit of returned images`;
    }
    await sharp(data, { limitInputPixels: maxPixels, failOn: "error", sequentialRead: true })
      .resize(8, 8, { fit: "fill" })
      .raw()
      .toBuffer();
    return { mimeType: MIME_BY_FORMAT[metadata.format ?? ""] ?? "image/png", width, height };
  } catch (error) {
    return `it does not decode (${errorMessage(error).slice(0, 200)})`;
  }
}
