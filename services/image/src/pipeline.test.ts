import assert from "node:assert/strict";
import { describe, it } from "node:test";
import sharp from "sharp";
import {
  type Box,
  CoordinateUnit,
  FlipOp_Axis,
  ImageFormat,
  type Operation,
  type OutputOptions,
  ResizeOp_Fit,
} from "../../../generated/toolplane/image/v1/image.js";
import {
  BLUE,
  GREEN,
  near,
  photoJpeg,
  pixelBox,
  pixelsOf,
  quadrants,
  RED,
  resizeOp,
  solid,
  WHITE,
  zoomOp,
} from "../../../test/fixtures/image/generate.js";
import {
  CancelledError,
  DeadlineExceededError,
  InvalidArgumentError,
  type ToolplaneError,
  unboundedScope,
} from "../../runtime/src/index.js";
import { DEFAULT_LIMITS, type ImageLimits, WorkQueue } from "./limits.js";
import { ImagePipeline, type ProcessResult } from "./pipeline.js";

const live = unboundedScope();

function pipeline(limits: Partial<ImageLimits> = {}): ImagePipeline {
  return new ImagePipeline({ ...DEFAULT_LIMITS, ...limits }, new WorkQueue(2, 16, 50));
}

const png: OutputOptions = { format: ImageFormat.IMAGE_FORMAT_PNG, quality: 0, minShortSide: 0 };

/** 200x100 quadrants as lossless PNG: red | green over blue | white. */
const quadrantPng = (async () => (await quadrants(200, 100)).png().toBuffer())();

function adjust(fields: Partial<NonNullable<Operation["adjust"]>>): Operation {
  return { adjust: { brightness: 0, contrast: 0, gamma: 0, saturation: 0, ...fields } };
}

async function run(
  input: Buffer,
  operations: Operation[],
  output: OutputOptions = png,
  limits: Partial<ImageLimits> = {},
): Promise<ProcessResult & { pixels: Awaited<ReturnType<typeof pixelsOf>> }> {
  const result = await pipeline(limits).process(input, operations, output, live);
  return { ...result, pixels: await pixelsOf(result.image.data) };
}

async function rejectsWith(
  promise: Promise<unknown>,
  kind: new (...args: never[]) => ToolplaneError,
  errorClass: "MODEL" | "INFRASTRUCTURE",
  message: RegExp,
): Promise<void> {
  await assert.rejects(promise, (error: unknown) => {
    assert.ok(error instanceof kind, `expected ${kind.name}, got ${String(error)}`);
    assert.equal((error as ToolplaneError).errorClass, errorClass);
    assert.match((error as Error).message, message);
    return true;
  });
}

const invalid = (promise: Promise<unknown>, message: RegExp) =>
  rejectsWith(promise, InvalidArgumentError, "MODEL", message);

describe("crop", () => {
  it("a crop of each quadrant has that quadrant's colour, in every unit", async () => {
    const input = await quadrantPng;
    const cases: Array<[Box, number[]]> = [
      [pixelBox(0, 0, 100, 50), RED],
      [{ left: 0.5, top: 0, right: 1, bottom: 0.5, unit: CoordinateUnit.COORDINATE_UNIT_FRACTION }, GREEN],
      [{ left: 0, top: 500, right: 500, bottom: 1000, unit: CoordinateUnit.COORDINATE_UNIT_NORMALIZED_1000 }, BLUE],
      [{ left: 100, top: 50, right: 200, bottom: 100, unit: CoordinateUnit.COORDINATE_UNIT_UNSPECIFIED }, WHITE],
    ];
    for (const [box, rgb] of cases) {
      const { pixels } = await run(input, [{ crop: { box } }]);
      assert.equal(pixels.width, 100);
      assert.equal(pixels.height, 50);
      for (const [x, y] of [
        [0, 0],
        [99, 0],
        [0, 49],
        [99, 49],
        [50, 25],
      ] as const) {
        assert.deepEqual(pixels.at(x, y), rgb, `box ${JSON.stringify(box)} at ${x},${y}`);
      }
    }
  });

  it("clamps a box sticking out of the image", async () => {
    const { pixels } = await run(await quadrantPng, [{ crop: { box: pixelBox(150, -20, 260, 50) } }]);
    assert.deepEqual([pixels.width, pixels.height], [50, 50]);
    assert.deepEqual(pixels.at(49, 49), GREEN);
  });

  it("units are relative to the current image: a 0-1000 box after a crop", async () => {
    const { pixels } = await run(await quadrantPng, [
      { crop: { box: pixelBox(0, 0, 200, 50) } },
      {
        crop: {
          box: { left: 500, top: 0, right: 1000, bottom: 1000, unit: CoordinateUnit.COORDINATE_UNIT_NORMALIZED_1000 },
        },
      },
    ]);
    assert.deepEqual([pixels.width, pixels.height], [100, 50]);
    assert.deepEqual(pixels.at(0, 0), GREEN);
  });

  it("refuses boxes outside the image, empty boxes, NaN and a missing box with the field named", async () => {
    const input = await quadrantPng;
    await invalid(
      run(input, [{ crop: { box: pixelBox(300, 0, 400, 50) } }]),
      /operations\[0\]\.crop\.box .* entirely outside the 200x100 image/,
    );
    await invalid(
      run(input, [{ crop: { box: pixelBox(10, 10, 10, 40) } }]),
      /operations\[0\]\.crop\.box: left \(10\) must be less than right \(10\)/,
    );
    await invalid(
      run(input, [{ crop: { box: pixelBox(0, Number.NaN, 10, 10) } }]),
      /operations\[0\]\.crop\.box\.top must be finite/,
    );
    await invalid(run(input, [{ crop: { box: undefined } }]), /operations\[0\]\.crop\.box is required/);
  });
});

describe("zoom", () => {
  it("enlarges the crop by the scale", async () => {
    const { pixels } = await run(await quadrantPng, [zoomOp(pixelBox(100, 0, 200, 50), { scale: 2 })]);
    assert.deepEqual([pixels.width, pixels.height], [200, 100]);
    assert.deepEqual(pixels.at(100, 50), GREEN);
  });

  it("target width alone keeps the aspect ratio; min_short_side enlarges further", async () => {
    const input = await quadrantPng;
    const byWidth = await run(input, [zoomOp(pixelBox(0, 0, 100, 50), { targetWidth: 300 })]);
    assert.deepEqual([byWidth.pixels.width, byWidth.pixels.height], [300, 150]);
    const exact = await run(input, [zoomOp(pixelBox(0, 0, 100, 50), { targetWidth: 64, targetHeight: 64 })]);
    assert.deepEqual([exact.pixels.width, exact.pixels.height], [64, 64]);
    const minimum = await run(input, [zoomOp(pixelBox(0, 0, 20, 10), { minShortSide: 40 })]);
    assert.deepEqual([minimum.pixels.width, minimum.pixels.height], [80, 40]);
  });

  it("DeepEyes rules grow a tiny box to 28 px and keep it inside the image", async () => {
    const { pixels } = await run(await quadrantPng, [zoomOp(pixelBox(195, 95, 199, 99), { deepeyesRules: true })]);
    assert.deepEqual([pixels.width, pixels.height], [28, 28]);
    assert.deepEqual(pixels.at(27, 27), WHITE);
  });

  it("DeepEyes rules refuse an aspect ratio over 100 and an inverted box", async () => {
    const input = await sharp({ create: { width: 1200, height: 100, channels: 3, background: "gray" } })
      .png()
      .toBuffer();
    await invalid(
      run(input, [zoomOp(pixelBox(0, 0, 1010, 10), { deepeyesRules: true })]),
      /operations\[0\]\.zoom\.box is invalid under DeepEyes rules: aspect ratio 101\.00 exceeds 100/,
    );
    await invalid(
      run(input, [zoomOp(pixelBox(50, 0, 10, 10), { deepeyesRules: true })]),
      /invalid under DeepEyes rules: needs left < right/,
    );
  });

  it("refuses a bad scale and an output over the pixel limit, naming the variable", async () => {
    const input = await quadrantPng;
    await invalid(
      run(input, [zoomOp(pixelBox(0, 0, 10, 10), { scale: -2 })]),
      /operations\[0\]\.zoom\.scale must be in \(0, 64\], got -2/,
    );
    await invalid(
      run(input, [zoomOp(pixelBox(0, 0, 200, 100), { scale: 10 })], png, { maxOutputPixels: 100_000 }),
      /operations\[0\]\.zoom would produce 2000x1000 = 2000000 pixels, over the limit of 100000 \(TOOLPLANE_IMAGE_MAX_OUTPUT_PIXELS\)/,
    );
  });
});

describe("rotate and flip", () => {
  it("90 degrees is clockwise and four quarter turns give back the exact pixels", async () => {
    const input = await quadrantPng;
    const once = await run(input, [{ rotate: { angleDegrees: 90, background: "" } }]);
    assert.deepEqual([once.pixels.width, once.pixels.height], [100, 200]);
    assert.deepEqual(once.pixels.at(0, 0), BLUE);
    assert.deepEqual(once.pixels.at(99, 0), RED);
    const quarter = { rotate: { angleDegrees: 90, background: "" } };
    const full = await run(input, [quarter, quarter, quarter, quarter]);
    const original = await pixelsOf(input);
    for (const [x, y] of [
      [0, 0],
      [199, 0],
      [0, 99],
      [150, 70],
    ] as const) {
      assert.deepEqual(full.pixels.at(x, y), original.at(x, y));
    }
    const negative = await run(input, [{ rotate: { angleDegrees: -90, background: "" } }]);
    assert.deepEqual(negative.pixels.at(0, 0), GREEN);
  });

  it("any angle enlarges the canvas and fills the corners with the background", async () => {
    const { pixels } = await run(await quadrantPng, [{ rotate: { angleDegrees: 33, background: "#ffff00" } }]);
    const radians = (33 * Math.PI) / 180;
    const expectedWidth = 200 * Math.cos(radians) + 100 * Math.sin(radians);
    const expectedHeight = 200 * Math.sin(radians) + 100 * Math.cos(radians);
    assert.ok(Math.abs(pixels.width - expectedWidth) <= 2, `width ${pixels.width} vs ${expectedWidth}`);
    assert.ok(Math.abs(pixels.height - expectedHeight) <= 2, `height ${pixels.height} vs ${expectedHeight}`);
    assert.ok(near(pixels.at(0, 0), [255, 255, 0]), `corner ${pixels.at(0, 0)}`);
  });

  it("a crop after a rotation is taken from the rotated image", async () => {
    const { pixels } = await run(await quadrantPng, [
      { rotate: { angleDegrees: 90, background: "" } },
      { crop: { box: { left: 0, top: 0, right: 0.5, bottom: 0.5, unit: CoordinateUnit.COORDINATE_UNIT_FRACTION } } },
    ]);
    assert.deepEqual([pixels.width, pixels.height], [50, 100]);
    assert.deepEqual(pixels.at(25, 50), BLUE);
  });

  it("refuses a non-finite angle and a bad background", async () => {
    const input = await quadrantPng;
    await invalid(
      run(input, [{ rotate: { angleDegrees: Number.POSITIVE_INFINITY, background: "" } }]),
      /operations\[0\]\.rotate\.angle_degrees must be finite/,
    );
    await invalid(
      run(input, [{ rotate: { angleDegrees: 10, background: "not-a-colour" } }]),
      /operations\[0\]\.rotate\.background must be a CSS colour/,
    );
  });

  it("flips mirror left-right and top-bottom", async () => {
    const input = await quadrantPng;
    const horizontal = await run(input, [{ flip: { axis: FlipOp_Axis.AXIS_HORIZONTAL } }]);
    assert.deepEqual(horizontal.pixels.at(0, 0), GREEN);
    const vertical = await run(input, [{ flip: { axis: FlipOp_Axis.AXIS_VERTICAL } }]);
    assert.deepEqual(vertical.pixels.at(0, 0), BLUE);
    await invalid(
      run(input, [{ flip: { axis: FlipOp_Axis.AXIS_UNSPECIFIED } }]),
      /operations\[0\]\.flip\.axis must be AXIS_HORIZONTAL or AXIS_VERTICAL/,
    );
  });
});

describe("resize", () => {
  it("each fit mode gives its size", async () => {
    const input = await quadrantPng;
    const cases: Array<[ResizeOp_Fit, number, number]> = [
      [ResizeOp_Fit.FIT_UNSPECIFIED, 100, 50],
      [ResizeOp_Fit.FIT_INSIDE, 100, 50],
      [ResizeOp_Fit.FIT_COVER, 100, 100],
      [ResizeOp_Fit.FIT_FILL, 100, 100],
      [ResizeOp_Fit.FIT_CONTAIN, 100, 100],
      [ResizeOp_Fit.FIT_OUTSIDE, 200, 100],
    ];
    for (const [fit, width, height] of cases) {
      const { pixels } = await run(input, [resizeOp({ width: 100, height: 100, fit })]);
      assert.deepEqual([pixels.width, pixels.height], [width, height], `fit ${fit}`);
    }
    const contained = await run(input, [resizeOp({ width: 100, height: 100, fit: ResizeOp_Fit.FIT_CONTAIN })]);
    assert.deepEqual(contained.pixels.at(50, 0), [0, 0, 0], "contain pads with black");
  });

  it("scale and one side keep the aspect ratio", async () => {
    const input = await quadrantPng;
    const half = await run(input, [resizeOp({ scale: 0.5 })]);
    assert.deepEqual([half.pixels.width, half.pixels.height], [100, 50]);
    const byHeight = await run(input, [resizeOp({ height: 30 })]);
    assert.deepEqual([byHeight.pixels.width, byHeight.pixels.height], [60, 30]);
  });

  it("smart resize gives Qwen-VL's sizes, with defaults when fields are zero", async () => {
    const input = await solid(70, 42, RED).png().toBuffer();
    const { pixels } = await run(input, [resizeOp({ smart: { factor: 0, minPixels: 0, maxPixels: 0 } })]);
    assert.deepEqual([pixels.width, pixels.height], [56, 56]);
    const photo = await photoJpeg(1920, 1080);
    const big = await run(photo, [resizeOp({ smart: { factor: 28, minPixels: 3136, maxPixels: 200704 } })]);
    assert.deepEqual([big.pixels.width, big.pixels.height], [588, 336]);
  });

  it("refuses no sizing, mixed sizing and bad smart parameters", async () => {
    const input = await quadrantPng;
    await invalid(run(input, [resizeOp({})]), /operations\[0\]\.resize needs width and\/or height, scale, or smart/);
    await invalid(run(input, [resizeOp({ width: 10, scale: 2 })]), /takes only one of width\/height, scale, or smart/);
    await invalid(
      run(input, [resizeOp({ smart: { factor: 28, minPixels: 1000, maxPixels: 10 } })]),
      /operations\[0\]\.resize\.smart\.min_pixels \(1000\) must not exceed operations\[0\]\.resize\.smart\.max_pixels \(10\)/,
    );
    await invalid(run(input, [resizeOp({ scale: Number.NaN })]), /operations\[0\]\.resize\.scale must be finite/);
    await invalid(
      run(input, [resizeOp({ width: 20000 })]),
      /operations\[0\]\.resize\.width must be an integer in \[0, 16383\]/,
    );
  });
});

describe("tone operations", () => {
  const grey = (value: number) => solid(8, 8, [value, value, value]).png().toBuffer();

  it("brightness multiplies, contrast stretches around 128, gamma > 1 brightens mid-tones", async () => {
    assert.ok(near((await run(await grey(200), [adjust({ brightness: 0.5 })])).pixels.at(4, 4), [100, 100, 100], 1));
    assert.ok(near((await run(await grey(100), [adjust({ contrast: 2 })])).pixels.at(4, 4), [72, 72, 72], 1));
    assert.deepEqual((await run(await grey(64), [adjust({ gamma: 2 })])).pixels.at(4, 4), [128, 128, 128]);
    assert.deepEqual((await run(await grey(64), [adjust({})])).pixels.at(4, 4), [64, 64, 64]);
  });

  it("saturation near zero turns red grey; alpha is left alone by adjustments", async () => {
    const red = await solid(8, 8, RED).png().toBuffer();
    const [r, g, b] = (await run(red, [adjust({ saturation: 0.01 })])).pixels.at(4, 4) as [number, number, number];
    assert.ok(Math.abs(r - g) < 20 && Math.abs(g - b) < 20, `not grey: ${[r, g, b]}`);
    const translucent = await sharp({
      create: { width: 4, height: 4, channels: 4, background: { r: 64, g: 64, b: 64, alpha: 0.5 } },
    })
      .png()
      .toBuffer();
    const adjusted = await run(translucent, [adjust({ gamma: 2, brightness: 1.5 })]);
    assert.equal(adjusted.pixels.channels, 4);
    assert.ok(near(adjusted.pixels.at(0, 0).slice(3), [128], 1), `alpha ${adjusted.pixels.at(0, 0)}`);
  });

  it("refuses out-of-range adjustments", async () => {
    const input = await grey(10);
    await invalid(
      run(input, [adjust({ brightness: -1 })]),
      /operations\[0\]\.adjust\.brightness must be in \(0, 10\], got -1/,
    );
    await invalid(run(input, [adjust({ gamma: 11 })]), /operations\[0\]\.adjust\.gamma must be in \(0, 10\]/);
  });

  it("blur softens an edge, sharpen steepens it", async () => {
    const edge = await sharp({ create: { width: 40, height: 10, channels: 3, background: "black" } })
      .composite([{ input: await solid(20, 10, [200, 200, 200]).png().toBuffer(), left: 20, top: 0 }])
      .png()
      .toBuffer();
    const blurred = await run(edge, [{ blur: { sigma: 3 } }]);
    const [justBefore] = blurred.pixels.at(19, 5) as [number];
    assert.ok(justBefore > 30 && justBefore < 170, `blurred edge pixel ${justBefore}`);
    const soft = (await run(edge, [{ blur: { sigma: 2 } }])).image.data;
    const sharpened = await run(soft, [{ sharpen: { sigma: 2 } }]);
    const softPixels = await pixelsOf(soft);
    const contrast = (p: typeof softPixels) => (p.at(22, 5)[0] as number) - (p.at(17, 5)[0] as number);
    assert.ok(contrast(sharpened.pixels) > contrast(softPixels), "sharpen should raise contrast across the edge");
    const mild = await run(soft, [{ sharpen: { sigma: 0 } }]);
    assert.deepEqual([mild.pixels.width, mild.pixels.height], [40, 10]);
    await invalid(run(edge, [{ blur: { sigma: 0 } }]), /operations\[0\]\.blur\.sigma must be in \[0\.3, 100\], got 0/);
    await invalid(run(edge, [{ sharpen: { sigma: 11 } }]), /operations\[0\]\.sharpen\.sigma must be in \(0, 10\]/);
  });

  it("normalize stretches a narrow histogram to the full range", async () => {
    const gradient = Buffer.alloc(100 * 10 * 3);
    for (let x = 0; x < 100; x++)
      for (let y = 0; y < 10; y++) gradient.fill(100 + Math.floor(x / 2), (y * 100 + x) * 3, (y * 100 + x) * 3 + 3);
    const input = await sharp(gradient, { raw: { width: 100, height: 10, channels: 3 } })
      .png()
      .toBuffer();
    const { pixels } = await run(input, [{ normalize: { lowerPercentile: 0, upperPercentile: 0 } }]);
    assert.ok((pixels.at(0, 5)[0] as number) < 10, `dark end ${pixels.at(0, 5)}`);
    assert.ok((pixels.at(99, 5)[0] as number) > 245, `bright end ${pixels.at(99, 5)}`);
    await invalid(
      run(input, [{ normalize: { lowerPercentile: 60, upperPercentile: 40 } }]),
      /operations\[0\]\.normalize\.lower_percentile \(60\) must be less than operations\[0\]\.normalize\.upper_percentile \(40\)/,
    );
  });

  it("grayscale gives one channel, threshold splits at the level, invert negates", async () => {
    const red = await solid(8, 8, RED).png().toBuffer();
    const grey1 = await run(red, [{ grayscale: {} }]);
    assert.equal(grey1.pixels.channels, 1);
    assert.equal((await run(await grey(100), [{ threshold: { level: 0 } }])).pixels.at(0, 0)[0], 0);
    assert.equal((await run(await grey(200), [{ threshold: { level: 0 } }])).pixels.at(0, 0)[0], 255);
    assert.equal((await run(await grey(100), [{ threshold: { level: 90 } }])).pixels.at(0, 0)[0], 255);
    assert.deepEqual((await run(red, [{ invert: {} }])).pixels.at(0, 0), [0, 255, 255]);
    await invalid(
      run(red, [{ threshold: { level: 300 } }]),
      /operations\[0\]\.threshold\.level must be an integer in \[0, 255\], got 300/,
    );
  });
});

describe("annotate", () => {
  const annotation = (fields: Record<string, unknown>) => ({ label: "", color: "", lineWidth: 0, ...fields });

  it("draws a box outline inside the box, a point and a label", async () => {
    const input = await solid(200, 100, WHITE).png().toBuffer();
    const { pixels } = await run(input, [
      {
        annotate: {
          annotations: [
            annotation({ box: pixelBox(20, 30, 120, 90), lineWidth: 4, color: "#0000ff", label: 'cat <&> "1"\u0001' }),
            annotation({
              point: { x: 800, y: 200, unit: CoordinateUnit.COORDINATE_UNIT_NORMALIZED_1000 },
              color: "lime",
            }),
          ],
        },
      },
    ]);
    assert.deepEqual([pixels.width, pixels.height], [200, 100]);
    assert.ok(near(pixels.at(21, 60), BLUE, 30), `left edge ${pixels.at(21, 60)}`);
    assert.ok(near(pixels.at(118, 60), BLUE, 30), `right edge ${pixels.at(118, 60)}`);
    assert.deepEqual(pixels.at(70, 60), WHITE, "inside the box stays untouched");
    assert.ok(near(pixels.at(160, 20), GREEN, 30), `point ${pixels.at(160, 20)}`);
    let labelPixels = 0;
    for (let x = 20; x < 120; x++) for (let y = 12; y < 30; y++) if (!near(pixels.at(x, y), WHITE, 5)) labelPixels++;
    assert.ok(labelPixels > 100, `label area has ${labelPixels} drawn pixels`);
  });

  it("draws labels holding characters XML forbids (U+FFFF, U+FFFE, lone surrogates, C0 controls) as U+FFFD", async () => {
    const input = await solid(200, 100, WHITE).png().toBuffer();
    for (const label of ["\uFFFF", "a\uFFFEb", "\uD800x\uDFFF", "\u0000\u001B[31m", "ok \u{1F600}\uFFFF"]) {
      const { pixels } = await run(input, [
        { annotate: { annotations: [annotation({ box: pixelBox(20, 30, 120, 90), label })] } },
      ]);
      let labelPixels = 0;
      for (let x = 20; x < 120; x++) for (let y = 12; y < 30; y++) if (!near(pixels.at(x, y), WHITE, 5)) labelPixels++;
      assert.ok(labelPixels > 20, `label ${JSON.stringify(label)} drawn: ${labelPixels} pixels`);
    }
  });

  it("counts a label's length in code points: 256 emoji are within the limit of 256, 257 are not", async () => {
    const input = await solid(50, 50, WHITE).png().toBuffer();
    const box = pixelBox(0, 0, 10, 10);
    await run(input, [{ annotate: { annotations: [annotation({ box, label: "\u{1F600}".repeat(256) })] } }]);
    await invalid(
      run(input, [{ annotate: { annotations: [annotation({ box, label: "\u{1F600}".repeat(257) })] } }]),
      /operations\[0\]\.annotate\.annotations\[0\]\.label has 257 characters, over the limit of 256/,
    );
  });

  it("turns a grey image into colour to draw on it", async () => {
    const input = await solid(50, 50, [128, 128, 128]).greyscale().png().toBuffer();
    const { pixels } = await run(input, [
      { annotate: { annotations: [annotation({ box: pixelBox(0, 0, 50, 50), lineWidth: 6 })] } },
    ]);
    assert.equal(pixels.channels, 3);
    assert.ok(near(pixels.at(1, 25), RED, 30), `edge ${pixels.at(1, 25)}`);
  });

  it("keeps alpha: marks are opaque over a transparent image, the rest stays transparent", async () => {
    const input = await sharp({
      create: { width: 40, height: 40, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } },
    })
      .png()
      .toBuffer();
    const { pixels } = await run(input, [
      { annotate: { annotations: [annotation({ box: pixelBox(0, 0, 40, 40), lineWidth: 3, color: "blue" })] } },
    ]);
    assert.equal(pixels.channels, 4);
    assert.deepEqual(pixels.at(1, 20), [0, 0, 255, 255]);
    assert.equal(pixels.at(20, 20)[3], 0);
  });

  it("labels near the edges stay on the image", async () => {
    const input = await solid(60, 30, WHITE).png().toBuffer();
    const { pixels } = await run(input, [
      {
        annotate: {
          annotations: [annotation({ point: { x: 60, y: 30, unit: 1 }, label: "a very long label that cannot fit" })],
        },
      },
    ]);
    assert.deepEqual([pixels.width, pixels.height], [60, 30]);
    assert.ok(near(pixels.at(0, 29), RED, 40), `label background at the bottom-left ${pixels.at(0, 29)}`);
  });

  it("refuses boxes outside the image, injected colours, missing shapes and too many annotations", async () => {
    const input = await solid(50, 50, WHITE).png().toBuffer();
    await invalid(
      run(input, [{ annotate: { annotations: [annotation({ box: pixelBox(60, 60, 80, 80) })] } }]),
      /operations\[0\]\.annotate\.annotations\[0\]\.box .* entirely outside the 50x50 image/,
    );
    await invalid(
      run(input, [{ annotate: { annotations: [annotation({ box: pixelBox(0, 0, 5, 5), color: 'red" onload="x' })] } }]),
      /operations\[0\]\.annotate\.annotations\[0\]\.color must be a CSS colour/,
    );
    await invalid(
      run(input, [{ annotate: { annotations: [annotation({})] } }]),
      /annotations\[0\] needs a box or a point/,
    );
    await invalid(
      run(input, [{ annotate: { annotations: [annotation({ point: { x: 51, y: 0, unit: 1 } })] } }]),
      /annotations\[0\]\.point \(51, 0\) in pixels lies outside the 50x50 image/,
    );
    const many = Array.from({ length: 3 }, () => annotation({ box: pixelBox(0, 0, 5, 5) }));
    await invalid(
      run(input, [{ annotate: { annotations: many } }], png, { maxAnnotations: 2 }),
      /annotations has 3 entries, over the limit of 2 \(TOOLPLANE_IMAGE_MAX_ANNOTATIONS\)/,
    );
  });
});

describe("inputs and outputs", () => {
  it("applies EXIF orientation before any operation", async () => {
    // Orientation 6: the stored pixels are shown rotated 90 degrees clockwise.
    const input = await (await quadrants(200, 100)).jpeg({ quality: 100 }).withMetadata({ orientation: 6 }).toBuffer();
    const result = await run(input, [
      { crop: { box: { left: 0, top: 0, right: 0.5, bottom: 0.5, unit: CoordinateUnit.COORDINATE_UNIT_FRACTION } } },
    ]);
    assert.equal(result.input.orientation, 6);
    assert.deepEqual([result.input.width, result.input.height], [100, 200]);
    assert.deepEqual([result.pixels.width, result.pixels.height], [50, 100]);
    assert.ok(near(result.pixels.at(25, 50), BLUE, 12), `top-left after orientation ${result.pixels.at(25, 50)}`);
    const untouched = await run(input, []);
    assert.deepEqual([untouched.pixels.width, untouched.pixels.height], [100, 200]);
  });

  it("reads WebP, TIFF and the first frame of an animated GIF", async () => {
    const base = await quadrants(200, 100);
    const webp = await base.clone().webp({ lossless: true }).toBuffer();
    const tiff = await base.clone().tiff().toBuffer();
    const frames = [await solid(20, 10, RED).png().toBuffer(), await solid(20, 10, BLUE).png().toBuffer()];
    const gif = await sharp(frames, { join: { animated: true } })
      .gif()
      .toBuffer();
    for (const [data, format] of [
      [webp, "webp"],
      [tiff, "tiff"],
      [gif, "gif"],
    ] as const) {
      const result = await run(data, [], { format: ImageFormat.IMAGE_FORMAT_UNSPECIFIED, quality: 0, minShortSide: 0 });
      assert.equal(result.input.format, format);
      assert.equal(result.image.mimeType, format === "webp" ? "image/webp" : "image/png");
      if (format === "gif") {
        assert.equal(result.input.pages, 2);
        assert.deepEqual([result.pixels.width, result.pixels.height], [20, 10]);
        assert.ok(near(result.pixels.at(5, 5), RED, 10), `first frame ${result.pixels.at(5, 5)}`);
      } else {
        // TIFF defaults to JPEG compression in libvips: allow its rounding.
        assert.ok(near(result.pixels.at(150, 20), GREEN, 6), `${format} ${result.pixels.at(150, 20)}`);
      }
    }
  });

  it("16-bit PNG and CMYK JPEG inputs become 8-bit sRGB", async () => {
    const png16 = await sharp({ create: { width: 4, height: 4, channels: 3, background: { r: 255, g: 128, b: 0 } } })
      .toColourspace("rgb16")
      .png()
      .toBuffer();
    const deep = await run(png16, [{ crop: { box: pixelBox(0, 0, 2, 2) } }]);
    assert.deepEqual([deep.pixels.channels, ...deep.pixels.at(1, 1)], [3, 255, 128, 0]);
    const cmyk = await solid(4, 4, RED).toColourspace("cmyk").jpeg().toBuffer();
    const converted = await run(cmyk, [{ crop: { box: pixelBox(0, 0, 2, 2) } }]);
    assert.equal(converted.input.channels, 4);
    assert.equal(converted.pixels.channels, 3);
    assert.ok(near(converted.pixels.at(1, 1), RED, 40), `${converted.pixels.at(1, 1)}`);
  });

  it("encodes PNG, JPEG and WebP; quality changes the size", async () => {
    const photo = await photoJpeg(320, 240);
    const mime = {
      [ImageFormat.IMAGE_FORMAT_PNG]: "image/png",
      [ImageFormat.IMAGE_FORMAT_JPEG]: "image/jpeg",
      [ImageFormat.IMAGE_FORMAT_WEBP]: "image/webp",
    };
    for (const [format, type] of Object.entries(mime)) {
      const result = await run(photo, [], { format: Number(format), quality: 0, minShortSide: 0 });
      assert.equal(result.image.mimeType, type);
      assert.equal((await sharp(result.image.data).metadata()).format, type.slice("image/".length));
    }
    const low = await pipeline().process(
      photo,
      [],
      { format: ImageFormat.IMAGE_FORMAT_JPEG, quality: 10, minShortSide: 0 },
      live,
    );
    const high = await pipeline().process(
      photo,
      [],
      { format: ImageFormat.IMAGE_FORMAT_JPEG, quality: 95, minShortSide: 0 },
      live,
    );
    assert.ok(low.image.data.length < high.image.data.length / 2);
    await invalid(
      run(photo, [], { format: ImageFormat.IMAGE_FORMAT_JPEG, quality: 101, minShortSide: 0 }),
      /output\.quality must be an integer in \[1, 100\], got 101/,
    );
    await invalid(run(photo, [], { format: 9 as ImageFormat, quality: 0, minShortSide: 0 }), /output\.format must be/);
  });

  it("a transparent image becomes white where transparent in JPEG", async () => {
    const transparent = await sharp({
      create: { width: 4, height: 4, channels: 4, background: { r: 0, g: 0, b: 0, alpha: 0 } },
    })
      .png()
      .toBuffer();
    const { pixels } = await run(transparent, [], {
      format: ImageFormat.IMAGE_FORMAT_JPEG,
      quality: 90,
      minShortSide: 0,
    });
    assert.ok(near(pixels.at(1, 1), WHITE, 2), `${pixels.at(1, 1)}`);
  });

  it("upscales a result whose short side is under output.min_short_side", async () => {
    const input = await solid(10, 40, RED).png().toBuffer();
    const { pixels, image } = await run(input, [], {
      format: ImageFormat.IMAGE_FORMAT_PNG,
      quality: 0,
      minShortSide: 32,
    });
    assert.deepEqual([pixels.width, pixels.height, image.width, image.height], [32, 128, 32, 128]);
  });

  it("reports timing", async () => {
    const result = await run(await quadrantPng, [{ crop: { box: pixelBox(0, 0, 10, 10) } }]);
    assert.ok(result.timing.totalMs >= result.timing.executeMs && result.timing.queueMs >= 0);
  });
});

describe("bad inputs and limits", () => {
  it("refuses corrupt, truncated, empty and unsupported data as the caller's error", async () => {
    const photo = await photoJpeg(320, 240);
    await invalid(
      run(Buffer.from("definitely not an image"), []),
      /image\.data is not a jpeg, png, webp, gif, tiff image \(its first bytes match none of them\)/,
    );
    await invalid(run(Buffer.from("GIF89a but not really"), []), /image\.data could not be decoded/);
    // A crop near the top would only decode the first rows: truncation is still caught.
    const half = (data: Buffer) => data.subarray(0, Math.floor(data.length / 2));
    await invalid(
      run(half(photo), [{ crop: { box: pixelBox(0, 0, 10, 10) } }]),
      /image\.data is truncated: JPEG has no end-of-image marker after its scan data/,
    );
    const base = await quadrants(200, 100);
    await invalid(
      run(half(await base.clone().png().toBuffer()), []),
      /image\.data is truncated: PNG has no IEND chunk/,
    );
    await invalid(
      run(half(await base.clone().webp().toBuffer()), []),
      /image\.data (is truncated: WebP declares|could not be decoded)/,
    );
    // Bytes appended after the end of a JPEG (motion photos, camera trailers) are not truncation.
    const appended = await run(Buffer.concat([photo, Buffer.alloc(10_000, 7)]), []);
    assert.deepEqual([appended.pixels.width, appended.pixels.height], [320, 240]);
    // Damage inside the scan data, with the end marker intact, is found by the decoder.
    const damaged = Buffer.from(photo);
    damaged.fill(0xff, 2000, 2600);
    await invalid(run(damaged, []), /image\.data could not be decoded/);
    await invalid(run(Buffer.alloc(0), []), /image\.data is empty/);
    const svg = Buffer.from('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>');
    await invalid(run(svg, []), /image\.data is not a jpeg, png, webp, gif, tiff image/);
    const pdf = Buffer.from("%PDF-1.4\n%\xe2\xe3\n1 0 obj\n<<>>\nendobj\n");
    await invalid(pipeline().metadata(pdf), /image\.data is not a jpeg, png, webp, gif, tiff image/);
  });

  it("refuses too many pixels (decompression bombs) and too many bytes, naming limit and variable", async () => {
    const input = await quadrantPng;
    await invalid(
      run(input, [], png, { maxInputPixels: 10_000 }),
      /image\.data is 200x100 = 20000 pixels, over the limit of 10000 \(TOOLPLANE_IMAGE_MAX_INPUT_PIXELS\)/,
    );
    await invalid(
      run(input, [], png, { maxInputBytes: 100 }),
      /image\.data is \d+ bytes, over the limit of 100 \(TOOLPLANE_IMAGE_MAX_INPUT_BYTES\)/,
    );
    const bomb = await sharp({ create: { width: 8000, height: 8000, channels: 3, background: "black" } })
      .png({ compressionLevel: 9 })
      .toBuffer();
    await invalid(run(bomb, [], png, { maxInputPixels: 1_000_000 }), /64000000 pixels, over the limit of 1000000/);
  });

  it("refuses long pipelines and empty operations", async () => {
    const input = await quadrantPng;
    const many = Array.from({ length: 3 }, () => ({ invert: {} }));
    await invalid(
      run(input, many, png, { maxOperations: 2 }),
      /operations has 3 entries, over the limit of 2 \(TOOLPLANE_IMAGE_MAX_OPERATIONS\)/,
    );
    await invalid(run(input, [{ invert: {} }, {}]), /operations\[1\] has no operation set/);
  });

  it("validates every operation before doing any work", async () => {
    const started = performance.now();
    await invalid(
      pipeline().process(
        await photoJpeg(2000, 2000),
        [{ blur: { sigma: 50 } }, { blur: { sigma: 50 } }, { rotate: { angleDegrees: Number.NaN, background: "" } }],
        png,
        live,
      ),
      /operations\[2\]\.rotate\.angle_degrees must be finite/,
    );
    assert.ok(performance.now() - started >= 0);
  });

  it("a deadline passing in the middle of a pipeline stops it between steps", async () => {
    const photo = await photoJpeg(1200, 1200);
    const blurs: Operation[] = Array.from({ length: 12 }, () => ({ blur: { sigma: 30 } }));
    await rejectsWith(
      pipeline().process(photo, blurs, png, unboundedScope(Date.now() + 40)),
      DeadlineExceededError,
      "INFRASTRUCTURE",
      /deadline (passed|reached)/,
    );
  });

  it("a cancelled call stops with CANCELLED, a passed deadline with DEADLINE_EXCEEDED", async () => {
    const input = await quadrantPng;
    const controller = new AbortController();
    controller.abort();
    await rejectsWith(
      pipeline().process(input, [], png, { signal: controller.signal }),
      CancelledError,
      "INFRASTRUCTURE",
      /stopped (before|while waiting)/,
    );
    const timedOut = new AbortController();
    timedOut.abort(new DeadlineExceededError("the call's deadline passed"));
    await rejectsWith(
      pipeline().process(input, [], png, { signal: timedOut.signal }),
      DeadlineExceededError,
      "INFRASTRUCTURE",
      /stopped (before|while waiting)/,
    );
    await rejectsWith(
      pipeline().process(input, [{ invert: {} }], png, unboundedScope(Date.now() - 1)),
      DeadlineExceededError,
      "INFRASTRUCTURE",
      /deadline passed before/,
    );
  });
});
