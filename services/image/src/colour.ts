import sharp from "sharp";
import { InvalidArgumentError } from "../../runtime/src/index.js";

/**
 * Colours arrive as CSS strings ("#ff0000", "rgb(0,128,255)", "white") and end
 * up both in sharp calls and inside SVG attributes. sharp's own parser decides
 * validity (so rotate and annotate accept the same set), and a strict character
 * set keeps anything that could break out of an SVG attribute away.
 */
const SAFE_COLOUR = /^[#a-zA-Z0-9(),.%\s]{1,64}$/;

export function requireColour(field: string, value: string, fallback: string): string {
  const colour = value.trim() === "" ? fallback : value.trim();
  const invalid = () =>
    new InvalidArgumentError(
      `${field} must be a CSS colour such as "#ff0000", "rgb(255,0,0)" or "red", got ${JSON.stringify(value)}`,
    );
  if (!SAFE_COLOUR.test(colour)) throw invalid();
  try {
    // The constructor parses the colour synchronously and throws on a bad one; nothing is rendered.
    sharp({ create: { width: 1, height: 1, channels: 4, background: colour } });
  } catch {
    throw invalid();
  }
  return colour;
}

/** Whether a validated colour is fully opaque (rendered once into one pixel by sharp's own parser). */
export async function colourIsOpaque(colour: string): Promise<boolean> {
  const pixel = await sharp({ create: { width: 1, height: 1, channels: 4, background: colour } })
    .raw()
    .toBuffer();
  return pixel[3] === 255;
}
