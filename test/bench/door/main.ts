/**
 * What checking a caller's image at the door costs CreateSession: verifyImage
 * (whitelist, PNG metadata bounds, a full decode failing on any warning)
 * against probeImage (the header only, what CreateSession did before), on a
 * 1280x720 JPEG and a 3840x2160 PNG, in the same run.
 *   node dist/test/bench/door/main.js [--quick]
 * `--quick`: a few iterations, proves the script works; no figure is judged.
 */
import { createHash } from "node:crypto";
import sharp, { type Sharp } from "sharp";
import { probeImage, verifyImage } from "../../../services/runtime/src/index.js";

const quick = process.argv.includes("--quick");
const ITERATIONS = quick ? 3 : 60;
const WARMUP = quick ? 1 : 5;

/** A photo-like picture: smooth gradients with noise, so the encoders work as on real inputs. */
function picture(width: number, height: number): Sharp {
  const pixels = Buffer.alloc(width * height * 3);
  let seed = 12345;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      seed = (seed * 1103515245 + 12345) >>> 0;
      const noise = (seed >>> 24) % 8;
      const offset = (y * width + x) * 3;
      pixels[offset] = ((x * 255) / width + noise) & 255;
      pixels[offset + 1] = ((y * 255) / height + noise) & 255;
      pixels[offset + 2] = (((x + y) * 127) / (width + height) + noise) & 255;
    }
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } });
}

async function p50(run: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < WARMUP; i++) await run();
  const times: number[] = [];
  for (let i = 0; i < ITERATIONS; i++) {
    const started = performance.now();
    await run();
    times.push(performance.now() - started);
  }
  times.sort((a, b) => a - b);
  return times[Math.floor(times.length / 2)] as number;
}

const jpeg = await picture(1280, 720).jpeg({ quality: 90 }).toBuffer();
const png = await picture(3840, 2160).png().toBuffer();
process.stdout.write(
  `door benchmark${quick ? " (--quick: tiny run, figures not meaningful)" : ""}: p50 of ${ITERATIONS} calls each, one at a time; the box is shared with other work, so figures are noisy\n`,
);
const rows: Array<Record<string, unknown>> = [];
for (const [name, data] of [
  ["1280x720 JPEG", jpeg],
  ["3840x2160 PNG", png],
] as const) {
  const hash = await p50(async () => createHash("sha256").update(data).digest("hex"));
  const header = await p50(() => probeImage(data, "images[0].data"));
  const full = await p50(() => verifyImage(data, "images[0].data", 40_000_000));
  rows.push({ image: name, bytes: data.length, sha256Ms: hash, headerMs: header, verifyMs: full });
  process.stdout.write(
    `${name} (${data.length} bytes): header only ${header.toFixed(2)} ms (baseline), full verify ${full.toFixed(2)} ms: CreateSession pays +${(full - header).toFixed(2)} ms per new image (x${(full / header).toFixed(1)}); for scale, CreateSession's sha256 of the same bytes takes ${hash.toFixed(2)} ms; an image already stored is not decoded again\n`,
  );
}
process.stdout.write(`${JSON.stringify({ benchmark: "door", quick, iterations: ITERATIONS, results: rows })}\n`);
