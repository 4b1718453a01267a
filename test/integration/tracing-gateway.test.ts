/**
 * The observability of a real tool call end to end: a caller with a W3C trace
 * context calls the real gateway, which calls the real search service; both run
 * with the tracing preload, the gateway with NATS events and recording on (JetStream
 * object store). Then
 * a second gateway in replay mode, with the search service gone, serves the
 * recorded result.
 */
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { Metadata } from "@grpc/grpc-js";
import sharp from "sharp";
import {
  type ExecuteRequest,
  ImageDelivery,
  ResultStatus,
  ToolGatewayClient,
  type ToolResult,
} from "../../generated/toolplane/gateway/v1/gateway.js";
import { createClient, invoke, type ToolCallEvent } from "../../services/runtime/src/index.js";
import { declareVariant, type NatsTarget, natsSkips, startNats } from "../support/containers.js";
import {
  type OtlpReceiver,
  type ReceivedSpan,
  spawnTraced,
  startOtlpReceiver,
  type TracedProcess,
  waitFor,
} from "../support/otlp.js";
import { freePort, metricValue, runExportCli, scrapeMetrics } from "../support/processes.js";

const skips = await natsSkips();
const GATEWAY = join("services", "gateway", "src", "main.js");
const SEARCH = join("services", "search", "src", "main.js");
const IMAGE = join("services", "image", "src", "main.js");
const TRAJECTORY = `traj-e2e-${randomBytes(4).toString("hex")}`;

function searchCall(query: string): ExecuteRequest {
  return {
    sessionId: TRAJECTORY,
    call: { callId: "call-1", name: "search", argumentsJson: JSON.stringify({ query }) },
    timeoutMs: 20_000,
    imageDelivery: ImageDelivery.IMAGE_DELIVERY_BYTES,
    step: 2,
  };
}

async function runCall(address: string, metadata: Metadata): Promise<ToolResult> {
  const client = createClient(ToolGatewayClient, address);
  try {
    await invoke(client, client.createSession, {
      rolloutId: "rollout-e2e",
      trajectoryId: TRAJECTORY,
      images: [],
      idleTtlSeconds: 0,
    });
    const { result } = await invoke(client, client.execute, searchCall("solar eclipse"), {}, metadata);
    assert.ok(result);
    return result;
  } finally {
    client.close();
  }
}

/** Three zooms on the same input image in one trajectory, through the gateway. */
async function zoomThrice(address: string, metadata: Metadata): Promise<ToolResult[]> {
  const client = createClient(ToolGatewayClient, address);
  const photo = await sharp({ create: { width: 640, height: 480, channels: 3, background: { r: 90, g: 140, b: 30 } } })
    .jpeg()
    .toBuffer();
  try {
    const { sessionId } = await invoke(client, client.createSession, {
      rolloutId: "rollout-zoom",
      trajectoryId: `${TRAJECTORY}-zoom`,
      images: [{ data: photo, mimeType: "", width: 0, height: 0 }],
      idleTtlSeconds: 0,
    });
    const results: ToolResult[] = [];
    for (const callId of ["zoom-1", "zoom-2", "zoom-3"]) {
      const request: ExecuteRequest = {
        sessionId,
        call: { callId, name: "image_zoom_in_tool", argumentsJson: JSON.stringify({ bbox_2d: [100, 100, 500, 300] }) },
        timeoutMs: 20_000,
        imageDelivery: ImageDelivery.IMAGE_DELIVERY_BYTES,
        step: 1,
      };
      const { result } = await invoke(client, client.execute, request, {}, metadata);
      assert.ok(result);
      results.push(result);
    }
    return results;
  } finally {
    client.close();
  }
}

describe("client -> gateway -> search: trace, events, metrics, record and replay", () => {
  let receiver: OtlpReceiver;
  let nats: NatsTarget;
  let search: TracedProcess;
  let image: TracedProcess;
  let gateway: TracedProcess;
  const imageTraceId = randomBytes(16).toString("hex");
  const searchCache = `e2e-${randomBytes(4).toString("hex")}`;
  const traceId = randomBytes(16).toString("hex");
  const clientSpanId = randomBytes(8).toString("hex");
  let recorded: ToolResult;
  let zooms: ToolResult[] = [];
  let imageMetricsText = "";
  let metricsText = "";

  before(async () => {
    receiver = await startOtlpReceiver();
    nats = await startNats();
    const otel = { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${receiver.port}`, OTEL_BSP_SCHEDULE_DELAY: "100" };
    search = await spawnTraced(SEARCH, {
      ...otel,
      OTEL_SERVICE_NAME: "toolplane-search",
      TOOLPLANE_NATS_URL: "",
      TOOLPLANE_SEARCH_CACHE_BUCKET: searchCache,
    });
    image = await spawnTraced(IMAGE, { ...otel, OTEL_SERVICE_NAME: "toolplane-image", TOOLPLANE_METRICS_PORT: "0" });
    gateway = await spawnTraced(GATEWAY, {
      ...otel,
      OTEL_SERVICE_NAME: "toolplane-gateway",
      TOOLPLANE_SEARCH_ADDR: search.address,
      TOOLPLANE_IMAGE_ADDR: image.address,
      TOOLPLANE_CODE_ADDR: `127.0.0.1:${await freePort()}`,
      TOOLPLANE_NATS_URL: nats.url,
      TOOLPLANE_RECORD_MODE: "record",
      TOOLPLANE_METRICS_PORT: "0",
    });
    const metadata = new Metadata();
    metadata.set("traceparent", `00-${traceId}-${clientSpanId}-01`);
    recorded = await runCall(gateway.address, metadata);

    metricsText = await scrapeMetrics(gateway);
    // Calls in another trace, after the scrape so the counts above describe the search call alone.
    const zoomMetadata = new Metadata();
    zoomMetadata.set("traceparent", `00-${imageTraceId}-${randomBytes(8).toString("hex")}-01`);
    zooms = await zoomThrice(gateway.address, zoomMetadata);
    imageMetricsText = await scrapeMetrics(image);

    // SIGTERM: the gateway flushes its events and spans before exiting.
    assert.equal(await gateway.stop(), 0, gateway.output.join("\n"));
    await waitFor(
      () => receiver.spans.some((span) => span.traceId === traceId && span.name === "toolplane.tool_call"),
      "the gateway's spans",
    );
    await waitFor(
      () => receiver.spans.some((span) => span.traceId === traceId && span.service === "toolplane-search"),
      "the search service's spans",
    );
    await image.stop();
    await waitFor(
      () =>
        receiver.spans.filter((span) => span.traceId === imageTraceId && span.service === "toolplane-image").length >=
        3,
      "the image service's spans",
    );
  });

  after(async () => {
    await gateway?.stop();
    await search?.stop();
    await image?.stop();
    await nats?.stop();
    await receiver?.stop();
  });

  const spans = () => receiver.spans.filter((span) => span.traceId === traceId);
  const find = (service: string, name: string, kind?: string): ReceivedSpan => {
    const found = spans().find((s) => s.service === service && s.name === name && (!kind || s.kind === kind));
    assert.ok(found, `no ${kind ?? ""} ${name} from ${service} in ${JSON.stringify(spans(), null, 1)}`);
    return found;
  };

  declareVariant("NATS", skips, () => nats?.via);

  it("the call succeeded through the real search service", () => {
    assert.equal(recorded.status, ResultStatus.RESULT_STATUS_OK, JSON.stringify(recorded.error));
    assert.match(recorded.text, /solar eclipse/);
  });

  it("one trace runs from the caller through the gateway into the search service", () => {
    const gatewayServer = find(
      "toolplane-gateway",
      "grpc.toolplane.gateway.v1.ToolGateway/Execute",
      "SPAN_KIND_SERVER",
    );
    const toolCall = find("toolplane-gateway", "toolplane.tool_call");
    const gatewayClient = find(
      "toolplane-gateway",
      "grpc.toolplane.search.v1.SearchService/Search",
      "SPAN_KIND_CLIENT",
    );
    const searchServer = find("toolplane-search", "grpc.toolplane.search.v1.SearchService/Search", "SPAN_KIND_SERVER");
    assert.equal(gatewayServer.parentSpanId, clientSpanId, "the gateway continues the caller's traceparent");
    assert.equal(toolCall.parentSpanId, gatewayServer.spanId);
    assert.equal(searchServer.parentSpanId, gatewayClient.spanId, "the search service continues the gateway's call");
    // The backend call happens inside the gateway's handling of Execute.
    const byId = new Map(spans().map((span) => [span.spanId, span]));
    assert.equal(
      gatewayClient.parentSpanId,
      toolCall.spanId,
      "the call to the search service is the tool call's child",
    );
    // The admission wait is a stage of the tool call too.
    const queueWait = find("toolplane-gateway", "toolplane.queue_wait");
    assert.equal(queueWait.parentSpanId, toolCall.spanId);
    assert.equal(queueWait.attributes["toolplane.backend"], "search");
    assert.equal(typeof queueWait.attributes["toolplane.queue_ms"], "number");
    // The search service's own stages hang under its server span.
    for (const stage of ["toolplane.cache", "toolplane.provider_request"]) {
      const span = find("toolplane-search", stage);
      let up = byId.get(span.parentSpanId);
      while (up && up.spanId !== searchServer.spanId) up = byId.get(up.parentSpanId);
      assert.ok(up, `${stage} descends from the search service's server span`);
    }
    assert.equal(find("toolplane-search", "toolplane.cache").attributes["toolplane.cache.hit"], false);
    assert.equal(find("toolplane-search", "toolplane.provider_request").attributes["toolplane.provider"], "local");
  });

  it("the image service's stages hang under its server span: queue wait, pipeline, and one decode for its cache", () => {
    assert.deepEqual(
      zooms.map((result) => [result.status, result.images[0]?.width, result.images[0]?.height]),
      [
        [ResultStatus.RESULT_STATUS_OK, 400, 200],
        [ResultStatus.RESULT_STATUS_OK, 400, 200],
        [ResultStatus.RESULT_STATUS_OK, 400, 200],
      ],
      JSON.stringify(zooms.map((result) => result.error)),
    );
    const traced = receiver.spans.filter((span) => span.traceId === imageTraceId);
    const byId = new Map(traced.map((span) => [span.spanId, span]));
    const servers = traced.filter(
      (span) =>
        span.service === "toolplane-image" && span.kind === "SPAN_KIND_SERVER" && span.name.endsWith("/Process"),
    );
    assert.equal(servers.length, 3, JSON.stringify(traced, null, 1));
    const under = (name: string) =>
      traced.filter((span) => span.name === name && servers.some((server) => server.spanId === span.parentSpanId));
    assert.equal(under("toolplane.queue_wait").length, 3);
    assert.equal(under("toolplane.queue_wait")[0]?.attributes["toolplane.queue"], "image_workers");
    assert.equal(under("toolplane.image_pipeline").length, 3);
    assert.equal(under("toolplane.image_pipeline")[0]?.attributes["toolplane.operations"], 1);
    // The image is admitted to the decoded-image cache on its second sighting: one decode, by the second call.
    const decodes = traced.filter((span) => span.name === "toolplane.image_decode");
    assert.equal(decodes.length, 1);
    let up = byId.get(decodes[0]?.parentSpanId ?? "");
    while (up && up.kind !== "SPAN_KIND_SERVER") up = byId.get(up.parentSpanId);
    const [, second] = [...servers].sort((a, b) =>
      BigInt(a.startTimeUnixNano) < BigInt(b.startTimeUnixNano) ? -1 : 1,
    );
    assert.equal(up?.spanId, second?.spanId, "the second call decoded the image for the cache");
    // Each image call is a child of the gateway's tool-call span for it.
    for (const server of servers) {
      const client = byId.get(server.parentSpanId);
      assert.equal(client?.service, "toolplane-gateway");
      assert.equal(byId.get(client?.parentSpanId ?? "")?.name, "toolplane.tool_call");
    }
  });

  it("the gateway sends an image's bytes twice, then its sha256 alone, with the same result", () => {
    assert.equal(metricValue(imageMetricsText, 'toolplane_image_references_total{outcome="served"}'), 1);
    assert.equal(metricValue(imageMetricsText, 'toolplane_image_references_total{outcome="not_held"}'), undefined);
    assert.equal(metricValue(imageMetricsText, "toolplane_image_decoded_cache_hits_total"), 1);
    const [first, , third] = zooms.map((result) => Buffer.from(result.images[0]?.data ?? new Uint8Array()));
    assert.ok(first && third && first.length > 0 && first.equals(third));
  });

  it("the tool-call span carries tool, trajectory, rollout, step and status", () => {
    const toolCall = find("toolplane-gateway", "toolplane.tool_call");
    assert.equal(toolCall.attributes["toolplane.tool"], "search");
    assert.equal(toolCall.attributes["toolplane.trajectory_id"], TRAJECTORY);
    assert.equal(toolCall.attributes["toolplane.rollout_id"], "rollout-e2e");
    assert.equal(toolCall.attributes["toolplane.step"], 2);
    assert.equal(toolCall.attributes["toolplane.status"], "OK");
    assert.notEqual(toolCall.statusCode, "STATUS_CODE_ERROR");
  });

  it("the gateway's /metrics shows each backend's admission queue and slots", () => {
    for (const backend of ["image", "code", "search"]) {
      assert.match(metricsText, new RegExp(`^toolplane_queue_depth\\{queue="admission_${backend}"\\} 0$`, "m"));
      assert.match(
        metricsText,
        new RegExp(`^toolplane_pool_size\\{pool="admission_${backend}",state="busy"\\} 0$`, "m"),
      );
    }
    // The default limits: 32 image calls at once, 64 code and 64 search.
    assert.match(metricsText, /^toolplane_pool_size\{pool="admission_image",state="idle"\} 32$/m);
    assert.match(metricsText, /^toolplane_pool_size\{pool="admission_search",state="idle"\} 64$/m);
  });

  it("the gateway's /metrics counts the tool call and the RPC", () => {
    assert.match(metricsText, /^toolplane_tool_calls_total\{tool="search",status="OK"\} 1$/m);
    assert.match(
      metricsText,
      /^toolplane_grpc_server_calls_total\{method="Execute",code="OK"\} 1$/m,
      "unary() counts the gateway's own RPCs",
    );
  });

  it("the call's events are in TOOLPLANE_CALLS and the CLI exports them", async () => {
    const exported = await runExportCli([TRAJECTORY], { TOOLPLANE_NATS_URL: nats.url });
    assert.equal(exported.code, 0, exported.stderr);
    const events = exported.stdout
      .trim()
      .split("\n")
      .map((line) => JSON.parse(line) as ToolCallEvent);
    assert.deepEqual(
      events.map((event) => [event.phase, event.tool, event.trajectoryId, event.rolloutId, event.step]),
      [
        ["started", "search", TRAJECTORY, "rollout-e2e", 2],
        ["finished", "search", TRAJECTORY, "rollout-e2e", 2],
      ],
    );
    assert.equal(events[1]?.status, "OK");
    assert.match(events[1]?.argumentsDigest ?? "", /^[0-9a-f]{64}$/);
  });

  it("a gateway in replay mode serves the recorded result with the search service gone", async () => {
    assert.equal(await search.stop(), 0);
    const replaying = await spawnTraced(GATEWAY, {
      OTEL_EXPORTER_OTLP_ENDPOINT: "",
      TOOLPLANE_SEARCH_ADDR: search.address,
      TOOLPLANE_IMAGE_ADDR: `127.0.0.1:${await freePort()}`,
      TOOLPLANE_CODE_ADDR: `127.0.0.1:${await freePort()}`,
      TOOLPLANE_NATS_URL: nats.url,
      TOOLPLANE_RECORD_MODE: "replay",
    });
    try {
      const replayed = await runCall(replaying.address, new Metadata());
      // Timing describes this run, not the recorded one; everything the model sees is identical.
      assert.deepEqual({ ...replayed, timing: undefined }, { ...recorded, timing: undefined });
    } finally {
      assert.equal(await replaying.stop(), 0);
    }
  });
});
