import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { InvalidArgumentError } from "../../runtime/src/index.js";
import {
  applyDeepEyesRules,
  pilCropRegion,
  pythonRound,
  SMART_RESIZE_DEFAULTS,
  smartResize,
  withMinShortSide,
} from "./geometry.js";

describe("pythonRound", () => {
  it("rounds halves to even like Python 3", () => {
    assert.deepEqual([0.5, 1.5, 2.5, 3.5, -0.5, -1.5, 2.4999, 2.5001].map(pythonRound), [0, 2, 2, 4, 0, -2, 2, 3]);
  });
});

describe("smartResize matches qwen_vl_utils.smart_resize", () => {
  // [width, height, factor, min_pixels, max_pixels, expected width, expected height], computed with the Python reference.
  const cases: Array<[number, number, number, number, number, number, number]> = [
    [1920, 1080, 28, 3136, 12845056, 1932, 1092],
    [42, 70, 28, 3136, 12845056, 56, 56],
    [14, 14, 28, 3136, 12845056, 56, 56],
    [98, 42, 28, 3136, 12845056, 112, 56],
    [6000, 4000, 28, 3136, 12845056, 4368, 2912],
    [1920, 1080, 28, 3136, 200704, 588, 336],
    [1000, 10, 28, 3136, 12845056, 1008, 28],
    [777, 333, 14, 1000, 100000, 476, 196],
    [28, 28, 28, 3136, 12845056, 56, 56],
    [150, 1, 28, 3136, 12845056, 140, 28],
    [5000, 5000, 32, 3136, 12845056, 3552, 3552],
  ];
  for (const [width, height, factor, minPixels, maxPixels, expectedWidth, expectedHeight] of cases) {
    it(`${width}x${height} factor ${factor} pixels [${minPixels}, ${maxPixels}] -> ${expectedWidth}x${expectedHeight}`, () => {
      assert.deepEqual(smartResize({ width, height }, { factor, minPixels, maxPixels }, "s"), {
        width: expectedWidth,
        height: expectedHeight,
      });
    });
  }

  it("refuses aspect ratios over 200 as the reference does", () => {
    assert.throws(
      () => smartResize({ width: 201, height: 1 }, SMART_RESIZE_DEFAULTS, "operations[0].resize.smart"),
      (error: unknown) =>
        error instanceof InvalidArgumentError &&
        /operations\[0\]\.resize\.smart: .*aspect ratio 201\.00.*200/.test(error.message),
    );
  });

  it("refuses a budget that leaves a side of zero pixels", () => {
    assert.throws(
      () => smartResize({ width: 200, height: 1 }, { factor: 28, minPixels: 1, maxPixels: 100 }, "s"),
      (error: unknown) => error instanceof InvalidArgumentError && /side of 0 pixels/.test(error.message),
    );
  });
});

describe("DeepEyes zoom-in box rules", () => {
  const size = { width: 640, height: 480 };
  it("keeps a valid box unchanged", () => {
    assert.deepEqual(applyDeepEyesRules({ left: 10, top: 20, right: 110, bottom: 220 }, size), {
      ok: true,
      box: { left: 10, top: 20, right: 110, bottom: 220 },
    });
  });

  it("clamps to the image first", () => {
    assert.deepEqual(applyDeepEyesRules({ left: -30, top: -5, right: 700, bottom: 500 }, size), {
      ok: true,
      box: { left: 0, top: 0, right: 640, bottom: 480 },
    });
  });

  it("grows a 10x50 box around its centre to a 28 px short side, same arithmetic as the reference", () => {
    // ratio 2.8: half width ceil(14) = 14, half height ceil(70) = 70, centre (105, 125).
    assert.deepEqual(applyDeepEyesRules({ left: 100, top: 100, right: 110, bottom: 150 }, size), {
      ok: true,
      box: { left: 91, top: 55, right: 119, bottom: 195 },
    });
  });

  it("shifts a grown box back inside at the corners", () => {
    assert.deepEqual(applyDeepEyesRules({ left: 0, top: 0, right: 4, bottom: 4 }, size), {
      ok: true,
      box: { left: 0, top: 0, right: 28, bottom: 28 },
    });
    assert.deepEqual(applyDeepEyesRules({ left: 636, top: 476, right: 640, bottom: 480 }, size), {
      ok: true,
      box: { left: 612, top: 452, right: 640, bottom: 480 },
    });
  });

  it("on an image smaller than 28 px the grown box is the whole image", () => {
    assert.deepEqual(applyDeepEyesRules({ left: 2, top: 2, right: 6, bottom: 6 }, { width: 20, height: 20 }), {
      ok: true,
      box: { left: 0, top: 0, right: 20, bottom: 20 },
    });
  });

  it("rejects inverted, empty, outside and too elongated boxes", () => {
    for (const box of [
      { left: 50, top: 0, right: 10, bottom: 100 },
      { left: 0, top: 10, right: 100, bottom: 10 },
      { left: 700, top: 0, right: 800, bottom: 100 },
      { left: 0, top: 0, right: 505, bottom: 5 },
    ]) {
      const result = applyDeepEyesRules(box, size);
      assert.equal(result.ok, false, JSON.stringify(box));
    }
    const elongated = applyDeepEyesRules({ left: 0, top: 0, right: 505, bottom: 5 }, size);
    assert.ok(!elongated.ok && /aspect ratio 101\.00 exceeds 100/.test(elongated.reason));
  });

  it("the crop region rounds like PIL's Image.crop", () => {
    assert.deepEqual(pilCropRegion({ left: 10.5, top: 11.5, right: 40.5, bottom: 50.4 }), {
      left: 10,
      top: 12,
      width: 30,
      height: 38,
    });
  });
});

describe("withMinShortSide", () => {
  it("enlarges to the short side keeping the aspect ratio, and leaves large images alone", () => {
    assert.deepEqual(withMinShortSide({ width: 10, height: 40 }, 32), { width: 32, height: 128 });
    assert.deepEqual(withMinShortSide({ width: 300, height: 20 }, 32), { width: 480, height: 32 });
    assert.deepEqual(withMinShortSide({ width: 40, height: 40 }, 32), { width: 40, height: 40 });
    assert.deepEqual(withMinShortSide({ width: 5, height: 5 }, 0), { width: 5, height: 5 });
  });
});
