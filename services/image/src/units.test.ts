import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { type Box, CoordinateUnit } from "../../../generated/toolplane/image/v1/image.js";
import { InvalidArgumentError } from "../../runtime/src/index.js";
import { boxToPixels, boxToRegion, pointToPixels, requirePointInside } from "./units.js";

const size = { width: 200, height: 100 };
const box = (left: number, top: number, right: number, bottom: number, unit: CoordinateUnit): Box => ({
  left,
  top,
  right,
  bottom,
  unit,
});

function rejects(run: () => unknown, message: RegExp): void {
  assert.throws(run, (error: unknown) => {
    assert.ok(error instanceof InvalidArgumentError, String(error));
    assert.equal(error.errorClass, "MODEL");
    assert.match(error.message, message);
    return true;
  });
}

describe("coordinate units", () => {
  it("the whole image is the same region in every unit", () => {
    const whole = { left: 0, top: 0, width: 200, height: 100 };
    for (const [b, name] of [
      [box(0, 0, 200, 100, CoordinateUnit.COORDINATE_UNIT_PIXELS), "pixels"],
      [box(0, 0, 200, 100, CoordinateUnit.COORDINATE_UNIT_UNSPECIFIED), "unspecified (pixels)"],
      [box(0, 0, 1000, 1000, CoordinateUnit.COORDINATE_UNIT_NORMALIZED_1000), "0-1000"],
      [box(0, 0, 1, 1, CoordinateUnit.COORDINATE_UNIT_FRACTION), "fraction"],
    ] as const) {
      assert.deepEqual(boxToRegion(boxToPixels(b, size, "b"), size, "b"), whole, name);
    }
  });

  it("converts 0-1000 and fractions relative to width and height separately", () => {
    assert.deepEqual(boxToPixels(box(250, 500, 750, 1000, CoordinateUnit.COORDINATE_UNIT_NORMALIZED_1000), size, "b"), {
      left: 50,
      top: 50,
      right: 150,
      bottom: 100,
    });
    assert.deepEqual(boxToPixels(box(0.25, 0.5, 0.75, 1, CoordinateUnit.COORDINATE_UNIT_FRACTION), size, "b"), {
      left: 50,
      top: 50,
      right: 150,
      bottom: 100,
    });
    assert.deepEqual(
      pointToPixels({ x: 500, y: 500, unit: CoordinateUnit.COORDINATE_UNIT_NORMALIZED_1000 }, size, "p"),
      {
        x: 100,
        y: 50,
      },
    );
  });

  it("rounds fractional boxes outwards so every touched pixel is kept", () => {
    assert.deepEqual(boxToRegion({ left: 10.5, top: 0.2, right: 20.1, bottom: 9.9 }, size, "b"), {
      left: 10,
      top: 0,
      width: 11,
      height: 10,
    });
  });

  it("clamps boxes that stick out of the image", () => {
    assert.deepEqual(boxToRegion({ left: -50, top: -1, right: 250, bottom: 1e9 }, size, "b"), {
      left: 0,
      top: 0,
      width: 200,
      height: 100,
    });
  });

  it("a one-pixel box at the last row and column is kept", () => {
    assert.deepEqual(boxToRegion({ left: 199, top: 99, right: 200, bottom: 100 }, size, "b"), {
      left: 199,
      top: 99,
      width: 1,
      height: 1,
    });
  });

  it("refuses boxes entirely outside, touching only the edge, or empty", () => {
    rejects(
      () => boxToRegion({ left: 200, top: 0, right: 300, bottom: 10 }, size, "op.box"),
      /op\.box .* entirely outside the 200x100 image/,
    );
    rejects(() => boxToRegion({ left: -10, top: 0, right: 0, bottom: 10 }, size, "op.box"), /entirely outside/);
    rejects(() => boxToRegion({ left: 0, top: 100, right: 10, bottom: 120 }, size, "op.box"), /entirely outside/);
    rejects(
      () => boxToRegion({ left: 5, top: 0, right: 5, bottom: 10 }, size, "op.box"),
      /left \(5\) must be less than right \(5\)/,
    );
    rejects(
      () => boxToRegion({ left: 0, top: 9, right: 5, bottom: 3 }, size, "op.box"),
      /top \(9\) must be less than bottom \(3\)/,
    );
  });

  it("refuses NaN and infinite coordinates, naming the field", () => {
    rejects(
      () => boxToPixels(box(Number.NaN, 0, 1, 1, 1), size, "operations[0].crop.box"),
      /operations\[0\]\.crop\.box\.left must be finite/,
    );
    rejects(() => boxToPixels(box(0, 0, Number.POSITIVE_INFINITY, 1, 1), size, "b"), /b\.right must be finite/);
    rejects(() => pointToPixels({ x: 1, y: Number.NEGATIVE_INFINITY, unit: 1 }, size, "p"), /p\.y must be finite/);
  });

  it("refuses a missing box and an unknown unit", () => {
    rejects(() => boxToPixels(undefined, size, "operations[1].zoom.box"), /operations\[1\]\.zoom\.box is required/);
    rejects(() => boxToPixels(box(0, 0, 1, 1, 7 as CoordinateUnit), size, "b"), /b\.unit must be one of/);
  });

  it("points on the far edge are inside, beyond it are not", () => {
    assert.deepEqual(requirePointInside({ x: 200, y: 100 }, size, "p"), { x: 200, y: 100 });
    rejects(() => requirePointInside({ x: 200.5, y: 0 }, size, "p"), /p \(200\.5, 0\) .* outside the 200x100 image/);
  });
});
