import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Metadata } from "@grpc/grpc-js";
import { SearchRequest, SearchServiceClient } from "../../generated/toolplane/search/v1/search.js";
import { createClient, invoke, ToolplaneError } from "../../services/runtime/src/index.js";
import {
  type OtlpReceiver,
  type ReceivedSpan,
  spawnTraced,
  startOtlpReceiver,
  type TracedProcess,
  waitFor,
} from "../support/otlp.js";

const HOP = join("test", "fixtures", "trace-hop.js");
const spawnHop = (env: Record<string, string>) => spawnTraced(HOP, env);

function traceparent(traceId: string, parentSpanId: string): string {
  return `00-${traceId}-${parentSpanId}-01`;
}

function callMetadata(traceId: string, clientSpanId: string): Metadata {
  const metadata = new Metadata();
  metadata.set("traceparent", traceparent(traceId, clientSpanId));
  metadata.set("toolplane-trajectory-id", "traj-42");
  metadata.set("toolplane-rollout-id", "rollout-7");
  metadata.set("toolplane-step", "3");
  return metadata;
}

describe("tracing: client -> service A -> service B over OTLP/gRPC", () => {
  let receiver: OtlpReceiver;
  let hopA: TracedProcess;
  let hopB: TracedProcess;
  const okTrace = randomBytes(16).toString("hex");
  const okClientSpan = randomBytes(8).toString("hex");
  const failTrace = randomBytes(16).toString("hex");
  const failClientSpan = randomBytes(8).toString("hex");
  let failure: unknown;

  before(async () => {
    receiver = await startOtlpReceiver();
    const otel = {
      OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`,
      // Export quickly; shutdown flushes the rest anyway.
      OTEL_BSP_SCHEDULE_DELAY: "100",
    };
    hopB = await spawnHop({ ...otel, OTEL_SERVICE_NAME: "service-b" });
    hopA = await spawnHop({ ...otel, OTEL_SERVICE_NAME: "service-a", TOOLPLANE_NEXT_ADDR: hopB.address });
    const client = createClient(SearchServiceClient, hopA.address);
    try {
      const request = SearchRequest.fromPartial({ query: "cats" });
      await invoke(client, client.search, request, {}, callMetadata(okTrace, okClientSpan));
      failure = await invoke(
        client,
        client.search,
        SearchRequest.fromPartial({ query: "fail" }),
        {},
        callMetadata(failTrace, failClientSpan),
      ).then(
        () => undefined,
        (error: unknown) => error,
      );
    } finally {
      client.close();
    }
    // SIGTERM: runMain flushes the span batch before exiting.
    assert.equal(await hopA.stop(), 0, hopA.output.join("\n"));
    assert.equal(await hopB.stop(), 0, hopB.output.join("\n"));
    await waitFor(
      () => [okTrace, failTrace].every((id) => receiver.spans.filter((span) => span.traceId === id).length >= 6),
      "spans of both traces",
    );
  });

  after(async () => {
    await hopA?.stop();
    await hopB?.stop();
    await receiver?.stop();
  });

  const spansOf = (traceId: string) => receiver.spans.filter((span) => span.traceId === traceId);
  const find = (spans: ReceivedSpan[], service: string, name: string, kind?: string): ReceivedSpan => {
    const found = spans.find(
      (s) => s.service === service && s.name === name && (kind === undefined || s.kind === kind),
    );
    assert.ok(found, `no ${kind ?? ""} span ${name} from ${service} in ${JSON.stringify(spans, null, 1)}`);
    return found;
  };

  it("continues the caller's trace and links every hop parent to child", () => {
    const spans = spansOf(okTrace);
    const rpc = "grpc.toolplane.search.v1.SearchService/Search";
    const serverA = find(spans, "service-a", rpc, "SPAN_KIND_SERVER");
    const toolCall = find(spans, "service-a", "toolplane.tool_call");
    const providerRequest = find(spans, "service-a", "toolplane.provider_request");
    const clientA = find(spans, "service-a", rpc, "SPAN_KIND_CLIENT");
    const serverB = find(spans, "service-b", rpc, "SPAN_KIND_SERVER");
    const cacheB = find(spans, "service-b", "toolplane.cache");

    assert.equal(serverA.parentSpanId, okClientSpan, "service A's server span is a child of the caller's span");
    assert.equal(toolCall.parentSpanId, serverA.spanId);
    assert.equal(providerRequest.parentSpanId, toolCall.spanId);
    assert.equal(clientA.parentSpanId, providerRequest.spanId);
    assert.equal(serverB.parentSpanId, clientA.spanId, "service B continues service A's client span");
    assert.equal(cacheB.parentSpanId, serverB.spanId);
    for (const span of [serverA, toolCall, providerRequest, clientA, serverB, cacheB])
      assert.notEqual(span.statusCode, "STATUS_CODE_ERROR", span.name);
  });

  it("puts the call's tool, trajectory, rollout and step on the tool-call span", () => {
    const toolCall = find(spansOf(okTrace), "service-a", "toolplane.tool_call");
    assert.equal(toolCall.attributes["toolplane.tool"], "search");
    assert.equal(toolCall.attributes["toolplane.trajectory_id"], "traj-42");
    assert.equal(toolCall.attributes["toolplane.rollout_id"], "rollout-7");
    assert.equal(toolCall.attributes["toolplane.step"], 3);
    assert.equal(toolCall.attributes["toolplane.error_class"], undefined);
  });

  it("marks a model error with its class on every span it crossed", () => {
    assert.ok(failure instanceof ToolplaneError, `expected a ToolplaneError, got ${String(failure)}`);
    assert.equal(failure.errorClass, "MODEL");
    const spans = spansOf(failTrace);
    const rpc = "grpc.toolplane.search.v1.SearchService/Search";
    const cacheB = find(spans, "service-b", "toolplane.cache");
    const serverB = find(spans, "service-b", rpc, "SPAN_KIND_SERVER");
    const toolCall = find(spans, "service-a", "toolplane.tool_call");
    assert.equal(cacheB.attributes["toolplane.error_class"], "MODEL");
    assert.equal(cacheB.statusCode, "STATUS_CODE_ERROR");
    assert.equal(serverB.attributes["toolplane.error_class"], "MODEL");
    assert.equal(serverB.statusCode, "STATUS_CODE_ERROR");
    assert.equal(toolCall.attributes["toolplane.error_class"], "MODEL", "the remote class survives the hop");
    assert.equal(toolCall.statusCode, "STATUS_CODE_ERROR");
  });

  it("writes the trace id into log lines written inside the call", () => {
    const forwarding = hopA.output.find((line) => line.includes('"msg":"forwarding"') && line.includes('"cats"'));
    assert.ok(forwarding, hopA.output.join("\n"));
    assert.equal((JSON.parse(forwarding) as { trace_id?: string }).trace_id, okTrace);
    const answering = hopB.output.find((line) => line.includes('"msg":"answering"') && line.includes('"cats"'));
    assert.ok(answering, hopB.output.join("\n"));
    assert.equal((JSON.parse(answering) as { trace_id?: string }).trace_id, okTrace);
  });
});

describe("tracing off (no OTLP endpoint)", () => {
  it("the preload starts nothing: the service answers and logs carry no trace id", async () => {
    const env: Record<string, string> = { OTEL_EXPORTER_OTLP_ENDPOINT: "", OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: "" };
    const hop = await spawnHop(env);
    const client = createClient(SearchServiceClient, hop.address);
    try {
      const traceId = randomBytes(16).toString("hex");
      const response = await invoke(
        client,
        client.search,
        SearchRequest.fromPartial({ query: "dogs" }),
        {},
        callMetadata(traceId, randomBytes(8).toString("hex")),
      );
      assert.equal(response.provider, "trace-hop");
      // The log line may reach this process's pipe after the answer does.
      await waitFor(() => hop.output.some((line) => line.includes('"msg":"answering"')), "the answering log line");
      const answering = hop.output.find((line) => line.includes('"msg":"answering"'));
      assert.ok(answering, hop.output.join("\n"));
      assert.equal((JSON.parse(answering) as { trace_id?: string }).trace_id, undefined);
    } finally {
      client.close();
      assert.equal(await hop.stop(), 0);
    }
  });
});
