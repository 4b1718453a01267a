import sharp from "sharp";
import { seededRandom } from "../../runtime/src/index.js";
import type { SourceImage } from "./local-image-index.js";

/**
 * The image set `make run` serves when no TOOLPLANE_SEARCH_IMAGE_DIR is given:
 * drawn at start-up from a fixed seed (no binary files in the repository).
 * Each picture is an asymmetric composition of a few shapes over a gradient,
 * so their perceptual hashes differ in structure, not only in colour (hashes
 * are computed on grey levels).
 */
const COLOURS: Array<[string, string]> = [
  ["navy", "#14213d"],
  ["orange", "#fca311"],
  ["teal", "#2a9d8f"],
  ["cream", "#fdf6e3"],
  ["crimson", "#c1121f"],
  ["charcoal", "#333533"],
  ["sky blue", "#8ecae6"],
  ["olive", "#6a994e"],
  ["white", "#ffffff"],
  ["black", "#000000"],
];
const SHAPES = ["circle", "square", "triangle", "bar"] as const;
const WIDTH = 320;
const HEIGHT = 240;
const COUNT = 24;

function pick<T>(items: readonly T[], next: () => number): T {
  return items[Math.floor(next() * items.length)] as T;
}

function shapeSvg(shape: (typeof SHAPES)[number], colour: string, next: () => number): string {
  const x = Math.round(20 + next() * (WIDTH - 120));
  const y = Math.round(20 + next() * (HEIGHT - 100));
  const size = Math.round(40 + next() * 70);
  switch (shape) {
    case "circle":
      return `<circle cx="${x + size / 2}" cy="${y + size / 2}" r="${size / 2}" fill="${colour}"/>`;
    case "square":
      return `<rect x="${x}" y="${y}" width="${size}" height="${size}" fill="${colour}"/>`;
    case "triangle":
      return `<polygon points="${x + size / 2},${y} ${x + size},${y + size} ${x},${y + size}" fill="${colour}"/>`;
    case "bar":
      return `<rect x="${x}" y="${y}" width="${size * 2}" height="${Math.round(size / 3)}" fill="${colour}"/>`;
  }
}

export async function sampleImages(): Promise<SourceImage[]> {
  const next = seededRandom(20261125);
  const images: SourceImage[] = [];
  for (let index = 0; index < COUNT; index += 1) {
    const [backgroundName, background] = pick(COLOURS, next);
    const [, gradientTo] = pick(COLOURS, next);
    const angle = next();
    const parts: string[] = [];
    const described: string[] = [];
    for (let shapeIndex = 0; shapeIndex < 3; shapeIndex += 1) {
      const shape = pick(SHAPES, next);
      let [colourName, colour] = pick(COLOURS, next);
      if (colour === background)
        [colourName, colour] = COLOURS[(COLOURS.findIndex((c) => c[1] === colour) + 3) % COLOURS.length] as [
          string,
          string,
        ];
      parts.push(shapeSvg(shape, colour, next));
      described.push(`${colourName} ${shape}`);
    }
    const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}">
<defs><linearGradient id="g" x1="0" y1="0" x2="${angle.toFixed(2)}" y2="${(1 - angle).toFixed(2)}"><stop offset="0" stop-color="${background}"/><stop offset="1" stop-color="${gradientTo}"/></linearGradient></defs>
<rect width="${WIDTH}" height="${HEIGHT}" fill="url(#g)"/>${parts.join("")}</svg>`;
    const number = String(index + 1).padStart(2, "0");
    images.push({
      data: new Uint8Array(await sharp(Buffer.from(svg)).png().toBuffer()),
      title: `Composition ${number}: ${described.join(", ")} on ${backgroundName}`,
      url: `https://images.toolplane.invalid/sample/composition-${number}.png`,
    });
  }
  return images;
}
