import sharp from "sharp";
import type { SourceImage } from "./local-image-index.js";

/**
 * The image set `make run` serves when no TOOLPLANE_SEARCH_IMAGE_DIR is given:
 * drawn at start-up (no binary files in the repository), each a distinct
 * composition so perceptual hashes tell them apart.
 */
const SHAPES: Array<{ name: string; svg: (fg: string) => string }> = [
  { name: "circle", svg: (fg) => `<circle cx="160" cy="120" r="80" fill="${fg}"/>` },
  { name: "square", svg: (fg) => `<rect x="60" y="40" width="140" height="140" fill="${fg}"/>` },
  { name: "triangle", svg: (fg) => `<polygon points="160,20 290,220 30,220" fill="${fg}"/>` },
  {
    name: "vertical stripes",
    svg: (fg) =>
      [0, 1, 2, 3, 4].map((i) => `<rect x="${i * 64}" y="0" width="32" height="240" fill="${fg}"/>`).join(""),
  },
  {
    name: "horizontal stripes",
    svg: (fg) => [0, 1, 2, 3].map((i) => `<rect x="0" y="${i * 60}" width="320" height="30" fill="${fg}"/>`).join(""),
  },
  {
    name: "concentric rings",
    svg: (fg) =>
      [100, 70, 40]
        .map((r) => `<circle cx="160" cy="120" r="${r}" fill="none" stroke="${fg}" stroke-width="14"/>`)
        .join(""),
  },
  {
    name: "checkerboard",
    svg: (fg) =>
      Array.from({ length: 24 }, (_, i) => (((i % 6) + Math.floor(i / 6)) % 2 === 0 ? i : -1))
        .filter((i) => i >= 0)
        .map((i) => `<rect x="${(i % 6) * 54}" y="${Math.floor(i / 6) * 60}" width="54" height="60" fill="${fg}"/>`)
        .join(""),
  },
  { name: "diagonal band", svg: (fg) => `<polygon points="0,240 0,160 240,0 320,0 320,80 80,240" fill="${fg}"/>` },
];

const PALETTES: Array<{ name: string; background: string; foreground: string; gradientTo: string }> = [
  { name: "orange on navy", background: "#14213d", foreground: "#fca311", gradientTo: "#3a5a9b" },
  { name: "teal on cream", background: "#fdf6e3", foreground: "#2a9d8f", gradientTo: "#d9c89e" },
  { name: "crimson on pale grey", background: "#e5e5e5", foreground: "#c1121f", gradientTo: "#8d99ae" },
];

export async function sampleImages(): Promise<SourceImage[]> {
  const images: SourceImage[] = [];
  for (const [paletteIndex, palette] of PALETTES.entries()) {
    for (const [shapeIndex, shape] of SHAPES.entries()) {
      // The gradient direction varies with the pair so same-shape images differ in more than colour.
      const angle = (shapeIndex * 3 + paletteIndex) % 4;
      const [x2, y2] = [
        ["1", "0"],
        ["0", "1"],
        ["1", "1"],
        ["0", "0.5"],
      ][angle] as [string, string];
      const svg = `<svg xmlns="http://www.w3.org/2000/svg" width="320" height="240">
<defs><linearGradient id="g" x1="0" y1="0" x2="${x2}" y2="${y2}"><stop offset="0" stop-color="${palette.background}"/><stop offset="1" stop-color="${palette.gradientTo}"/></linearGradient></defs>
<rect width="320" height="240" fill="url(#g)"/>${shape.svg(palette.foreground)}</svg>`;
      const data = await sharp(Buffer.from(svg)).png().toBuffer();
      const slug = `${shape.name}-${palette.name}`.replace(/\s+/g, "-");
      images.push({
        data: new Uint8Array(data),
        title: `${shape.name[0]?.toUpperCase()}${shape.name.slice(1)}, ${palette.name}`,
        url: `https://images.toolplane.invalid/sample/${slug}.png`,
      });
    }
  }
  return images;
}
