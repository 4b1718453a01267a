/**
 * End to end: the real image, code and search services and the gateway, each its
 * own process on loopback, driven through Step by recorded model text of a
 * DeepEyesV2 trajectory (crop in code -> code reusing its state -> web search ->
 * reverse image search -> answer) and a DeepEyes v1 trajectory (zoom -> tiny zoom
 * -> invalid zoom -> answer). Asserts the exact observation text a model would be
 * shown and the size of every returned image.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import sharp from "sharp";
import {
  Fidelity,
  ImageDelivery,
  ModelFormat,
  ResultStatus,
  StepOutcome,
  type StepResponse,
  ToolGatewayClient,
} from "../../generated/toolplane/gateway/v1/gateway.js";
import { createClient, invoke } from "../../services/runtime/src/index.js";
import { type DeepEyesWorld, startDeepEyesWorld } from "../support/deepeyes-world.js";
import { type SpawnedService, spawnService } from "../support/processes.js";

const DEEPEYES_V1_PROMPT =
  "\nThink first, call **image_zoom_in_tool** if needed, then answer. Format strictly as:  <think>...</think>  <tool_call>...</tool_call> (if tools needed)  <answer>...</answer> ";

async function decodedSize(data: Uint8Array | undefined): Promise<[number, number]> {
  const metadata = await sharp(data).metadata();
  return [metadata.width ?? 0, metadata.height ?? 0];
}

/** Sizes as reported by the gateway, checked against the decoded bytes. */
async function imageSizes(response: StepResponse): Promise<[number, number][]> {
  const sizes: [number, number][] = [];
  for (const image of response.images) {
    assert.deepEqual(await decodedSize(image.data), [image.width, image.height], "reported size = decoded size");
    sizes.push([image.width, image.height]);
  }
  return sizes;
}

function codeTurn(thought: string, source: string): string {
  return `<think>${thought}</think>\n<code>\n\`\`\`python\n${source}\n\`\`\`\n</code>`;
}

function codeObservation(stdout: string, stderr: string, images: number): string {
  const text = `Code execution result:\nstdout:\n\`\`\`\n${stdout}\n\`\`\`\n\nstderr:\n\`\`\`\n${stderr}\n\`\`\``;
  return images > 0 ? `${text}\n\nImages:\n${"<image>".repeat(images)}` : text;
}

describe("DeepEyes trajectories through the gateway and the real services", () => {
  const processes: SpawnedService[] = [];
  let world: DeepEyesWorld | undefined;
  let code: SpawnedService;
  let client: ToolGatewayClient;
  let input: Buffer;

  before(async () => {
    // Few code sessions allowed: a gateway that did not release them on close would run out.
    world = await startDeepEyesWorld({ TOOLPLANE_CODE_POOL_SIZE: "1", TOOLPLANE_CODE_MAX_SESSIONS: "3" });
    input = world.input;
    code = world.code;
    processes.push(...world.processes);
    client = createClient(ToolGatewayClient, world.gateway.address);
  });

  after(async () => {
    client?.close();
    // The world stops its own processes; the ones this file started are stopped here.
    for (const service of processes.slice(world?.processes.length ?? 0).reverse()) await service.stop();
    await world?.stop();
  });

  async function session(trajectoryId: string): Promise<string> {
    const created = await invoke(client, client.createSession, {
      rolloutId: `rollout-${trajectoryId}`,
      trajectoryId,
      images: [{ data: input, mimeType: "", width: 0, height: 0 }],
      idleTtlSeconds: 0,
    });
    return created.sessionId;
  }

  /** These trajectories pin the strict behaviour; conformance.test.ts pins the reference one. */
  function step(sessionId: string, format: ModelFormat, text: string, stepNumber: number, timeoutMs = 0) {
    return invoke(client, client.step, {
      sessionId,
      format,
      text,
      imageDelivery: ImageDelivery.IMAGE_DELIVERY_BYTES,
      timeoutMs,
      step: stepNumber,
      fidelity: Fidelity.FIDELITY_STRICT,
    });
  }

  it("DeepEyesV2: crop in code -> code with state -> search -> image search -> answer", async () => {
    const id = await session("deepeyes-v2");
    const v2 = (text: string, n: number, timeoutMs = 0) =>
      step(id, ModelFormat.MODEL_FORMAT_DEEPEYES_V2, text, n, timeoutMs);

    const crop = await v2(
      codeTurn(
        "The sign is at the top left. Let me crop it.",
        "crop = image_1.crop((100, 50, 300, 150))\nprint(crop.size)\ncrop.show()",
      ),
      1,
    );
    assert.equal(crop.outcome, StepOutcome.STEP_OUTCOME_TOOL_CALLED);
    assert.equal(crop.status, ResultStatus.RESULT_STATUS_OK, crop.error?.message);
    assert.equal(crop.observation, codeObservation("(200, 100)\n", "", 1));
    assert.deepEqual(await imageSizes(crop), [[200, 100]]);

    // The kernel kept `crop`; a 20x10 result is upscaled for Qwen-VL (short side 32).
    const state = await v2(
      codeTurn(
        "Check its colour and look at a thumbnail.",
        "import numpy as np\narr = np.array(crop)\nprint(arr.shape, int(arr[..., 0].mean()), int(arr[..., 2].mean()))\ncrop.resize((20, 10)).show()",
      ),
      2,
    );
    assert.equal(state.status, ResultStatus.RESULT_STATUS_OK, state.error?.message);
    assert.equal(state.observation, codeObservation("(100, 200, 3) 255 0\n", "", 1));
    assert.deepEqual(await imageSizes(state), [[64, 32]]);

    const failing = await v2(codeTurn("Divide.", "print('before')\n1 / 0"), 3);
    assert.equal(failing.status, ResultStatus.RESULT_STATUS_MODEL_ERROR);
    assert.equal(failing.error?.errorClass, 1, "MODEL");
    assert.ok(failing.observation.startsWith(codeObservation("before\n", "", 0).split("stderr:")[0] as string));
    assert.match(failing.observation, /stderr:\n```\n[\s\S]*ZeroDivisionError: division by zero[\s\S]*\n```$/);

    const search = await v2(
      '<think>Now the height.</think>\n<tool_call>\n{"name": "search", "arguments": {"query": "Eiffel Tower height"}}\n</tool_call>',
      4,
    );
    assert.equal(search.status, ResultStatus.RESULT_STATUS_OK, search.error?.message);
    assert.equal(
      search.observation,
      "<tool_response>\nA Google search for 'Eiffel Tower height' found 1 results:\n\n## Web Results\n1. [Eiffel Tower](https://example.test/eiffel)\nDate published: 2024-03-31\n\nThe Eiffel Tower in Paris is 330 metres tall.\n</tool_response>",
    );
    assert.equal(search.images.length, 0);

    const imageSearch = await v2('<tool_call>\n{"name": "image_search"}\n</tool_call>', 5);
    assert.equal(imageSearch.status, ResultStatus.RESULT_STATUS_OK, imageSearch.error?.message);
    assert.equal(
      imageSearch.observation,
      "<tool_response>\nA Google image search for the image found 1 results:\n\n## Web Results\n1. <image>\n[Red sign on white] \n\n</tool_response>",
    );
    const [thumbnail] = await imageSizes(imageSearch);
    assert.ok(thumbnail && Math.min(...thumbnail) >= 32, `thumbnail ${thumbnail}`);

    const badCall = await v2('<tool_call>\n{"name": "calculator", "arguments": {"x": 1}}\n</tool_call>', 6);
    assert.equal(badCall.outcome, StepOutcome.STEP_OUTCOME_PARSE_ERROR);
    assert.equal(badCall.observation, 'Error: Invalid tool call name: {"name": "calculator", "arguments": {"x": 1}}.');

    const answer = await v2("<think>The sign is red; the tower is 330 m.</think>\n<answer>330 metres</answer>", 7);
    assert.equal(answer.outcome, StepOutcome.STEP_OUTCOME_ANSWER);
    assert.equal(answer.answer, "330 metres");
    await invoke(client, client.closeSession, { sessionId: id });
  });

  it("DeepEyes v1: zoom -> tiny zoom grown and upscaled -> invalid box -> answer", async () => {
    const id = await session("deepeyes-v1");
    const v1 = (text: string, n: number) => step(id, ModelFormat.MODEL_FORMAT_DEEPEYES_V1, text, n);
    const zoom = (box: number[]) =>
      `<think>Zoom in.</think>\n<tool_call>\n{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": ${JSON.stringify(box)}, "label": "sign"}}\n</tool_call>`;

    const first = await v1(zoom([100, 50, 300, 150]), 1);
    assert.equal(first.status, ResultStatus.RESULT_STATUS_OK, first.error?.message);
    assert.equal(first.observation, `<tool_response><image>${DEEPEYES_V1_PROMPT}</tool_response>`);
    assert.deepEqual(await imageSizes(first), [[200, 100]]);

    // 14x8 px: grown around its centre to 28 px on the short side (50x28), then upscaled to a 32 px short side.
    const tiny = await v1(zoom([500, 400, 514, 408]), 2);
    assert.equal(tiny.status, ResultStatus.RESULT_STATUS_OK, tiny.error?.message);
    assert.equal(tiny.observation, `<tool_response><image>${DEEPEYES_V1_PROMPT}</tool_response>`);
    assert.deepEqual(await imageSizes(tiny), [[58, 32]]);

    const invalid = await v1(zoom([300, 300, 100, 100]), 3);
    assert.equal(invalid.outcome, StepOutcome.STEP_OUTCOME_TOOL_CALLED);
    assert.equal(invalid.status, ResultStatus.RESULT_STATUS_MODEL_ERROR);
    assert.equal(invalid.observation, "Error: ZOOM IN ARGUMENTS ARE INVALID");
    assert.equal(invalid.images.length, 0);

    const answer = await v1("<think>It is a red sign.</think> <answer>red</answer>", 4);
    assert.equal(answer.outcome, StepOutcome.STEP_OUTCOME_ANSWER);
    assert.equal(answer.answer, "red");
    assert.equal((await invoke(client, client.closeRollout, { rolloutId: "rollout-deepeyes-v1" })).closedSessions, 1);
  });

  it("hermes: the JavaScript tool keeps its state between turns and sees the input images", async () => {
    const id = await session("javascript");
    const js = (code: string, n: number) =>
      step(
        id,
        ModelFormat.MODEL_FORMAT_HERMES,
        `<tool_call>\n${JSON.stringify({ name: "javascript", arguments: { code } })}\n</tool_call>`,
        n,
      );
    const first = await js(
      "const area = image_1.width * image_1.height;\nconsole.log(image_1.width, image_1.height);",
      1,
    );
    assert.equal(first.status, ResultStatus.RESULT_STATUS_OK, first.error?.message);
    assert.equal(first.observation, `<tool_response>\n${codeObservation("640 480\n", "", 0)}\n</tool_response>`);
    const second = await js("console.log(area / 1000)", 2);
    assert.equal(second.observation, `<tool_response>\n${codeObservation("307.2\n", "", 0)}\n</tool_response>`);
    const thrown = await js("null.x", 3);
    assert.equal(thrown.status, ResultStatus.RESULT_STATUS_MODEL_ERROR);
    assert.match(thrown.observation, /TypeError/);
    await invoke(client, client.closeSession, { sessionId: id });
  });

  it("ExecuteBatch: the generic image tool, zoom, search and a bad call in one step, each with its own result", async () => {
    const id = await session("batch");
    const call = (callId: string, name: string, args: unknown, sessionId = id) => ({
      sessionId,
      call: { callId, name, argumentsJson: JSON.stringify(args) },
      timeoutMs: 20_000,
      imageDelivery: ImageDelivery.IMAGE_DELIVERY_REFERENCE,
      step: 1,
    });
    const { results } = await invoke(client, client.executeBatch, {
      calls: [
        call("rotate", "image_process", {
          image: "image_1",
          operations: [{ rotate: { angleDegrees: 90 } }, { grayscale: {} }],
        }),
        call("zoom", "image_zoom_in_tool", { bbox_2d: [100, 50, 300, 150] }),
        call("search", "search", { query: "Great Wall" }),
        call("bad-op", "image_process", { operations: [{ explode: {} }] }),
        call("lost", "search", { query: "x" }, "no-such-session"),
      ],
    });
    assert.deepEqual(
      results.map((result) => [result.callId, result.status]),
      [
        ["rotate", ResultStatus.RESULT_STATUS_OK],
        ["zoom", ResultStatus.RESULT_STATUS_OK],
        ["search", ResultStatus.RESULT_STATUS_OK],
        ["bad-op", ResultStatus.RESULT_STATUS_MODEL_ERROR],
        ["lost", ResultStatus.RESULT_STATUS_INFRA_ERROR],
      ],
    );
    const [rotated, zoomed] = results;
    assert.equal(rotated?.text, "<image>");
    assert.deepEqual([rotated?.images[0]?.width, rotated?.images[0]?.height], [480, 640]);
    const fetched = await invoke(client, client.getImage, { sha256: rotated?.images[0]?.sha256 ?? "" });
    assert.deepEqual(await decodedSize(fetched.image?.data), [480, 640]);
    assert.deepEqual([zoomed?.images[0]?.width, zoomed?.images[0]?.height], [200, 100]);
    assert.match(
      results[3]?.text ?? "",
      /^Error: arguments\.operations\[0\] must be an object with exactly one of: crop, /,
    );
    await invoke(client, client.closeSession, { sessionId: id });
  });

  it("CloseRollout releases the code sessions of all its trajectories", async () => {
    for (const round of [1, 2]) {
      const ids: string[] = [];
      for (let index = 0; index < 3; index++) {
        const created = await invoke(client, client.createSession, {
          rolloutId: `bulk-${round}`,
          trajectoryId: "",
          images: [{ data: input, mimeType: "", width: 0, height: 0 }],
          idleTtlSeconds: 0,
        });
        ids.push(created.sessionId);
      }
      const steps = await Promise.all(
        ids.map((id) => step(id, ModelFormat.MODEL_FORMAT_DEEPEYES_V2, codeTurn("Size.", "print(image_1.size)"), 1)),
      );
      for (const response of steps) {
        assert.equal(response.status, ResultStatus.RESULT_STATUS_OK, `round ${round}: ${response.error?.message}`);
        assert.equal(response.observation, codeObservation("(640, 480)\n", "", 0));
      }
      assert.equal((await invoke(client, client.closeRollout, { rolloutId: `bulk-${round}` })).closedSessions, 3);
    }
  });

  it("code that runs past its deadline is the model's timeout; the session keeps working", async () => {
    const id = await session("timeout");
    const slow = await step(
      id,
      ModelFormat.MODEL_FORMAT_DEEPEYES_V2,
      codeTurn("Loop.", "while True:\n    pass"),
      1,
      // The cell gets 4 s; the remaining second is the sandbox's to stop it and answer.
      5000,
    );
    assert.equal(slow.status, ResultStatus.RESULT_STATUS_MODEL_ERROR, slow.error?.message);
    assert.equal(slow.error?.code, "DEADLINE_EXCEEDED");
    assert.match(slow.observation, /^Code execution result:/);
    const next = await step(id, ModelFormat.MODEL_FORMAT_DEEPEYES_V2, codeTurn("Again.", "print(6 * 7)"), 2);
    assert.equal(next.observation, codeObservation("42\n", "", 0));
    // Model code with lost indentation is re-indented as the DeepEyesV2 client does.
    const flat = await step(
      id,
      ModelFormat.MODEL_FORMAT_DEEPEYES_V2,
      codeTurn("Count.", "for i in range(2):\nprint(i)"),
      3,
    );
    assert.equal(flat.observation, codeObservation("0\n1\n", "", 0));
    await invoke(client, client.closeSession, { sessionId: id });
  });

  it("the code service killed mid-call is INFRA_ERROR; the gateway keeps serving the other tools", async () => {
    const id = await session("killed");
    const pending = step(id, ModelFormat.MODEL_FORMAT_DEEPEYES_V2, codeTurn("Wait.", "import time\ntime.sleep(20)"), 1);
    // Give the cell time to reach the sandbox, then kill the service outright.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    await code.stop("SIGKILL");
    const killed = await pending;
    assert.equal(killed.outcome, StepOutcome.STEP_OUTCOME_TOOL_CALLED);
    assert.equal(killed.status, ResultStatus.RESULT_STATUS_INFRA_ERROR);
    assert.equal(killed.error?.errorClass, 2, "INFRASTRUCTURE");
    assert.equal(killed.observation, "", "never shown to the model");

    const down = await step(id, ModelFormat.MODEL_FORMAT_DEEPEYES_V2, codeTurn("Again.", "print(1)"), 2);
    assert.equal(down.status, ResultStatus.RESULT_STATUS_INFRA_ERROR);
    const search = await step(
      id,
      ModelFormat.MODEL_FORMAT_DEEPEYES_V2,
      '<tool_call>\n{"name": "search", "arguments": {"query": "Mount Fuji"}}\n</tool_call>',
      3,
    );
    assert.equal(search.status, ResultStatus.RESULT_STATUS_OK, search.error?.message);
    assert.match(search.observation, /^<tool_response>\nA Google search for 'Mount Fuji' found 1 results:/);

    // The code service comes back on its address without the trajectory's state: that is
    // reported once as INFRASTRUCTURE, then the trajectory gets a fresh code session.
    const port = code.address.split(":").at(-1) as string;
    processes.push(await spawnService("code", { TOOLPLANE_GRPC_PORT: port, TOOLPLANE_CODE_POOL_SIZE: "1" }));
    let lost = await step(id, ModelFormat.MODEL_FORMAT_DEEPEYES_V2, codeTurn("Again.", "print(1)"), 4);
    for (let attempt = 0; attempt < 40 && !/code session lost/.test(lost.error?.message ?? ""); attempt++) {
      assert.equal(lost.status, ResultStatus.RESULT_STATUS_INFRA_ERROR, "the old session cannot answer OK");
      await new Promise((resolve) => setTimeout(resolve, 250));
      lost = await step(id, ModelFormat.MODEL_FORMAT_DEEPEYES_V2, codeTurn("Again.", "print(1)"), 4);
    }
    assert.equal(lost.status, ResultStatus.RESULT_STATUS_INFRA_ERROR);
    assert.equal(lost.error?.code, "FAILED_PRECONDITION");
    assert.equal(lost.error?.retryable, false, "a retry would run the next cell against lost state");
    assert.match(lost.error?.message ?? "", /code session lost/);
    const fresh = await step(id, ModelFormat.MODEL_FORMAT_DEEPEYES_V2, codeTurn("Again.", "print(image_1.size)"), 5);
    assert.equal(fresh.status, ResultStatus.RESULT_STATUS_OK, fresh.error?.message);
    assert.equal(fresh.observation, codeObservation("(640, 480)\n", "", 0));
    await invoke(client, client.closeSession, { sessionId: id });
  });
});
