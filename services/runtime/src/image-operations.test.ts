import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { FlipOp_Axis } from "../../../generated/toolplane/image/v1/image.js";
import { OPERATION_KINDS, parseOperation, parseOutputOptions } from "./image-operations.js";

describe("image operations as JSON", () => {
  it("lists the kinds of the proto's oneof, in proto order", () => {
    assert.deepEqual(OPERATION_KINDS.slice(0, 3), ["crop", "zoom", "rotate"]);
    assert.ok(OPERATION_KINDS.includes("annotate"));
    assert.equal(new Set(OPERATION_KINDS).size, OPERATION_KINDS.length);
  });

  it("reads proto JSON names, snake_case and short enum names", () => {
    assert.equal(parseOperation({ rotate: { angle_degrees: 90 } }, "op").rotate?.angleDegrees, 90);
    assert.equal(parseOperation({ flip: { axis: "vertical" } }, "op").flip?.axis, FlipOp_Axis.AXIS_VERTICAL);
  });

  // ts-proto's fromJSON drops unknown fields: a misspelled field must fail, not be ignored.
  it("rejects a misspelled field, an unknown enum value and an unknown kind, naming the path", () => {
    assert.throws(() => parseOperation({ rotate: { angel: 90 } }, "arguments.operations[0]"), {
      message: /^arguments\.operations\[0\]\.rotate has an unknown field "angel" \(known: angleDegrees, background\)$/,
    });
    assert.throws(() => parseOperation({ flip: { axis: "diagonal" } }, "op"), /op\.flip\.axis has an unknown value/);
    assert.throws(() => parseOperation({ twirl: {} }, "op"), /op must be an object with exactly one of: crop, zoom/);
    assert.throws(() => parseOperation({ crop: {}, zoom: {} }, "op"), /got 2 key\(s\): crop, zoom/);
    assert.throws(() => parseOutputOptions({ fromat: "png" }, "output"), /output has an unknown field "fromat"/);
    assert.throws(() => parseOutputOptions([], "output"), /output must be an object/);
  });
});
