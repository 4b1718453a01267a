import assert from "node:assert/strict";
import { describe, it } from "node:test";
import fc from "fast-check";
import { encodeFrame, FrameDecoder, FrameError } from "./framing.js";

describe("frames between the service and the kernel", () => {
  it("round-trip a header and binary blobs however the stream is chunked", () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ maxLength: 8 }), fc.oneof(fc.string(), fc.integer(), fc.boolean())),
        fc.array(fc.uint8Array({ maxLength: 64 }), { maxLength: 4 }),
        fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 10 }),
        (header, blobArrays, cuts) => {
          const blobs = blobArrays.map((bytes) => Buffer.from(bytes));
          const { blobs: _ignored, ...rest } = header;
          const bytes = Buffer.concat([encodeFrame(rest, blobs), encodeFrame({ op: "second" })]);
          const decoder = new FrameDecoder(1 << 20);
          const frames = [];
          let offset = 0;
          let cut = 0;
          while (offset < bytes.length) {
            const size = cuts[cut++ % cuts.length] as number;
            frames.push(...decoder.push(bytes.subarray(offset, offset + size)));
            offset += size;
          }
          assert.equal(frames.length, 2);
          assert.deepEqual(frames[0]?.blobs, blobs);
          assert.deepEqual({ ...frames[0]?.header, blobs: undefined }, { ...rest, blobs: undefined });
          assert.equal(frames[1]?.header.op, "second");
        },
      ),
    );
  });

  it("rejects a frame above the size limit before buffering it", () => {
    const decoder = new FrameDecoder(100);
    const frame = encodeFrame({ op: "x" }, [Buffer.alloc(200)]);
    assert.throws(() => decoder.push(frame.subarray(0, 8)), FrameError);
  });

  it("rejects a header that is not a JSON object", () => {
    const json = Buffer.from("[1,2]");
    const prefix = Buffer.alloc(8);
    prefix.writeUInt32BE(json.length, 0);
    assert.throws(() => new FrameDecoder(1000).push(Buffer.concat([prefix, json])), /not a JSON object/);
  });

  it("rejects blob lengths that do not add up to the binary part", () => {
    const json = Buffer.from(JSON.stringify({ op: "x", blobs: [5] }));
    const prefix = Buffer.alloc(8);
    prefix.writeUInt32BE(json.length, 0);
    prefix.writeUInt32BE(3, 4);
    assert.throws(
      () => new FrameDecoder(1000).push(Buffer.concat([prefix, json, Buffer.alloc(3)])),
      /add up to 5 bytes but the frame carries 3/,
    );
  });
});
