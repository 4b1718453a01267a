import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { ProcessRequest, ProcessResponse } from "../../../generated/toolplane/image/v1/image.js";
import { NotFoundError, UnavailableError, unboundedScope } from "../../runtime/src/index.js";
import { ImageReferences } from "./image-references.js";

const SHA = "ab".repeat(32);
const DATA = Buffer.from("jpeg bytes");

/** A fake image service that holds the images whose sha256 is in `held`, and records how each call came. */
function fakeService(held: Set<string>, failWith?: Error) {
  const sent: Array<"bytes" | "reference"> = [];
  const process = async (request: ProcessRequest): Promise<ProcessResponse> => {
    const image = request.image;
    assert.ok(image);
    // On the wire a oneof holds one of the two: never both.
    assert.ok((image.data === undefined) !== (image.sha256 === undefined), JSON.stringify(image));
    sent.push(image.data ? "bytes" : "reference");
    if (failWith) throw failWith;
    if (image.sha256 !== undefined && !held.has(image.sha256)) throw new NotFoundError("not held");
    return { image: undefined, input: undefined, timing: undefined };
  };
  return { sent, process };
}

const request = (image: ProcessRequest["image"]): ProcessRequest => ({ image, operations: [], output: undefined });
const both = request({ data: DATA, sha256: SHA, mimeType: "image/jpeg", width: 4, height: 2 });
const options = unboundedScope(Date.now() + 10_000);

describe("image references", () => {
  it("sends the bytes twice, then the sha256 alone", async () => {
    const service = fakeService(new Set([SHA]));
    const references = new ImageReferences(service.process, 2);
    for (let call = 0; call < 4; call++) await references.call(both, options);
    assert.deepEqual(service.sent, ["bytes", "bytes", "reference", "reference"]);
    assert.equal(references.resentWithBytes, 0);
  });

  it("sends the bytes again when the service does not hold the image, and counts anew", async () => {
    const service = fakeService(new Set());
    const references = new ImageReferences(service.process, 1);
    await references.call(both, options);
    await references.call(both, options);
    assert.deepEqual(service.sent, ["bytes", "reference", "bytes"]);
    assert.equal(references.resentWithBytes, 1);
    await references.call(both, options);
    assert.deepEqual(service.sent, ["bytes", "reference", "bytes", "reference", "bytes"]);
  });

  it("any other failure of a call by reference is the call's answer, not a reason to resend", async () => {
    const down = new UnavailableError("image service down");
    let failNext = false;
    const service = fakeService(new Set([SHA]));
    const flaky = async (request: ProcessRequest) => {
      if (failNext) {
        service.sent.push(request.image?.data ? "bytes" : "reference");
        throw down;
      }
      return service.process(request);
    };
    const references = new ImageReferences(flaky, 1);
    await references.call(both, options);
    failNext = true;
    await assert.rejects(references.call(both, options), (error) => error === down);
    assert.deepEqual(service.sent, ["bytes", "reference"], "no resend with the bytes after UNAVAILABLE");
    const failing = new ImageReferences(fakeService(new Set(), down).process, 0);
    await assert.rejects(failing.call(both, options), (error) => error === down);
    // A failed send of the bytes does not count: the next call sends them again.
    const afterOne = fakeService(new Set([SHA]), down);
    const once = new ImageReferences(afterOne.process, 1);
    await assert.rejects(once.call(both, options));
    await assert.rejects(once.call(both, options), (error) => error === down);
    assert.deepEqual(afterOne.sent, ["bytes", "bytes"]);
  });

  it("0 never sends references; an image with only bytes or only a reference goes as it is", async () => {
    const service = fakeService(new Set([SHA]));
    const never = new ImageReferences(service.process, 0);
    for (let call = 0; call < 3; call++) await never.call(both, options);
    assert.deepEqual(service.sent, ["bytes", "bytes", "bytes"]);
    const plain = fakeService(new Set([SHA]));
    const references = new ImageReferences(plain.process, 1);
    for (let call = 0; call < 3; call++)
      await references.call(request({ data: DATA, mimeType: "", width: 0, height: 0 }), options);
    await references.call(request({ sha256: SHA, mimeType: "", width: 0, height: 0 }), options);
    assert.deepEqual(plain.sent, ["bytes", "bytes", "bytes", "reference"]);
  });
});
