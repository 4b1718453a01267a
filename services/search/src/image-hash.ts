import sharp, { type Sharp } from "sharp";

/** Pixel limit for images we hash: larger inputs are refused rather than decoded. */
export const MAX_INPUT_PIXELS = 50_000_000;

/** A 64-bit difference hash and a 64-bit DCT (perceptual) hash, each as two 32-bit halves. */
export interface PerceptualHash {
  dhash: [number, number];
  phash: [number, number];
}

/** Largest Hamming distance between two PerceptualHashes (64 + 64 bits). */
export const MAX_DISTANCE = 128;

function packBits(bits: boolean[]): [number, number] {
  let high = 0;
  let low = 0;
  for (let index = 0; index < 32; index += 1) {
    high = (high << 1) | (bits[index] ? 1 : 0);
    low = (low << 1) | (bits[index + 32] ? 1 : 0);
  }
  return [high >>> 0, low >>> 0];
}

/** dHash: does brightness rise or fall between horizontal neighbours, on a 9x8 thumbnail. */
async function differenceHash(input: Sharp): Promise<[number, number]> {
  const pixels = await input.clone().resize(9, 8, RESIZE).raw().toBuffer();
  const bits: boolean[] = [];
  for (let row = 0; row < 8; row += 1)
    for (let column = 0; column < 8; column += 1)
      bits.push((pixels[row * 9 + column] ?? 0) + FLAT_MARGIN < (pixels[row * 9 + column + 1] ?? 0));
  return packBits(bits);
}

/**
 * Same resampling whatever the input format: JPEG/WebP shrink-on-load would
 * otherwise take a different path than PNG and shift the thumbnails.
 */
const RESIZE = { fit: "fill", fastShrinkOnLoad: false, kernel: "cubic" } as const;
/**
 * Flat areas (sky, walls, drawn backgrounds) have neighbours of equal
 * brightness; recompression noise would flip their bits at random. A change
 * smaller than this many grey levels counts as "no rise".
 */
const FLAT_MARGIN = 2;

const DCT_SIZE = 32;
const DCT_KEEP = 8;
// cos((2x+1)uπ/2N) for the low frequencies we keep, computed once.
const COSINES = Array.from({ length: DCT_KEEP }, (_, u) =>
  Float64Array.from({ length: DCT_SIZE }, (_, x) => Math.cos(((2 * x + 1) * u * Math.PI) / (2 * DCT_SIZE))),
);

/** pHash: sign of the low 8x8 DCT coefficients of a 32x32 thumbnail against their median (DC excluded). */
async function perceptualHash(input: Sharp): Promise<[number, number]> {
  const pixels = await input.clone().resize(DCT_SIZE, DCT_SIZE, RESIZE).raw().toBuffer();
  const rows: Float64Array[] = [];
  for (let y = 0; y < DCT_SIZE; y += 1) {
    const row = new Float64Array(DCT_KEEP);
    for (let u = 0; u < DCT_KEEP; u += 1) {
      let sum = 0;
      const cosines = COSINES[u] as Float64Array;
      for (let x = 0; x < DCT_SIZE; x += 1) sum += (pixels[y * DCT_SIZE + x] ?? 0) * (cosines[x] ?? 0);
      row[u] = sum;
    }
    rows.push(row);
  }
  const coefficients: number[] = [];
  for (let v = 0; v < DCT_KEEP; v += 1) {
    const cosines = COSINES[v] as Float64Array;
    for (let u = 0; u < DCT_KEEP; u += 1) {
      let sum = 0;
      for (let y = 0; y < DCT_SIZE; y += 1) sum += (rows[y]?.[u] ?? 0) * (cosines[y] ?? 0);
      coefficients.push(sum);
    }
  }
  const sorted = coefficients.slice(1).sort((a, b) => a - b);
  const median = ((sorted[31] ?? 0) + (sorted[32] ?? 0)) / 2;
  return packBits(coefficients.map((value) => value > median));
}

/** Hashes encoded image bytes; throws sharp's error when they do not decode. */
export async function hashImage(data: Uint8Array): Promise<PerceptualHash> {
  // Flatten transparency onto white and honour EXIF orientation so a re-saved copy hashes alike.
  const input = sharp(data, { limitInputPixels: MAX_INPUT_PIXELS })
    .rotate()
    .flatten({ background: "#ffffff" })
    .greyscale();
  const [dhash, phash] = await Promise.all([differenceHash(input), perceptualHash(input)]);
  return { dhash, phash };
}

function popcount(value: number): number {
  let v = value - ((value >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return (((v + (v >>> 4)) & 0x0f0f0f0f) * 0x01010101) >>> 24;
}

/** Bits that differ across both hashes (0 = perceptually identical, 128 = opposite). */
export function hammingDistance(a: PerceptualHash, b: PerceptualHash): number {
  return (
    popcount((a.dhash[0] ^ b.dhash[0]) >>> 0) +
    popcount((a.dhash[1] ^ b.dhash[1]) >>> 0) +
    popcount((a.phash[0] ^ b.phash[0]) >>> 0) +
    popcount((a.phash[1] ^ b.phash[1]) >>> 0)
  );
}
