/**
 * Gateway mechanics over real sockets: the gateway runs as its own process in
 * front of small search backends served from this test process, whose latency
 * and failures the tests control (admission, deadlines, cancellation, a backend
 * dying mid-call, stream ordering). Tool behaviour end to end, against the real
 * services, is in test/e2e.
 */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import sharp from "sharp";
import {
  type ExecuteRequest,
  Fidelity,
  type GatewayMessage,
  ImageDelivery,
  ModelFormat,
  ResultStatus,
  StepOutcome,
  ToolGatewayClient,
} from "../../generated/toolplane/gateway/v1/gateway.js";
import type { SearchRequest, SearchResponse } from "../../generated/toolplane/search/v1/search.js";
import {
  CancelledError,
  createClient,
  type IncomingCall,
  invoke,
  type ToolplaneError,
} from "../../services/runtime/src/index.js";
import { FakeSearch, searchAnswer } from "../support/fake-search.js";
import { distRoot, freePort, type SpawnedService, spawnService } from "../support/processes.js";

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A backend call that never answers: it ends only when cancelled (or its deadline passes), with an error. */
async function hang(_request: SearchRequest, call: IncomingCall): Promise<SearchResponse> {
  await sleep(60_000, call.scope.signal);
  throw new CancelledError("the call was cancelled before it finished");
}

function searchCall(sessionId: string, query: string, timeoutMs = 0): ExecuteRequest {
  return {
    sessionId,
    call: { callId: query, name: "search", argumentsJson: JSON.stringify({ query }) },
    timeoutMs,
    imageDelivery: ImageDelivery.IMAGE_DELIVERY_BYTES,
    step: 0,
  };
}

describe("gateway mechanics against controlled backends", () => {
  const search = new FakeSearch();
  let searchPort = 0;
  let gateway: SpawnedService;
  let client: ToolGatewayClient;
  let sessionId = "";
  const others: string[] = [];

  before(async () => {
    searchPort = await freePort();
    await search.start(searchPort);
    gateway = await spawnService("gateway", {
      TOOLPLANE_SEARCH_ADDR: `127.0.0.1:${searchPort}`,
      TOOLPLANE_IMAGE_ADDR: `127.0.0.1:${await freePort()}`,
      TOOLPLANE_CODE_ADDR: `127.0.0.1:${await freePort()}`,
      TOOLPLANE_GATEWAY_SEARCH_CONCURRENCY: "2",
      TOOLPLANE_GATEWAY_SEARCH_QUEUE: "2",
      TOOLPLANE_GATEWAY_STREAM_MAX_IN_FLIGHT: "4",
    });
    client = createClient(ToolGatewayClient, gateway.address);
    const created = await invoke(client, client.createSession, {
      rolloutId: "mechanics",
      trajectoryId: "",
      images: [],
      idleTtlSeconds: 0,
    });
    sessionId = created.sessionId;
    // A trajectory holds at most a quarter of the backend's slots (here 1 of 2): calls meant to run side by side
    // come from different trajectories.
    for (let i = 0; i < 4; i++) {
      const other = await invoke(client, client.createSession, {
        rolloutId: "mechanics",
        trajectoryId: "",
        images: [],
        idleTtlSeconds: 0,
      });
      others.push(other.sessionId);
    }
  });

  after(async () => {
    client?.close();
    await gateway?.stop();
    await search.server?.shutdown(100);
  });

  it("lists the tools with OpenAI function schemas", async () => {
    const { tools } = await invoke(client, client.listTools, { names: [] });
    assert.deepEqual(
      tools.map((tool) => tool.name),
      ["image_zoom_in_tool", "code", "search", "image_search", "image_process", "javascript"],
    );
    const zoom = JSON.parse(tools[0]?.openaiSchemaJson ?? "{}");
    assert.equal(zoom.type, "function");
    assert.equal(zoom.function.name, "image_zoom_in_tool");
    assert.deepEqual(zoom.function.parameters.required, ["bbox_2d"]);
    await assert.rejects(invoke(client, client.listTools, { names: ["nope"] }), (error: ToolplaneError) => {
      assert.equal(error.code, status.NOT_FOUND);
      return true;
    });
  });

  it("a full queue answers RESOURCE_EXHAUSTED with a retry hint; admitted calls still succeed", async () => {
    // One trajectory per call: a queue full of one trajectory's calls is that trajectory's (the model's) doing,
    // shown to it (test/security/fairness.test.ts); an overload is a queue full of everyone's.
    const trajectories: string[] = [];
    for (let i = 0; i < 10; i++) {
      const created = await invoke(client, client.createSession, {
        rolloutId: "mechanics",
        trajectoryId: "",
        images: [],
        idleTtlSeconds: 0,
      });
      trajectories.push(created.sessionId);
    }
    let next = 0;
    const fresh = () => trajectories[next++] as string;
    let release!: () => void;
    const gate = new Promise<void>((resolve) => {
      release = resolve;
    });
    search.behaviour = async (request) => {
      await gate;
      return searchAnswer(request.query);
    };
    const admitted = ["q1", "q2", "q3", "q4"].map((query) =>
      invoke(client, client.execute, searchCall(fresh(), query, 10_000)),
    );
    // 2 run and 2 wait. Probe until the gateway refuses: a probe still pending after a while was
    // queued instead (its siblings had not all arrived yet) and completes with them.
    while (search.calls < 2) await sleep(10);
    let refusal: ToolplaneError | undefined;
    for (let probe = 0; probe < 5 && refusal === undefined; probe++) {
      const attempt = invoke(client, client.execute, searchCall(fresh(), `probe-${probe}`, 10_000));
      refusal = await Promise.race([
        attempt.then(
          () => undefined,
          (error: ToolplaneError) => error,
        ),
        sleep(300).then(() => undefined),
      ]);
      if (refusal === undefined) admitted.push(attempt);
    }
    assert.ok(refusal, "the gateway refused a call beyond its queue");
    assert.equal(refusal.code, status.RESOURCE_EXHAUSTED);
    assert.equal(refusal.errorClass, "INFRASTRUCTURE");
    assert.ok((refusal.retryAfterMs ?? 0) > 0, "carries toolplane-retry-after-ms");
    assert.match(refusal.message, /search service overloaded/);
    const batch = await invoke(client, client.executeBatch, { calls: [searchCall(fresh(), "b1", 10_000)] });
    assert.equal(batch.results[0]?.error?.code, "RESOURCE_EXHAUSTED", "a batch reports it per item");
    release();
    // Exactly the 4 calls that got a slot or a queue place succeed (whichever of them arrived first).
    const outcomes = await Promise.allSettled(admitted);
    const succeeded = outcomes.filter(
      (outcome) => outcome.status === "fulfilled" && outcome.value.result?.status === ResultStatus.RESULT_STATUS_OK,
    );
    assert.equal(succeeded.length, 4);
    for (const outcome of outcomes) {
      if (outcome.status === "rejected")
        assert.equal((outcome.reason as ToolplaneError).code, status.RESOURCE_EXHAUSTED);
    }
    const after = await invoke(client, client.execute, searchCall(sessionId, "q6"));
    assert.equal(
      after.result?.text,
      "A Google search for 'q6' found 1 results:\n\n## Web Results\n1. [About q6](https://example.test/a)\n\nA snippet.",
    );
  });

  it("a call past its deadline is INFRA_ERROR DEADLINE_EXCEEDED and the backend call is cancelled", async () => {
    search.behaviour = hang;
    const cancelledBefore = search.cancelled;
    const response = await invoke(client, client.execute, searchCall(sessionId, "slow", 300));
    assert.equal(response.result?.status, ResultStatus.RESULT_STATUS_INFRA_ERROR);
    assert.equal(response.result?.error?.code, "DEADLINE_EXCEEDED");
    assert.equal(response.result?.text, "");
    while (search.cancelled === cancelledBefore) await sleep(10);
  });

  it("the RPC deadline bounds the backend call too", async () => {
    search.behaviour = hang;
    const cancelledBefore = search.cancelled;
    await assert.rejects(
      invoke(client, client.execute, searchCall(sessionId, "slow-rpc"), { deadlineMs: Date.now() + 300 }),
      (error: ToolplaneError) => {
        assert.equal(error.code, status.DEADLINE_EXCEEDED);
        return true;
      },
    );
    while (search.cancelled === cancelledBefore) await sleep(10);
  });

  it("a caller that goes away cancels its backend call", async () => {
    search.behaviour = hang;
    const cancelledBefore = search.cancelled;
    const callsBefore = search.calls;
    const controller = new AbortController();
    const pending = invoke(client, client.execute, searchCall(sessionId, "abandoned"), { signal: controller.signal });
    while (search.calls === callsBefore) await sleep(10);
    controller.abort();
    await assert.rejects(pending);
    while (search.cancelled === cancelledBefore) await sleep(10);
  });

  it("Connect answers out of order, matched by request_id", async () => {
    search.behaviour = async (request) => {
      if (request.query === "slow") await sleep(400);
      return searchAnswer(request.query);
    };
    const stream = client.connect();
    const replies: GatewayMessage[] = [];
    const done = new Promise<void>((resolve, reject) => {
      stream.on("data", (message: GatewayMessage) => replies.push(message));
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    stream.write({ requestId: "r-slow", execute: searchCall(sessionId, "slow") });
    stream.write({ requestId: "r-fast", execute: searchCall(others[0] as string, "fast") });
    stream.write({ requestId: "r-bad", execute: searchCall("no-such-session", "x") });
    stream.write({ requestId: "r-empty" });
    stream.end();
    await done;
    assert.deepEqual(replies.map((reply) => reply.requestId).slice(-1), ["r-slow"]);
    const byId = new Map(replies.map((reply) => [reply.requestId, reply]));
    assert.equal(byId.get("r-fast")?.execute?.result?.text.startsWith("A Google search for 'fast'"), true);
    assert.equal(byId.get("r-bad")?.error?.code, "NOT_FOUND");
    assert.equal(byId.get("r-empty")?.error?.code, "INVALID_ARGUMENT");
    assert.equal(replies.length, 4);
  });

  // The stream may run 4 requests; admission allows 2 running + 2 queued. Without the stream's
  // backpressure the other 8 of 12 would be refused RESOURCE_EXHAUSTED; with it all succeed.
  it("Connect backpressure: more requests than the in-flight limit all complete", async () => {
    search.behaviour = async (request) => {
      await sleep(20);
      return searchAnswer(request.query);
    };
    const stream = client.connect();
    const replies: GatewayMessage[] = [];
    const done = new Promise<void>((resolve, reject) => {
      stream.on("data", (message: GatewayMessage) => replies.push(message));
      stream.on("end", resolve);
      stream.on("error", reject);
    });
    for (let i = 0; i < 12; i++) {
      stream.write({ requestId: `r${i}`, execute: searchCall(others[i % 4] as string, `s${i}`, 10_000) });
    }
    stream.end();
    await done;
    assert.equal(replies.length, 12);
    assert.ok(replies.every((reply) => reply.execute?.result?.status === ResultStatus.RESULT_STATUS_OK));
  });

  it("a worker that drops its Connect stream cancels the requests it still had running", async () => {
    search.behaviour = hang;
    const cancelledBefore = search.cancelled;
    const callsBefore = search.calls;
    const stream = client.connect();
    stream.on("error", () => undefined);
    stream.write({ requestId: "r1", execute: searchCall(sessionId, "held-1") });
    stream.write({ requestId: "r2", execute: searchCall(others[1] as string, "held-2") });
    while (search.calls < callsBefore + 2) await sleep(10);
    stream.cancel();
    while (search.cancelled < cancelledBefore + 2) await sleep(10);
  });

  it("a session idle past its TTL is closed by the gateway", async () => {
    search.behaviour = async (request) => searchAnswer(request.query);
    const created = await invoke(client, client.createSession, {
      rolloutId: "ttl",
      trajectoryId: "",
      images: [],
      idleTtlSeconds: 1,
    });
    const used = await invoke(client, client.execute, searchCall(created.sessionId, "still-open"));
    assert.equal(used.result?.status, ResultStatus.RESULT_STATUS_OK);
    // Any call would keep it alive, so wait out the TTL plus a sweep interval (1 s each) and some slack, then probe once.
    await sleep(3500);
    await assert.rejects(
      invoke(client, client.execute, searchCall(created.sessionId, "expired")),
      (error: ToolplaneError) => {
        assert.equal(error.code, status.NOT_FOUND);
        assert.equal(error.errorClass, "INFRASTRUCTURE");
        return true;
      },
    );
    assert.equal((await invoke(client, client.closeRollout, { rolloutId: "ttl" })).closedSessions, 0);
  });

  it("hermes and openai steps: every call runs, observations in call order", async () => {
    search.behaviour = async (request) => {
      // The first call finishes last: the observation must still list it first.
      if (request.query === "first") await sleep(200);
      return searchAnswer(request.query);
    };
    const hermes = await invoke(client, client.step, {
      sessionId,
      format: ModelFormat.MODEL_FORMAT_HERMES,
      text: '<tool_call>\n{"name": "search", "arguments": {"query": "first"}}\n</tool_call>\n<tool_call>\n{"name": "search", "arguments": "{\\"query\\": \\"second\\"}"}\n</tool_call>',
      imageDelivery: ImageDelivery.IMAGE_DELIVERY_BYTES,
      timeoutMs: 5000,
      step: 1,
    });
    assert.equal(hermes.outcome, StepOutcome.STEP_OUTCOME_TOOL_CALLED);
    assert.equal(
      hermes.observation,
      "<tool_response>\nA Google search for 'first' found 1 results:\n\n## Web Results\n1. [About first](https://example.test/a)\n\nA snippet.\n</tool_response>\n<tool_response>\nA Google search for 'second' found 1 results:\n\n## Web Results\n1. [About second](https://example.test/a)\n\nA snippet.\n</tool_response>",
    );
    const openai = await invoke(client, client.step, {
      sessionId,
      format: ModelFormat.MODEL_FORMAT_OPENAI,
      text: JSON.stringify([
        { id: "call_9", type: "function", function: { name: "search", arguments: '{"query":"third"}' } },
        { id: "call_10", type: "function", function: { name: "weather", arguments: "{}" } },
      ]),
      imageDelivery: ImageDelivery.IMAGE_DELIVERY_BYTES,
      timeoutMs: 5000,
      step: 2,
    });
    assert.equal(openai.status, ResultStatus.RESULT_STATUS_MODEL_ERROR, "one call named an unknown tool");
    assert.deepEqual(JSON.parse(openai.observation), [
      {
        role: "tool",
        tool_call_id: "call_9",
        content:
          "A Google search for 'third' found 1 results:\n\n## Web Results\n1. [About third](https://example.test/a)\n\nA snippet.",
      },
      { role: "tool", tool_call_id: "call_10", content: "Error: Invalid tool call name: weather" },
    ]);
  });

  it("tool images: tiny ones upscaled, 10 per round, 50 per trajectory, by reference on request", async () => {
    const photo = await sharp({ create: { width: 64, height: 48, channels: 3, background: "green" } })
      .png()
      .toBuffer();
    const put = await invoke(client, client.putImage, { data: photo });
    assert.equal(put.image?.width, 64);
    const created = await invoke(client, client.createSession, {
      rolloutId: "images",
      trajectoryId: "",
      images: [{ sha256: put.image?.sha256, mimeType: "", width: 0, height: 0 }],
      idleTtlSeconds: 0,
    });
    search.thumbnails = await Promise.all(
      Array.from({ length: 12 }, (_, index) =>
        sharp({ create: { width: 8, height: 4, channels: 3, background: { r: index * 20, g: 0, b: 0 } } })
          .png()
          .toBuffer(),
      ),
    );
    const stepImageSearch = (n: number, delivery = ImageDelivery.IMAGE_DELIVERY_BYTES) =>
      invoke(client, client.step, {
        sessionId: created.sessionId,
        format: ModelFormat.MODEL_FORMAT_DEEPEYES_V2,
        text: '<tool_call>{"name": "image_search"}</tool_call>',
        imageDelivery: delivery,
        timeoutMs: 5000,
        step: n,
        // The project's rule for every tool image; the DeepEyesV2 reference resizes code images only.
        fidelity: Fidelity.FIDELITY_STRICT,
      });
    const first = await stepImageSearch(1);
    assert.deepEqual(search.imageQueries.at(-1), photo, "image_search ran on image_1");
    assert.equal(first.images.length, 10);
    assert.equal((first.observation.match(/<image>/g) ?? []).length, 10);
    assert.match(first.observation, /found 10 results:[\s\S]*10\. <image>\n\[Match 10\] \n\n<\/tool_response>$/);
    assert.deepEqual(
      first.images.map((image) => [image.width, image.height]),
      Array.from({ length: 10 }, () => [64, 32]),
    );
    for (let n = 2; n <= 4; n++) assert.equal((await stepImageSearch(n)).images.length, 10);
    const byReference = await stepImageSearch(5, ImageDelivery.IMAGE_DELIVERY_REFERENCE);
    assert.equal(byReference.images.length, 10);
    const reference = byReference.images[0];
    assert.equal(reference?.data, undefined);
    const fetched = await invoke(client, client.getImage, { sha256: reference?.sha256 ?? "" });
    assert.equal(fetched.image?.width, 64);
    const capped = await stepImageSearch(6);
    assert.equal(capped.images.length, 0, "the trajectory has shown 50 images");
    assert.equal(
      capped.observation,
      "<tool_response>\nA Google image search for the image found 0 results:\n\n## Web Results\n\n</tool_response>",
    );
    assert.equal((await invoke(client, client.closeRollout, { rolloutId: "images" })).closedSessions, 1);
  });

  it("a backend that dies mid-call gives INFRA_ERROR; the gateway keeps serving and recovers", async () => {
    search.behaviour = hang;
    const callsBefore = search.calls;
    const pending = invoke(client, client.execute, searchCall(sessionId, "dying", 20_000));
    while (search.calls === callsBefore) await sleep(10);
    await search.server?.shutdown(1);
    const response = await pending;
    assert.equal(response.result?.status, ResultStatus.RESULT_STATUS_INFRA_ERROR);
    assert.equal(response.result?.error?.errorClass, 2);
    assert.equal(response.result?.text, "");
    const down = await invoke(client, client.execute, searchCall(sessionId, "while-down", 2000));
    assert.equal(down.result?.status, ResultStatus.RESULT_STATUS_INFRA_ERROR);
    assert.equal((await invoke(client, client.listTools, { names: ["search"] })).tools.length, 1);
    search.behaviour = async (request) => searchAnswer(request.query);
    await search.start(searchPort);
    let recovered = await invoke(client, client.execute, searchCall(sessionId, "back", 5000));
    for (let attempt = 0; attempt < 20 && recovered.result?.status !== ResultStatus.RESULT_STATUS_OK; attempt++) {
      await sleep(250);
      recovered = await invoke(client, client.execute, searchCall(sessionId, "back", 5000));
    }
    assert.equal(recovered.result?.status, ResultStatus.RESULT_STATUS_OK);
  });
});

describe("gateway configuration", () => {
  it("a bad backend address or limit fails start-up, one line per variable", async () => {
    const child = spawn(process.execPath, [join(distRoot, "services", "gateway", "src", "main.js")], {
      env: { ...process.env, TOOLPLANE_CODE_ADDR: "nope", TOOLPLANE_GATEWAY_CODE_QUEUE: "-1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.once("exit", resolve));
    assert.equal(code, 1);
    const lines = stderr.trim().split("\n");
    assert.equal(lines.length, 2, stderr);
    assert.match(stderr, /TOOLPLANE_CODE_ADDR="nope": expected host:port/);
    assert.match(stderr, /TOOLPLANE_GATEWAY_CODE_QUEUE="-1"/);
  });
});
