import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  type SearchRequest,
  SearchResponse,
  SearchServiceClient,
  SearchServiceService,
} from "../../../generated/toolplane/search/v1/search.js";
import { FakeSearch } from "../../../test/support/fake-search.js";
import { CancelledError } from "./errors.js";
import { createClient, invoke } from "./grpc-client.js";
import { type IncomingCall, type RunningServer, startGrpcServer, unary } from "./grpc-server.js";
import { createLogger } from "./logger.js";

const logger = createLogger("grpc-server-test", "silent");

const request: SearchRequest = { query: "", topK: 1, provider: "", cachePolicy: 0, language: "", region: "" };

describe("unary(): the handler's abort signal", () => {
  let server: RunningServer;
  let client: InstanceType<typeof SearchServiceClient>;
  /** The context of the latest call, and what its handler waits for. */
  let seen: IncomingCall | undefined;
  let release: (() => void) | undefined;
  let started: (() => void) | undefined;

  before(async () => {
    server = await startGrpcServer({
      host: "127.0.0.1",
      port: 0,
      services: [
        {
          name: "toolplane.search.v1.SearchService",
          definition: SearchServiceService,
          implementation: {
            search: unary("Search", logger, async (call: SearchRequest, context) => {
              seen = context;
              if (call.query === "wait") {
                started?.();
                await new Promise<void>((resolve) => {
                  release = resolve;
                  context.scope.signal.addEventListener("abort", () => resolve(), { once: true });
                });
              }
              return SearchResponse.fromPartial({ provider: "grpc-server-test" });
            }),
          },
        },
      ],
      protoFiles: ["toolplane/search/v1/search.proto"],
      logger,
    });
    client = createClient(SearchServiceClient, server.address);
  });

  after(async () => {
    client.close();
    await server.shutdown(1000);
  });

  it("stays unaborted once the call is answered", async () => {
    await invoke(client, client.search, request);
    // grpc-js reports every finished call as cancelled a tick later; that is not the caller leaving.
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(seen?.scope.signal.aborted, false);
  });

  it("aborts when the caller cancels a running call", async () => {
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    const caller = new AbortController();
    const call = invoke(client, client.search, { ...request, query: "wait" }, { signal: caller.signal });
    await running;
    caller.abort();
    await assert.rejects(call);
    const signal = seen?.scope.signal;
    assert.ok(signal);
    if (!signal.aborted) await new Promise((resolve) => signal.addEventListener("abort", resolve, { once: true }));
    assert.match(String((signal.reason as Error).message), /cancelled by caller/);
    assert.ok(signal.reason instanceof CancelledError, "cancellation is its own error, not a deadline");
    release?.();
  });

  // Node turns a timer delay above 2^31-1 ms into 1 ms: unclamped, a far deadline aborted the call at once.
  it("does not abort a call whose deadline is further away than 2^31-1 ms", async () => {
    const running = new Promise<void>((resolve) => {
      started = resolve;
    });
    const call = invoke(client, client.search, { ...request, query: "wait" }, { deadlineMs: Date.now() + 2 ** 32 });
    await running;
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(seen?.scope.signal.aborted, false);
    release?.();
    await call;
  });
});

// Each process reads its environment once, in its main.ts: the server and the client take what main.ts read.
describe("startGrpcServer and createClient read no environment", () => {
  it("serve no metrics and ask no token unless given, whatever the environment says", async () => {
    const saved = { metrics: process.env.TOOLPLANE_METRICS_PORT, token: process.env.TOOLPLANE_SERVICE_TOKEN };
    process.env.TOOLPLANE_METRICS_PORT = "0";
    process.env.TOOLPLANE_SERVICE_TOKEN = "a-service-token-of-the-environment";
    const search = new FakeSearch();
    try {
      await search.start();
      assert.equal(search.server?.metrics, undefined);
      const client = createClient(SearchServiceClient, search.address);
      try {
        assert.equal((await invoke(client, client.search, { ...request, query: "env" })).results.length, 1);
      } finally {
        client.close();
      }
    } finally {
      await search.stop();
      for (const [key, value] of [
        ["TOOLPLANE_METRICS_PORT", saved.metrics],
        ["TOOLPLANE_SERVICE_TOKEN", saved.token],
      ] as const) {
        if (value === undefined) delete process.env[key];
        else process.env[key] = value;
      }
    }
  });
});
