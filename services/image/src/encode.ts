import { throwIfStopped } from "../../runtime/src/index.js";
import {
  colourSpaceOf,
  hasAlpha,
  type LimitedScope,
  open,
  type Pass,
  passError,
  readable,
  type Source,
  settle,
} from "./raster.js";

export type OutputFormat = "png" | "jpeg" | "webp";

export interface EncodedImage {
  data: Buffer;
  format: OutputFormat;
  mimeType: string;
  width: number;
  height: number;
}

/**
 * Encodes the final image, running the last pending pass and the encoder as
 * one libvips pass. JPEG has no alpha: an image with alpha is first settled
 * and flattened onto white (sharp flattens before its other operations, so
 * this cannot be fused).
 */
export async function encode(
  result: Source | Pass,
  format: OutputFormat,
  quality: number,
  context: LimitedScope,
): Promise<EncodedImage> {
  const alpha = result.kind === "pass" ? result.hasAlpha : hasAlpha(result);
  const last = format === "jpeg" && alpha ? await settle(result, context) : result;
  throwIfStopped(context.scope, "encoding");
  const description = last.kind === "pass" ? `${last.description} and encoding ${format}` : `encoding ${format}`;
  const source = await readable(
    last.kind === "pass" ? last.source : last,
    last.kind === "pass" ? last.scale : undefined,
  );
  let image =
    last.kind === "pass"
      ? last.build(open(source, context)).toColourspace(last.space)
      : open(source, context).toColourspace(colourSpaceOf(source.channels));
  if (format === "jpeg") {
    if (alpha) image = image.flatten({ background: "#ffffff" });
    // Two-pass Huffman optimisation (sharp's default) costs more CPU than the whole decode of a 2 MP photo for a few
    // per cent of bytes on a loopback hop; PIL does not do it by default either.
    image = image.jpeg({ quality, optimiseCoding: false });
  } else if (format === "webp") {
    image = image.webp({ quality });
  } else {
    image = image.png();
  }
  try {
    const { data, info } = await image.toBuffer({ resolveWithObject: true });
    return { data, format, mimeType: `image/${format}`, width: info.width, height: info.height };
  } catch (error) {
    throw passError(error, source, context, description);
  }
}
