import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  SearchRequest,
  SearchResponse,
  SearchServiceClient,
  SearchServiceService,
} from "../../../generated/toolplane/search/v1/search.js";
import { InvalidArgumentError, UnavailableError } from "./errors.js";
import { createClient, invoke } from "./grpc-client.js";
import { type RunningServer, startGrpcServer, unary } from "./grpc-server.js";
import { createLogger } from "./logger.js";
import { observeToolCall, onScrape, poolSize, queueDepth } from "./metrics.js";

const logger = createLogger("metrics-test", "silent");

/** The value of one sample line of the Prometheus text format, or undefined when absent. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`);
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`)) continue;
    const labelText = line.slice(name.length + 1, line.indexOf("}"));
    const have = labelText.split(",");
    if (wanted.every((pair) => have.includes(pair))) return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return undefined;
}

describe("metrics endpoint and the gRPC metrics of unary()", () => {
  let server: RunningServer;
  let client: InstanceType<typeof SearchServiceClient>;
  let metricsUrl: string;

  before(async () => {
    server = await startGrpcServer({
      host: "127.0.0.1",
      port: 0,
      services: [
        {
          name: "toolplane.search.v1.SearchService",
          definition: SearchServiceService,
          implementation: {
            search: unary("Search", logger, async (request: SearchRequest) => {
              if (request.query === "model") throw new InvalidArgumentError("query: refused");
              if (request.query === "infra") throw new UnavailableError("provider down");
              return SearchResponse.fromPartial({ provider: "metrics-test" });
            }),
          },
        },
      ],
      protoFiles: ["toolplane/search/v1/search.proto"],
      logger,
      metricsPort: 0,
    });
    assert.ok(server.metrics);
    metricsUrl = `http://127.0.0.1:${server.metrics.port}/metrics`;
    client = createClient(SearchServiceClient, server.address);
  });

  after(async () => {
    client?.close();
    await server?.shutdown(1000);
  });

  it("counts calls by status code, errors by class, and observes latency per method", async () => {
    for (const query of ["ok", "ok", "model", "infra"]) {
      await invoke(client, client.search, SearchRequest.fromPartial({ query })).catch(() => undefined);
    }
    const response = await fetch(metricsUrl);
    assert.equal(response.status, 200);
    assert.match(response.headers.get("content-type") ?? "", /text\/plain/);
    const text = await response.text();
    assert.equal(sample(text, "toolplane_grpc_server_calls_total", { method: "Search", code: "OK" }), 2);
    assert.equal(sample(text, "toolplane_grpc_server_calls_total", { method: "Search", code: "INVALID_ARGUMENT" }), 1);
    assert.equal(sample(text, "toolplane_grpc_server_errors_total", { method: "Search", error_class: "MODEL" }), 1);
    assert.equal(
      sample(text, "toolplane_grpc_server_errors_total", { method: "Search", error_class: "INFRASTRUCTURE" }),
      1,
    );
    assert.equal(sample(text, "toolplane_grpc_server_duration_seconds_count", { method: "Search" }), 4);
    assert.match(text, /^process_cpu_user_seconds_total /m, "default process metrics are exported too");
  });

  it("exports the tool, queue and pool helpers services update", async () => {
    observeToolCall("image_zoom_in_tool", "MODEL_ERROR", 0.02, "MODEL");
    queueDepth.set({ queue: "python" }, 3);
    poolSize.set({ pool: "python", state: "idle" }, 2);
    const text = await (await fetch(metricsUrl)).text();
    assert.equal(sample(text, "toolplane_tool_calls_total", { tool: "image_zoom_in_tool", status: "MODEL_ERROR" }), 1);
    assert.equal(sample(text, "toolplane_tool_errors_total", { tool: "image_zoom_in_tool", error_class: "MODEL" }), 1);
    assert.equal(sample(text, "toolplane_queue_depth", { queue: "python" }), 3);
    assert.equal(sample(text, "toolplane_pool_size", { pool: "python", state: "idle" }), 2);
  });

  it("runs scrape hooks before each scrape, and a failing hook does not break the scrape", async () => {
    let queued = 5;
    onScrape(() => queueDepth.set({ queue: "search" }, queued));
    onScrape(() => {
      throw new Error("hook bug");
    });
    assert.equal(sample(await (await fetch(metricsUrl)).text(), "toolplane_queue_depth", { queue: "search" }), 5);
    queued = 0;
    assert.equal(sample(await (await fetch(metricsUrl)).text(), "toolplane_queue_depth", { queue: "search" }), 0);
  });

  it("answers 404 for anything but GET /metrics", async () => {
    const other = await fetch(metricsUrl.replace("/metrics", "/"));
    assert.equal(other.status, 404);
    await other.text();
    const post = await fetch(metricsUrl, { method: "POST" });
    assert.equal(post.status, 404);
    await post.text();
  });
});
