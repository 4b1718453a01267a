import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import {
  CodeServiceClient,
  CreateSessionRequest,
  ExecuteRequest,
  Language,
} from "../../generated/toolplane/code/v1/code.js";
import { ErrorClass } from "../../generated/toolplane/common/v1/common.js";
import { createClient, invoke } from "../../services/runtime/src/index.js";
import { type SpawnedService, spawnService } from "../support/processes.js";

/** JavaScript's image.process reaches the real image service (the wiring `make run` uses). */
describe("JavaScript image.process against the real image service", () => {
  let image: SpawnedService;
  let code: SpawnedService;
  let client: CodeServiceClient;
  let sessionId = "";

  before(async () => {
    image = await spawnService("image");
    code = await spawnService("code", { TOOLPLANE_IMAGE_ADDR: image.address });
    client = createClient(CodeServiceClient, code.address);
    // Left half red, right half blue: a crop of the right half must come back blue.
    const left = await sharp({ create: { width: 100, height: 80, channels: 3, background: "#ff0000" } })
      .png()
      .toBuffer();
    const png = await sharp({ create: { width: 200, height: 80, channels: 3, background: "#0000ff" } })
      .composite([{ input: left, left: 0, top: 0 }])
      .png()
      .toBuffer();
    const created = await invoke(
      client,
      client.createSession,
      CreateSessionRequest.fromPartial({
        language: Language.LANGUAGE_JAVASCRIPT,
        images: [{ name: "image_1", image: { data: png } }],
      }),
    );
    sessionId = created.sessionId;
  });
  after(async () => {
    client?.close();
    await code?.stop();
    await image?.stop();
  });

  const run = (source: string) =>
    invoke(client, client.execute, ExecuteRequest.fromPartial({ sessionId, code: source }));

  it("crops and zooms through the image service and displays the result", async () => {
    const response = await run(
      [
        "const out = image.process(image_1, [",
        "  { crop: { box: { left: 120, top: 10, right: 180, bottom: 70, unit: 'pixels' } } },",
        "  { resize: { scale: 2 } },",
        "]);",
        "display(out.bytes, out.mime);",
        "[out.width, out.height]",
      ].join("\n"),
    );
    assert.equal(response.error, undefined, JSON.stringify(response.error));
    assert.equal(response.result, "[ 120, 120 ]");
    assert.equal(response.images.length, 1);
    const { data, info } = await sharp(response.images[0]?.data).raw().toBuffer({ resolveWithObject: true });
    assert.deepEqual([info.width, info.height], [120, 120]);
    assert.deepEqual([data[0], data[1], data[2]], [0, 0, 255], "the crop is from the blue half");
  });

  it("a bad operation is the model's error, catchable in the code", async () => {
    const caught = await run(
      "try { image.process(image_1, [{ crop: { box: { left: 500, top: 0, right: 600, bottom: 10, unit: 'pixels' } } }]); 'no' } catch (e) { e.name }",
    );
    assert.equal(caught.error, undefined);
    assert.equal(caught.result, '"ImageProcessError"');
    const uncaught = await run(
      "image.process(image_1, [{ crop: { box: { left: 10, top: 10, right: 5, bottom: 20, unit: 'pixels' } } }])",
    );
    assert.equal(uncaught.error?.errorClass, ErrorClass.ERROR_CLASS_MODEL);
  });
});
