import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import sharp from "sharp";
import { ImageFormat, type Operation, ResizeOp_Fit } from "../../../generated/toolplane/image/v1/image.js";
import { pixelBox, resizeOp, zoomOp } from "../../../test/fixtures/image/generate.js";
import { seededRandom, unboundedScope } from "../../runtime/src/index.js";
import { isBicubicEnlargement } from "./bicubic.js";
import { DecodedCache } from "./decoded-cache.js";
import { DEFAULT_LIMITS, WorkQueue } from "./limits.js";
import { ImagePipeline } from "./pipeline.js";

const { resample } = createRequire(import.meta.url)("../native/resample.node") as {
  resample: (...args: unknown[]) => Promise<Buffer>;
};

const scratch = mkdtempSync(join(tmpdir(), "toolplane-bicubic-"));
after(() => rmSync(scratch, { recursive: true, force: true }));

interface Case {
  channels: 1 | 3;
  width: number;
  height: number;
  /** Region cropped first: left, top, width, height. */
  region: [number, number, number, number];
  output: [number, number];
  pixels: Buffer;
}

/**
 * What Debian's Pillow makes of each case: `Image.frombytes(...).crop(box).resize(size, Image.BICUBIC)`.
 * One Python process for all cases (the raw pixels go through files in a scratch folder).
 */
function pillow(cases: Case[]): Buffer[] {
  const manifest = cases.map((item, index) => {
    const input = join(scratch, `in-${index}.raw`);
    writeFileSync(input, item.pixels);
    const [left, top, width, height] = item.region;
    return {
      input,
      output: join(scratch, `out-${index}.raw`),
      mode: item.channels === 1 ? "L" : "RGB",
      size: [item.width, item.height],
      box: [left, top, left + width, top + height],
      resize: item.output,
    };
  });
  const script = [
    "import json, sys",
    "from PIL import Image",
    "for c in json.load(sys.stdin):",
    "    image = Image.frombytes(c['mode'], tuple(c['size']), open(c['input'], 'rb').read())",
    "    result = image.crop(tuple(c['box'])).resize(tuple(c['resize']), Image.BICUBIC)",
    "    open(c['output'], 'wb').write(result.tobytes())",
  ].join("\n");
  execFileSync("/usr/bin/python3", ["-c", script], { input: JSON.stringify(manifest) });
  return manifest.map((entry) => readFileSync(entry.output));
}

function noise(length: number, random: () => number): Buffer {
  return Buffer.from(Array.from({ length }, () => Math.floor(random() * 256)));
}

const live = unboundedScope();
const png = { format: ImageFormat.IMAGE_FORMAT_PNG, quality: 90, minShortSide: 0 };

/** Decoded pixels as stored: sharp would hand a grey image on as sRGB unless told to keep it grey. */
async function rawOf(encoded: Uint8Array) {
  const grey = (await sharp(encoded).metadata()).channels === 1;
  const image = grey ? sharp(encoded).toColourspace("b-w") : sharp(encoded);
  const { data, info } = await image.raw().toBuffer({ resolveWithObject: true });
  return { data, width: info.width, height: info.height, channels: info.channels };
}

describe("native bicubic resampler", () => {
  it("gives Pillow's BICUBIC bytes for crops enlarged, reduced, kept and squashed, grey and RGB", async () => {
    const random = seededRandom(11);
    const pick = (below: number) => Math.floor(random() * below);
    const cases: Case[] = [];
    for (let index = 0; index < 48; index++) {
      const channels = index % 2 === 0 ? 1 : 3;
      const width = 1 + pick(120);
      const height = 1 + pick(90);
      const left = pick(width);
      const top = pick(height);
      const region: Case["region"] = [left, top, 1 + pick(width - left), 1 + pick(height - top)];
      cases.push({
        channels,
        width,
        height,
        region,
        output: [1 + pick(260), 1 + pick(260)],
        pixels: noise(width * height * channels, random),
      });
    }
    // The edges of the filter: a 1x1 region, a single row and column, the same size, exactly 2x, and 1 -> 2000.
    const fixed: Array<[Case["region"], Case["output"]]> = [
      [
        [5, 5, 1, 1],
        [7, 3],
      ],
      [
        [0, 9, 40, 1],
        [80, 5],
      ],
      [
        [39, 0, 1, 30],
        [4, 60],
      ],
      [
        [0, 0, 40, 30],
        [40, 30],
      ],
      [
        [3, 4, 30, 20],
        [60, 40],
      ],
      [
        [0, 0, 2, 1],
        [2000, 3],
      ],
    ];
    for (const [region, output] of fixed) {
      cases.push({ channels: 3, width: 40, height: 30, region, output, pixels: noise(40 * 30 * 3, random) });
    }
    const expected = pillow(cases);
    for (const [index, item] of cases.entries()) {
      const got = await resample(item.pixels, item.width, item.height, item.channels, ...item.region, ...item.output);
      assert.ok(
        got.equals(expected[index] as Buffer),
        `case ${index}: ${JSON.stringify({ ...item, pixels: undefined })}`,
      );
    }
  });

  it("refuses arguments that would read or write out of bounds, and leaves the source untouched", async () => {
    const pixels = Buffer.alloc(10 * 10 * 3, 7);
    const call =
      (...args: unknown[]) =>
      () =>
        resample(...args);
    assert.throws(call(pixels, 10, 10, 3, 0, 0, 10, 10, 20), /10 arguments/);
    assert.throws(call("pixels", 10, 10, 3, 0, 0, 10, 10, 20, 20), /src must be a Buffer/);
    assert.throws(call(pixels, 10, 11, 3, 0, 0, 10, 10, 20, 20), /length does not match/);
    assert.throws(call(pixels, 10, 10, 4, 0, 0, 10, 10, 20, 20), /channels must be 1 or 3/);
    assert.throws(call(pixels, 10, 10, 3, 5, 0, 6, 10, 20, 20), /region outside/);
    assert.throws(call(pixels, 10, 10, 3, 0, -1, 10, 10, 20, 20), /region outside/);
    assert.throws(call(pixels, 10, 10, 3, 0, 0, 0, 10, 20, 20), /region outside/);
    assert.throws(call(pixels, 10, 10, 3, 0, 0, 10, 10, 0, 20), /output size/);
    assert.throws(call(pixels, 10, 10, 3, 0, 0, 10, 10, 70000, 20), /output size/);
    assert.throws(call(pixels, 10, 10, 3, 0, 0, 10, 10, 1.5, 20), /integers/);
    const out = await resample(pixels, 10, 10, 3, 2, 2, 4, 4, 9, 9);
    assert.equal(out.length, 9 * 9 * 3);
    assert.ok(
      out.every((value) => value === 7),
      "a flat image stays flat",
    );
    assert.ok(pixels.every((value) => value === 7));
  });

  it("takes only enlargements of grey or RGB pixels", () => {
    assert.equal(isBicubicEnlargement(3, { width: 10, height: 10 }, { width: 20, height: 10 }), true);
    assert.equal(isBicubicEnlargement(1, { width: 10, height: 10 }, { width: 11, height: 11 }), true);
    assert.equal(isBicubicEnlargement(3, { width: 10, height: 10 }, { width: 10, height: 10 }), false);
    assert.equal(isBicubicEnlargement(3, { width: 10, height: 10 }, { width: 20, height: 9 }), false);
    assert.equal(isBicubicEnlargement(4, { width: 10, height: 10 }, { width: 20, height: 20 }), false);
    assert.equal(isBicubicEnlargement(2, { width: 10, height: 10 }, { width: 20, height: 20 }), false);
  });
});

describe("image pipeline enlargements match Pillow", () => {
  const width = 160;
  const height = 120;
  const random = seededRandom(5);
  const rgb = noise(width * height * 3, random);
  const grey = noise(width * height, random);
  const queue = () => new WorkQueue(2, 16, 50);
  const pipelines = {
    "without cache": new ImagePipeline(DEFAULT_LIMITS, queue()),
    "with cache": new ImagePipeline(DEFAULT_LIMITS, queue(), new DecodedCache(64 * 1024 * 1024)),
  };

  for (const [name, pipeline] of Object.entries(pipelines)) {
    it(`zoom, smart resize, fill resize and output.min_short_side of PNGs, ${name}`, async () => {
      const inputs = {
        rgb: { pixels: rgb, channels: 3 as const },
        grey: { pixels: grey, channels: 1 as const },
      };
      for (const [kind, input] of Object.entries(inputs)) {
        const image = sharp(input.pixels, { raw: { width, height, channels: input.channels } });
        const encoded = await (input.channels === 1 ? image.toColourspace("b-w") : image).png().toBuffer();
        const requests: Array<{
          what: string;
          ops: Operation[];
          region: Case["region"];
          output: Case["output"];
          minShortSide?: number;
        }> = [
          {
            what: "zoom 2x",
            ops: [zoomOp(pixelBox(30, 20, 90, 60), { scale: 2 })],
            region: [30, 20, 60, 40],
            output: [120, 80],
          },
          {
            what: "zoom 3.3x at the corner",
            ops: [zoomOp(pixelBox(140, 100, 160, 120), { scale: 3.3 })],
            region: [140, 100, 20, 20],
            output: [66, 66],
          },
          {
            what: "smart resize",
            ops: [resizeOp({ smart: { factor: 28, minPixels: 200000, maxPixels: 0 } })],
            region: [0, 0, width, height],
            output: [532, 392],
          },
          {
            what: "fill resize",
            ops: [resizeOp({ width: 500, height: 130, fit: ResizeOp_Fit.FIT_FILL })],
            region: [0, 0, width, height],
            output: [500, 130],
          },
          {
            what: "crop then output.min_short_side",
            ops: [{ crop: { box: pixelBox(10, 10, 30, 20) } }],
            region: [10, 10, 20, 10],
            output: [64, 32],
            minShortSide: 32,
          },
        ];
        const expected = pillow(
          requests.map((request) => ({
            channels: input.channels,
            width,
            height,
            region: request.region,
            output: request.output,
            pixels: input.pixels,
          })),
        );
        for (const [index, request] of requests.entries()) {
          const result = await pipeline.process(
            encoded,
            request.ops,
            { ...png, minShortSide: request.minShortSide ?? 0 },
            live,
          );
          const got = await rawOf(result.image.data);
          const what = `${request.what} of ${kind}`;
          assert.deepEqual([got.width, got.height, got.channels], [...request.output, input.channels], what);
          assert.ok(got.data.equals(expected[index] as Buffer), `${what}: pixels differ from Pillow's`);
        }
      }
    });
  }

  it("an image with alpha is still enlarged (by libvips), keeping its alpha", async () => {
    const rgba = await sharp(noise(width * height * 4, random), { raw: { width, height, channels: 4 } })
      .png()
      .toBuffer();
    const result = await pipelines["with cache"].process(
      rgba,
      [zoomOp(pixelBox(0, 0, 40, 30), { scale: 2 })],
      png,
      live,
    );
    const got = await rawOf(result.image.data);
    assert.deepEqual([got.width, got.height, got.channels], [80, 60, 4]);
  });
});
