import assert from "node:assert/strict";
import { describe, it } from "node:test";
import sharp from "sharp";
import { ErrorClass } from "../../../generated/toolplane/common/v1/common.js";
import {
  EpisodeEndReason,
  Fidelity,
  ImageDelivery,
  ModelFormat,
  ResultStatus,
  StepOutcome,
  ToolResult,
} from "../../../generated/toolplane/gateway/v1/gateway.js";
import { FakeSearch, searchAnswer } from "../../../test/support/fake-search.js";
import { hostileImages, hugePng } from "../../../test/support/hostile-images.js";
import {
  canonicalJson,
  createLogger,
  type RecordKey,
  type ResultRecorder,
  type ToolCallEvent,
  unboundedScope,
} from "../../runtime/src/index.js";
import { AdmissionController } from "./admission.js";
import { createGrpcBackends } from "./backends.js";
import { type Caller, ToolGateway } from "./gateway.js";
import { MemoryImageStore } from "./image-store.js";
import { MemorySessionStore } from "./sessions.js";
import { ToolRegistry } from "./tools.js";

function png(width: number, height: number): Promise<Buffer> {
  return sharp({ create: { width, height, channels: 3, background: "gray" } })
    .png()
    .toBuffer();
}

// Nothing listens here: any backend call fails in transport, as with a service that is down.
const DOWN = "127.0.0.1:9";

function setup(
  options: {
    now?: () => number;
    recorder?: ResultRecorder;
    events?: ToolCallEvent[];
    storeBytes?: number;
    searchAddress?: string;
    /** Stores answer every method a turn later, with a promise, as a remote (JetStream) store would. */
    asyncStores?: boolean;
  } = {},
) {
  const store = new MemoryImageStore(options.storeBytes ?? 50_000_000);
  const sessions = new MemorySessionStore(options.now);
  const backends = createGrpcBackends({ image: DOWN, code: DOWN, search: options.searchAddress ?? DOWN });
  const events = options.events;
  const gateway = new ToolGateway({
    backends,
    store: options.asyncStores ? answeringLater(store) : store,
    sessions: options.asyncStores ? answeringLater(sessions) : sessions,
    admission: new AdmissionController({
      image: { maxConcurrent: 4, maxQueue: 4 },
      code: { maxConcurrent: 4, maxQueue: 4 },
      search: { maxConcurrent: 4, maxQueue: 4 },
    }),
    tools: new ToolRegistry(),
    logger: createLogger("gateway-test", "silent"),
    defaultIdleTtlMs: 60_000,
    maxIdleTtlMs: 3_600_000,
    sweepIntervalMs: 1000,
    observer: events ? { onEvent: (event) => events.push(event) } : undefined,
    recorder: options.recorder,
  });
  return { gateway, store, sessions, close: () => backends.close() };
}

/** The object with every method answering through a promise that settles on a later turn. */
function answeringLater<T extends object>(target: T): T {
  return new Proxy(target, {
    get(object, key) {
      const value = Reflect.get(object, key, object);
      if (typeof value !== "function") return value;
      return (...args: unknown[]) =>
        new Promise((resolve, reject) =>
          setImmediate(() => {
            try {
              resolve(value.apply(object, args));
            } catch (error) {
              reject(error);
            }
          }),
        );
    },
  });
}

const caller = (): Caller => ({ clientId: "test", scope: unboundedScope() });

function execute(sessionId: string, name: string, args: unknown, timeoutMs = 2000) {
  return {
    sessionId,
    call: { callId: "c1", name, argumentsJson: JSON.stringify(args) },
    timeoutMs,
    imageDelivery: ImageDelivery.IMAGE_DELIVERY_REFERENCE,
    step: 1,
  };
}

describe("trajectory sessions", () => {
  it("binds input images by sha256 and holds each once; a duplicate trajectory id is refused", async () => {
    const { gateway, store, close } = setup();
    const image = await png(50, 40);
    const created = await gateway.createSession({
      rolloutId: "r1",
      trajectoryId: "t1",
      images: [
        { data: image, mimeType: "", width: 0, height: 0 },
        { data: image, mimeType: "", width: 0, height: 0 },
      ],
      idleTtlSeconds: 0,
    });
    assert.equal(created.sessionId, "t1");
    assert.equal(created.imageSha256.length, 2);
    assert.equal(created.imageSha256[0], created.imageSha256[1]);
    assert.equal(store.size.heldBytes, image.length);
    await assert.rejects(
      gateway.createSession({ rolloutId: "r1", trajectoryId: "t1", images: [], idleTtlSeconds: 0 }),
      /trajectory_id "t1" is already open/,
    );
    const byReference = await gateway.createSession({
      rolloutId: "",
      trajectoryId: "",
      images: [{ sha256: created.imageSha256[0], mimeType: "", width: 0, height: 0 }],
      idleTtlSeconds: 0,
    });
    assert.match(byReference.sessionId, /^[0-9a-f-]{36}$/);
    await gateway.closeSession("t1");
    assert.equal(store.size.heldBytes, image.length, "still held by the second session");
    await gateway.closeSession(byReference.sessionId);
    assert.equal(store.size.heldBytes, 0);
    close();
  });

  it("decodes a caller's images fully at CreateSession and PutImage: cut, corrupt, bombs and oversize are INVALID_ARGUMENT there", async () => {
    const { gateway, store, close } = setup();
    const good = await png(10, 10);
    const cases = { ...(await hostileImages()), "a 48-megapixel PNG": await hugePng(8000, 6000) };
    for (const [name, data] of Object.entries(cases)) {
      await assert.rejects(
        gateway.createSession({
          rolloutId: "",
          trajectoryId: "",
          images: [
            { data: good, mimeType: "", width: 0, height: 0 },
            { data, mimeType: "", width: 0, height: 0 },
          ],
          idleTtlSeconds: 0,
        }),
        (error: Error & { errorClass?: string; code?: number }) => {
          assert.equal(error.name, "InvalidArgumentError", `${name}: ${error.message}`);
          assert.match(error.message, /^images\[1\]\.data /, name);
          return true;
        },
      );
      await assert.rejects(gateway.putImage(data), /^InvalidArgumentError: data /, name);
    }
    assert.equal(store.size.heldBytes, 0, "nothing held");
    assert.equal(store.size.images, 1, "only the good image was stored");
    close();
  });

  it("refuses bad images and TTLs, naming the field, and leaves nothing held", async () => {
    const { gateway, store, close } = setup();
    const good = await png(10, 10);
    await assert.rejects(
      gateway.createSession({
        rolloutId: "",
        trajectoryId: "",
        images: [
          { data: good, mimeType: "", width: 0, height: 0 },
          { data: Buffer.from("x"), mimeType: "", width: 0, height: 0 },
        ],
        idleTtlSeconds: 0,
      }),
      /images\[1\]\.data does not start like an accepted image/,
    );
    assert.equal(store.size.heldBytes, 0);
    await assert.rejects(
      gateway.createSession({ rolloutId: "", trajectoryId: "", images: [], idleTtlSeconds: 7200 }),
      /idle_ttl_seconds is 7200 s, over the limit of 3600 s/,
    );
    close();
  });

  it("closes a session idle past its TTL, but not while a call runs", async () => {
    let now = 1_000_000;
    const { gateway, sessions, store, close } = setup({ now: () => now });
    const image = await png(20, 20);
    const { sessionId } = await gateway.createSession({
      rolloutId: "r",
      trajectoryId: "",
      images: [{ data: image, mimeType: "", width: 0, height: 0 }],
      idleTtlSeconds: 5,
    });
    now += 4_000;
    assert.equal(await gateway.closeExpired(), 0);
    const session = sessions.get(sessionId);
    now += 10_000;
    session.activeCalls += 1;
    assert.equal(await gateway.closeExpired(), 0, "a running call keeps the session open");
    session.activeCalls -= 1;
    assert.equal(await gateway.closeExpired(), 1);
    assert.equal(store.size.heldBytes, 0);
    await assert.rejects(
      gateway.execute(execute(sessionId, "search", { query: "q" }), caller()),
      (error: Error & { errorClass?: string }) => {
        assert.equal(error.name, "NotFoundError");
        assert.equal(error.errorClass, "INFRASTRUCTURE");
        return true;
      },
    );
    close();
  });

  it("CloseRollout closes every session of the rollout and no other", async () => {
    const { gateway, sessions, close } = setup();
    for (const id of ["a", "b", "c"]) {
      await gateway.createSession({ rolloutId: "aborted", trajectoryId: id, images: [], idleTtlSeconds: 0 });
    }
    await gateway.createSession({ rolloutId: "other", trajectoryId: "d", images: [], idleTtlSeconds: 0 });
    assert.equal(await gateway.closeRollout("aborted"), 3);
    assert.equal(await gateway.closeRollout("aborted"), 0);
    assert.equal(sessions.count, 1);
    assert.ok(sessions.get("d"));
    close();
  });
});

describe("the stores behind their interfaces", () => {
  it("sessions, calls and release work the same with stores that answer asynchronously", async () => {
    const { gateway, store, sessions, close } = setup({ asyncStores: true });
    const image = await png(20, 20);
    const { sessionId, imageSha256 } = await gateway.createSession({
      rolloutId: "r",
      trajectoryId: "",
      images: [{ data: image, sha256: undefined, mimeType: "", width: 0, height: 0 }],
      idleTtlSeconds: 0,
    });
    assert.equal(store.size.heldBytes, image.length);
    assert.equal((await gateway.getImage(imageSha256[0] ?? "")).width, 20);
    const refused = await gateway.execute(
      execute(sessionId, "image_process", { image: "image_1", operations: [{ rotate: { angel: 90 } }] }),
      caller(),
    );
    assert.equal(refused.error?.code, "INVALID_ARGUMENT");
    const down = await gateway.execute(
      execute(sessionId, "image_process", { image: "image_1", operations: [{ rotate: { angleDegrees: 90 } }] }),
      caller(),
    );
    assert.equal(down.status, ResultStatus.RESULT_STATUS_INFRA_ERROR);
    assert.equal(await gateway.closeRollout("r"), 1);
    assert.equal(sessions.count, 0);
    assert.equal(store.size.heldBytes, 0, "closing the session released its image");
    close();
  });
});

describe("tool calls and the error taxonomy", () => {
  it("an unknown tool and bad arguments are MODEL errors shown to the model", async () => {
    const { gateway, close } = setup();
    const { sessionId } = await gateway.createSession({
      rolloutId: "",
      trajectoryId: "",
      images: [],
      idleTtlSeconds: 0,
    });
    const unknown = await gateway.execute(execute(sessionId, "calculator", {}), caller());
    assert.equal(unknown.status, ResultStatus.RESULT_STATUS_MODEL_ERROR);
    assert.equal(unknown.text, "Error: Invalid tool call name: calculator");
    const badQuery = await gateway.execute(execute(sessionId, "search", { query: 3 }), caller());
    assert.equal(badQuery.status, ResultStatus.RESULT_STATUS_MODEL_ERROR);
    assert.equal(badQuery.error?.code, "INVALID_ARGUMENT");
    assert.equal(badQuery.text, "Error: arguments.query must be a non-empty string");
    const missingImage = await gateway.execute(
      execute(sessionId, "image_zoom_in_tool", { bbox_2d: [0, 0, 10, 10] }),
      caller(),
    );
    assert.equal(missingImage.text, "Error: ZOOM IN ARGUMENTS ARE INVALID");
    close();
  });

  // The JavaScript host rejected a misspelled operation field while image_process dropped it silently.
  it("image_process rejects a misspelled operation field as the JavaScript host does, before any backend call", async () => {
    const { gateway, close } = setup();
    const { sessionId } = await gateway.createSession({
      rolloutId: "",
      trajectoryId: "",
      images: [{ data: await png(20, 20), sha256: undefined, mimeType: "", width: 0, height: 0 }],
      idleTtlSeconds: 0,
    });
    const result = await gateway.execute(
      execute(sessionId, "image_process", { image: "image_1", operations: [{ rotate: { angel: 90 } }] }),
      caller(),
    );
    assert.equal(result.status, ResultStatus.RESULT_STATUS_MODEL_ERROR);
    assert.equal(result.error?.code, "INVALID_ARGUMENT");
    assert.match(result.text, /arguments\.operations\[0\]\.rotate has an unknown field "angel"/);
    close();
  });

  it("a backend that is down is an INFRA_ERROR, never shown to the model", async () => {
    const events: ToolCallEvent[] = [];
    const { gateway, close } = setup({ events });
    const { sessionId } = await gateway.createSession({
      rolloutId: "r9",
      trajectoryId: "t9",
      images: [],
      idleTtlSeconds: 0,
    });
    const result = await gateway.execute(execute(sessionId, "search", { query: "q" }), caller());
    assert.equal(result.status, ResultStatus.RESULT_STATUS_INFRA_ERROR);
    assert.equal(result.text, "");
    assert.ok(["UNAVAILABLE", "DEADLINE_EXCEEDED"].includes(result.error?.code ?? ""), result.error?.code);
    assert.equal(result.error?.retryable, true);
    assert.deepEqual(
      events.map((event) => [event.phase, event.tool, event.trajectoryId, event.rolloutId, event.step]),
      [
        ["started", "search", "t9", "r9", 1],
        ["finished", "search", "t9", "r9", 1],
      ],
    );
    assert.equal(events[1]?.status, "INFRA_ERROR");
    assert.equal(events[1]?.errorClass, "INFRASTRUCTURE");
    assert.equal(events[0]?.argumentsDigest, events[1]?.argumentsDigest);
    const step = await gateway.step(
      {
        sessionId,
        format: ModelFormat.MODEL_FORMAT_DEEPEYES_V2,
        text: '<tool_call>{"name": "search", "arguments": {"query": "q"}}</tool_call>',
        imageDelivery: 0,
        timeoutMs: 2000,
        step: 2,
        fidelity: Fidelity.FIDELITY_STRICT,
      },
      caller(),
    );
    assert.equal(step.outcome, StepOutcome.STEP_OUTCOME_TOOL_CALLED);
    assert.equal(step.status, ResultStatus.RESULT_STATUS_INFRA_ERROR);
    assert.equal(step.observation, "");
    // The DeepEyesV2 reference shows "Search error" and ends the episode; the status still blames the backend.
    const reference = await gateway.step(
      {
        sessionId,
        format: ModelFormat.MODEL_FORMAT_DEEPEYES_V2,
        text: '<tool_call>{"name": "search", "arguments": {"query": "q"}}</tool_call>',
        imageDelivery: 0,
        timeoutMs: 2000,
        step: 3,
      },
      caller(),
    );
    assert.equal(reference.outcome, StepOutcome.STEP_OUTCOME_EPISODE_END);
    assert.equal(reference.episodeEndReason, EpisodeEndReason.EPISODE_END_REASON_SEARCH_FAILED);
    assert.equal(reference.observation, "Search error");
    assert.equal(reference.status, ResultStatus.RESULT_STATUS_INFRA_ERROR);
    assert.equal(reference.error?.errorClass, ErrorClass.ERROR_CLASS_INFRASTRUCTURE);
    close();
  });

  it("ExecuteBatch answers every item: partial success, per-item session errors", async () => {
    const { gateway, close } = setup();
    const { sessionId } = await gateway.createSession({
      rolloutId: "",
      trajectoryId: "",
      images: [],
      idleTtlSeconds: 0,
    });
    const results = await gateway.executeBatch(
      [execute(sessionId, "calculator", {}), execute("nope", "search", { query: "x" })],
      caller(),
    );
    assert.equal(results.length, 2);
    assert.equal(results[0]?.status, ResultStatus.RESULT_STATUS_MODEL_ERROR);
    assert.equal(results[1]?.status, ResultStatus.RESULT_STATUS_INFRA_ERROR);
    assert.match(results[1]?.error?.message ?? "", /calls\[1\]\.session_id: no open session "nope"/);
    const tooMany = Array.from({ length: 1025 }, () => execute(sessionId, "calculator", {}));
    await assert.rejects(gateway.executeBatch(tooMany, caller()), /calls has 1025 items, over the limit of 1024/);
    close();
  });

  it("Step: answers, non-calls and parse errors need no backend", async () => {
    const { gateway, close } = setup();
    const { sessionId } = await gateway.createSession({
      rolloutId: "",
      trajectoryId: "",
      images: [],
      idleTtlSeconds: 0,
    });
    const step = (text: string) =>
      gateway.step(
        { sessionId, format: ModelFormat.MODEL_FORMAT_DEEPEYES_V2, text, imageDelivery: 0, timeoutMs: 0, step: 0 },
        caller(),
      );
    const answer = await step("<answer>B</answer>");
    assert.deepEqual(
      [answer.outcome, answer.answer, answer.status],
      [StepOutcome.STEP_OUTCOME_ANSWER, "B", ResultStatus.RESULT_STATUS_OK],
    );
    assert.equal((await step("thinking...")).outcome, StepOutcome.STEP_OUTCOME_NO_CALL);
    const bad = await step('<tool_call>{"name": "browse"}</tool_call>');
    assert.equal(bad.outcome, StepOutcome.STEP_OUTCOME_PARSE_ERROR);
    assert.equal(bad.status, ResultStatus.RESULT_STATUS_MODEL_ERROR);
    assert.equal(bad.observation, 'Error: Invalid tool call name: {"name": "browse"}.');
    await assert.rejects(
      gateway.step(
        { sessionId, format: ModelFormat.MODEL_FORMAT_UNSPECIFIED, text: "", imageDelivery: 0, timeoutMs: 0, step: 0 },
        caller(),
      ),
      /format must be one of/,
    );
    close();
  });
});

describe("record and replay", () => {
  class MemoryRecorder implements ResultRecorder {
    readonly stored = new Map<string, Uint8Array>();
    constructor(readonly mode: "record" | "replay") {}
    async lookup(key: RecordKey) {
      return this.stored.get(canonicalJson(key));
    }
    async record(key: RecordKey, result: Uint8Array) {
      this.stored.set(canonicalJson(key), result);
    }
  }

  it("record stores OK results as ToolResult bytes; a replaying gateway serves them with the backend down", async () => {
    const search = await new FakeSearch(async (request) => ({
      ...searchAnswer(request.query, request.query),
      results: [
        {
          title: request.query,
          url: "https://example.test",
          snippet: "s",
          date: "",
          thumbnail: undefined,
          thumbnailUrl: "",
          score: 1,
        },
      ],
    })).start();
    const recorder = new MemoryRecorder("record");
    const live = setup({ recorder, searchAddress: search.address });
    const liveSession = await live.gateway.createSession({
      rolloutId: "",
      trajectoryId: "",
      images: [],
      idleTtlSeconds: 0,
    });
    const recorded = await live.gateway.execute(execute(liveSession.sessionId, "search", { query: "oslo" }), caller());
    assert.equal(recorded.status, ResultStatus.RESULT_STATUS_OK);
    const failed = await live.gateway.execute(execute(liveSession.sessionId, "search", { query: "" }), caller());
    assert.equal(failed.status, ResultStatus.RESULT_STATUS_MODEL_ERROR);
    assert.equal(recorder.stored.size, 1, "only results that ran are recorded");
    live.close();
    await search.stop();

    const replaying = new MemoryRecorder("replay");
    for (const [key, value] of recorder.stored) replaying.stored.set(key, value);
    const replay = setup({ recorder: replaying });
    const replaySession = await replay.gateway.createSession({
      rolloutId: "",
      trajectoryId: "",
      images: [],
      idleTtlSeconds: 0,
    });
    const served = await replay.gateway.execute(
      {
        ...execute(replaySession.sessionId, "search", { query: "oslo" }),
        call: { callId: "other", name: "search", argumentsJson: '{ "query" : "oslo" }' },
      },
      caller(),
    );
    assert.equal(served.status, ResultStatus.RESULT_STATUS_OK);
    assert.equal(served.callId, "other");
    assert.equal(served.text, recorded.text);
    assert.equal(served.outputJson, recorded.outputJson);
    replay.close();
  });

  it("replay serves the recorded result without calling the backend; a miss is INFRA FAILED_PRECONDITION", async () => {
    const recorder = new MemoryRecorder("replay");
    const key: RecordKey = {
      tool: "search",
      canonicalArguments: canonicalJson({ query: "paris" }),
      inputImages: [],
      toolVersion: "1",
    };
    const recorded = ToolResult.encode({
      callId: "",
      name: "search",
      text: "A Google search for 'paris' found 0 results:\n\n## Web Results\n",
      images: [],
      error: undefined,
      outputJson: "{}",
      timing: undefined,
      status: ResultStatus.RESULT_STATUS_OK,
    }).finish();
    await recorder.record(key, recorded);
    const { gateway, close } = setup({ recorder });
    const { sessionId } = await gateway.createSession({
      rolloutId: "",
      trajectoryId: "",
      images: [],
      idleTtlSeconds: 0,
    });
    const hit = await gateway.execute(execute(sessionId, "search", { query: "paris" }), caller());
    assert.equal(hit.status, ResultStatus.RESULT_STATUS_OK);
    assert.equal(hit.callId, "c1");
    assert.equal(hit.text, "A Google search for 'paris' found 0 results:\n\n## Web Results\n");
    const miss = await gateway.execute(execute(sessionId, "search", { query: "rome" }), caller());
    assert.equal(miss.status, ResultStatus.RESULT_STATUS_INFRA_ERROR);
    assert.equal(miss.error?.code, "FAILED_PRECONDITION");
    // A format's hints change results (resize, re-indentation, box rules), so they are part of the key:
    // the strict Step shares Execute's recording, the reference Step does not.
    const stepSearch = (fidelity: Fidelity | undefined) =>
      gateway.step(
        {
          sessionId,
          format: ModelFormat.MODEL_FORMAT_DEEPEYES_V2,
          text: '<tool_call>{"name": "search", "arguments": {"query": "paris"}}</tool_call>',
          imageDelivery: 0,
          timeoutMs: 2000,
          step: 3,
          fidelity,
        },
        caller(),
      );
    const strict = await stepSearch(Fidelity.FIDELITY_STRICT);
    assert.equal(strict.status, ResultStatus.RESULT_STATUS_OK);
    assert.equal(
      strict.observation,
      "<tool_response>\nA Google search for 'paris' found 0 results:\n\n## Web Results\n\n</tool_response>",
    );
    const reference = await stepSearch(undefined);
    assert.equal(reference.results[0]?.error?.code, "FAILED_PRECONDITION");
    assert.equal(reference.outcome, StepOutcome.STEP_OUTCOME_EPISODE_END);
    close();
  });
});
