import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { NodeSDK, tracing } from "@opentelemetry/sdk-node";
import { InvalidArgumentError, UnavailableError } from "./errors.js";
import { callAttributes, startStage, traceLogFields, withSpan, withStage, withToolCallSpan } from "./telemetry.js";

const exporter = new tracing.InMemorySpanExporter();
const processor = new tracing.SimpleSpanProcessor(exporter);
const sdk = new NodeSDK({ spanProcessors: [processor], instrumentations: [] });

/** Export waits for the SDK's resource detection, so flush before looking. */
async function finished(name: string) {
  await processor.forceFlush();
  return exporter.getFinishedSpans().filter((span) => span.name === name);
}

describe("span helpers", () => {
  before(() => sdk.start());
  after(() => sdk.shutdown());

  it("nests stage spans under the active span and carries the call attributes", async () => {
    exporter.reset();
    const attributes = callAttributes({ tool: "search", trajectoryId: "t1", rolloutId: "r1", step: 2 });
    let logFields: Record<string, string> = {};
    await withSpan("toolplane.tool_call", attributes, async (span) => {
      logFields = traceLogFields();
      assert.equal(logFields.trace_id, span.spanContext().traceId);
      await withStage("cache", { "toolplane.cache.hit": true }, async () => undefined);
    });
    const [call] = await finished("toolplane.tool_call");
    const [cache] = await finished("toolplane.cache");
    assert.ok(call && cache);
    assert.equal(cache.parentSpanContext?.spanId, call.spanContext().spanId);
    assert.deepEqual(call.attributes, {
      "toolplane.tool": "search",
      "toolplane.trajectory_id": "t1",
      "toolplane.rollout_id": "r1",
      "toolplane.step": 2,
    });
    assert.equal(logFields.span_id, call.spanContext().spanId);
    assert.deepEqual(traceLogFields(), {}, "no trace fields outside a span");
  });

  it("marks a failed stage with the error's class and rethrows the error unchanged", async () => {
    exporter.reset();
    const modelError = new InvalidArgumentError("bbox_2d: left must be < right");
    await assert.rejects(
      withStage("sandbox_execute", {}, async () => {
        throw modelError;
      }),
      (error) => error === modelError,
    );
    await assert.rejects(withStage("provider_request", {}, async () => Promise.reject(new UnavailableError("down"))));
    await assert.rejects(withStage("queue_wait", {}, async () => Promise.reject(new Error("a bug"))));
    const classOf = async (name: string) => (await finished(name))[0]?.attributes["toolplane.error_class"];
    assert.equal(await classOf("toolplane.sandbox_execute"), "MODEL");
    assert.equal(await classOf("toolplane.provider_request"), "INFRASTRUCTURE");
    assert.equal(
      await classOf("toolplane.queue_wait"),
      "INFRASTRUCTURE",
      "an unknown error is never the model's fault",
    );
    assert.equal((await finished("toolplane.sandbox_execute"))[0]?.status.code, 2);
    assert.equal((await finished("toolplane.sandbox_execute"))[0]?.events[0]?.name, "exception");
  });

  it("startStage spans end when the caller says so", async () => {
    exporter.reset();
    const wait = startStage("queue_wait", { "toolplane.queue": "python" });
    assert.equal((await finished("toolplane.queue_wait")).length, 0);
    wait.end();
    assert.equal((await finished("toolplane.queue_wait"))[0]?.attributes["toolplane.queue"], "python");
  });

  it("withToolCallSpan is the active parent of the call's stages and records how the call ended", async () => {
    exporter.reset();
    const attributes = { ...callAttributes({ tool: "image_zoom_in_tool", trajectoryId: "t9", step: 4 }) };
    const result = await withToolCallSpan(
      attributes,
      () => withStage("queue_wait", {}, async () => ({ failed: true })),
      () => ({ status: "MODEL_ERROR", errorClass: "MODEL", errorMessage: "bbox_2d: left must be < right" }),
    );
    assert.deepEqual(result, { failed: true });
    await withToolCallSpan(
      attributes,
      async () => "fine",
      () => ({ status: "OK" }),
    );
    const [failed, ok] = await finished("toolplane.tool_call");
    const [wait] = await finished("toolplane.queue_wait");
    assert.ok(failed && ok && wait);
    assert.equal(wait.parentSpanContext?.spanId, failed.spanContext().spanId);
    assert.equal(failed.attributes["toolplane.status"], "MODEL_ERROR");
    assert.equal(failed.attributes["toolplane.error_class"], "MODEL");
    assert.equal(failed.attributes["toolplane.step"], 4);
    assert.equal(failed.status.code, 2);
    assert.equal(failed.status.message, "bbox_2d: left must be < right");
    assert.equal(ok.attributes["toolplane.status"], "OK");
    assert.equal(ok.attributes["toolplane.error_class"], undefined);
    assert.equal(ok.status.code, 0);
  });

  it("withToolCallSpan ends a span whose call threw, with the error's class", async () => {
    exporter.reset();
    await assert.rejects(
      withToolCallSpan(
        {},
        async () => Promise.reject(new UnavailableError("search down")),
        () => ({ status: "OK" }),
      ),
    );
    const [span] = await finished("toolplane.tool_call");
    assert.equal(span?.attributes["toolplane.error_class"], "INFRASTRUCTURE");
    assert.equal(span?.status.code, 2);
  });
});
