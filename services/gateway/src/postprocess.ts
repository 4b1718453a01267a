import sharp from "sharp";
import { errorMessage, InternalError, type ProbedImage, probeImage } from "../../runtime/src/index.js";

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

export interface DisplayImage extends Size {
  data: Buffer;
  mimeType: string;
}

/**
 * Prepares an image a tool produced for the model. A tool image that does not
 * decode is a backend bug (INFRASTRUCTURE), not the model's fault.
 */
export async function prepareForModel(data: Buffer): Promise<DisplayImage> {
  let probed: ProbedImage;
  try {
    probed = await probeImage(data, "tool image");
  } catch (error) {
    throw new InternalError(`a tool returned an image that does not decode: ${errorMessage(error)}`);
  }
  const target = displaySize(probed);
  if (target.width === probed.width && target.height === probed.height)
    return { data, mimeType: probed.mimeType, width: probed.width, height: probed.height };
  const resized = await sharp(data)
    .rotate()
    .resize(target.width, target.height, { fit: "fill", kernel: "lanczos3" })
    .png()
    .toBuffer();
  return { data: resized, mimeType: "image/png", ...target };
}
