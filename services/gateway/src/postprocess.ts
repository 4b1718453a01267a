import sharp from "sharp";
import { errorMessage, InternalError, type ProbedImage, probeImage } from "../../runtime/src/index.js";
import type { ImageResize } from "./formats/index.js";

/** Qwen-VL rejects images with a side under this many pixels. */
export const MIN_SHORT_SIDE = 32;
/** Aspect ratios above this are squashed... */
export const MAX_ASPECT_RATIO = 200;
/** ...to this one. */
export const SQUASHED_ASPECT_RATIO = 150;
/** Images shown to the model per round (one Step or Execute) and per trajectory. */
export const MAX_IMAGES_PER_ROUND = 10;
export const MAX_IMAGES_PER_TRAJECTORY = 50;

export interface Size {
  width: number;
  height: number;
}

/**
 * The size a tool image is shown at, as the DeepEyesV2 client prepares images
 * for Qwen-VL: an aspect ratio above 200 is squashed to 150 by shortening the
 * long side, then a short side under 32 px is scaled up (both sides, rounding up).
 * Returns the input size when nothing needs changing.
 */
export function displaySize(size: Size): Size {
  let { width, height } = size;
  const short = Math.min(width, height);
  const long = Math.max(width, height);
  if (long / short > MAX_ASPECT_RATIO) {
    const squashed = Math.floor(short * SQUASHED_ASPECT_RATIO);
    if (width > height) width = squashed;
    else height = squashed;
  }
  const newShort = Math.min(width, height);
  if (newShort < MIN_SHORT_SIDE) {
    const ratio = MIN_SHORT_SIDE / newShort;
    width = Math.max(MIN_SHORT_SIDE, Math.ceil(width * ratio));
    height = Math.max(MIN_SHORT_SIDE, Math.ceil(height * ratio));
  }
  return { width, height };
}

/**
 * DeepEyesV2's own `maybe_resize_image` (deepeyesv2.py @ 0373e6e), which its client
 * applies to images produced by code only: an aspect ratio above 200 becomes
 * min(150, ratio / 2) with both sides recomputed (`int()` truncation), then a short
 * side under 32 px is scaled up to 32 (`ceil`). 3000x10 -> 1500x20 -> 2400x32.
 */
export function referenceDisplaySize(size: Size): Size {
  let { width, height } = size;
  if (Math.max(height, width) / Math.min(height, width) > MAX_ASPECT_RATIO) {
    const maxValue = Math.max(height, width);
    const minValue = Math.min(height, width);
    const oldScale = maxValue / minValue;
    const maxRatio = Math.min(SQUASHED_ASPECT_RATIO, oldScale / 2);
    const targetMax = Math.trunc(minValue * maxRatio);
    if (height > width) {
      height = targetMax;
      width = Math.trunc((width * oldScale) / maxRatio);
    } else {
      width = targetMax;
      height = Math.trunc((height * oldScale) / maxRatio);
    }
  }
  if (Math.min(height, width) >= MIN_SHORT_SIDE) return { width, height };
  const ratio = MIN_SHORT_SIDE / Math.min(height, width);
  return { width: Math.ceil(width * ratio), height: Math.ceil(height * ratio) };
}

const DISPLAY_SIZES: Record<ImageResize, (size: Size) => Size> = {
  "qwen-vl": displaySize,
  "deepeyes-v2": referenceDisplaySize,
  none: (size) => size,
};

export interface DisplayImage extends Size {
  data: Buffer;
  mimeType: string;
}

/**
 * Prepares an image a tool produced for the model. A tool image that does not
 * decode is a backend bug (INFRASTRUCTURE), not the model's fault.
 */
export async function prepareForModel(data: Buffer, resize: ImageResize = "qwen-vl"): Promise<DisplayImage> {
  let probed: ProbedImage;
  try {
    probed = await probeImage(data, "tool image");
  } catch (error) {
    throw new InternalError(`a tool returned an image that does not decode: ${errorMessage(error)}`);
  }
  const target = DISPLAY_SIZES[resize](probed);
  if (target.width === probed.width && target.height === probed.height)
    return { data, mimeType: probed.mimeType, width: probed.width, height: probed.height };
  const resized = await sharp(data)
    .rotate()
    .resize(target.width, target.height, { fit: "fill", kernel: "lanczos3" })
    .png()
    .toBuffer();
  return { data: resized, mimeType: "image/png", ...target };
}
