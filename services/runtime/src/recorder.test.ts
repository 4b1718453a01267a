import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { RecordKey } from "./call-events.js";
import { canonicalJson, recordKeyDigest, trajectoryFileName } from "./recorder.js";

const KEY: RecordKey = {
  tool: "image_zoom_in_tool",
  canonicalArguments: canonicalJson({ bbox_2d: [1, 2, 30, 40], label: "cat" }),
  inputImages: ["a".repeat(64)],
  toolVersion: "1",
};

describe("canonicalJson", () => {
  it("sorts object keys at every level and keeps array order", () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } }),
      '{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}',
    );
    assert.equal(canonicalJson({ x: 1, y: 2 }), canonicalJson({ y: 2, x: 1 }));
  });
});

describe("recordKeyDigest", () => {
  it("is a stable sha256 hex of the key", () => {
    assert.match(recordKeyDigest(KEY), /^[0-9a-f]{64}$/);
    assert.equal(recordKeyDigest(KEY), recordKeyDigest({ ...KEY, inputImages: [...KEY.inputImages] }));
  });

  it("changes with every field of the key", () => {
    const digest = recordKeyDigest(KEY);
    assert.notEqual(recordKeyDigest({ ...KEY, tool: "search" }), digest);
    assert.notEqual(
      recordKeyDigest({ ...KEY, canonicalArguments: canonicalJson({ bbox_2d: [1, 2, 30, 41] }) }),
      digest,
    );
    assert.notEqual(recordKeyDigest({ ...KEY, inputImages: ["b".repeat(64)] }), digest);
    assert.notEqual(recordKeyDigest({ ...KEY, inputImages: [] }), digest);
    assert.notEqual(recordKeyDigest({ ...KEY, toolVersion: "2" }), digest);
  });

  it("keeps the order of input images significant", () => {
    const two = { ...KEY, inputImages: ["a".repeat(64), "b".repeat(64)] };
    assert.notEqual(recordKeyDigest(two), recordKeyDigest({ ...two, inputImages: [...two.inputImages].reverse() }));
  });
});

describe("trajectoryFileName", () => {
  it("never lets a trajectory id escape the journal directory", () => {
    for (const id of ["../../etc/passwd", "a/b", "..", ".", "x\\y"]) {
      const name = trajectoryFileName(id);
      assert.ok(!name.includes("/") && !name.includes("\\") && !name.startsWith(".."), name);
    }
  });

  it("keeps readable ids readable, hashes very long ones, and never maps two ids to one file", () => {
    assert.equal(trajectoryFileName("traj-42"), "traj-42.jsonl");
    assert.match(trajectoryFileName("t".repeat(500)), /^[0-9a-f]{64}\.jsonl$/);
    assert.notEqual(trajectoryFileName("a/b"), trajectoryFileName("a_b"));
  });
});
