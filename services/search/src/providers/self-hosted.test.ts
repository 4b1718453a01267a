import assert from "node:assert/strict";
import { after, before, beforeEach, describe, it } from "node:test";
import { FakeProvider, fixture } from "../../../../test/fixtures/search/fake-provider.js";
import { InternalError, UnauthenticatedError, UnavailableError, unboundedScope } from "../../../runtime/src/index.js";
import type { HttpProviderSettings } from "../provider-http.js";
import type { TextQuery } from "../types.js";
import { elasticsearch, elasticsearchAdapter } from "./elasticsearch.js";
import { REMOTE_PROVIDERS } from "./registry.js";
import { RemoteProvider } from "./remote.js";
import { retrievalAdapter } from "./retrieval.js";

const QUERY: TextQuery = { query: "lake baikal depth", count: 10, language: "", region: "" };
const scope = () => unboundedScope();
const ES_OPTIONS = { index: "wiki", titleField: "title", textField: "text" };

function settings(name: string, baseUrl: string, keyVariable: string): HttpProviderSettings {
  return {
    name,
    baseUrl,
    keyVariable,
    timeoutMs: 2_000,
    maxRetries: 1,
    backoffBaseMs: 5,
    backoffCapMs: 20,
    ratePerSecond: 1_000,
    burst: 100,
    breakerThreshold: 100,
    breakerCooldownMs: 60_000,
    maxResponseBytes: 1024 * 1024,
  };
}

let fake: FakeProvider;
before(async () => {
  fake = await FakeProvider.start();
});
after(() => fake.stop());
beforeEach(() => fake.reset());

describe("provider registry", () => {
  it("has one entry per provider, each with a unique name and its key variable under its own prefix", () => {
    const names = REMOTE_PROVIDERS.map((entry) => entry.name);
    assert.deepEqual(names, ["serpapi", "serper", "brave", "tavily", "searxng", "retrieval", "elasticsearch"]);
    for (const entry of REMOTE_PROVIDERS)
      if (entry.keyVariable) assert.equal(entry.keyVariable, `TOOLPLANE_SEARCH_${entry.name.toUpperCase()}_KEY`);
  });
});

describe("retrieval provider (Search-R1 POST /retrieve)", () => {
  const provider = () =>
    new RemoteProvider(
      retrievalAdapter(),
      settings("retrieval", fake.url, "TOOLPLANE_SEARCH_RETRIEVAL_URL"),
      undefined,
    );

  it("asks with Search-R1's body and reads the dense retriever's {id, contents} documents", async () => {
    fake.on("/retrieve", { status: 200, body: fixture("retrieval-retrieve.json") });
    const answer = await provider().search(QUERY, scope());
    const request = fake.requests[0];
    assert.equal(request?.method, "POST");
    assert.deepEqual(JSON.parse(request?.body ?? ""), {
      queries: ["lake baikal depth"],
      topk: 10,
      return_scores: true,
    });
    assert.equal(answer.results.length, 2);
    const [first] = answer.results;
    assert.equal(first?.title, "Lake Baikal");
    assert.equal(first?.url, "corpus:4172");
    assert.match(first?.text ?? "", /^Lake Baikal is a rift lake/);
    assert.equal(first?.score, 0.8713);
  });

  it("reads the BM25 retriever's {title, text, contents} documents", async () => {
    fake.on("/retrieve", { status: 200, body: fixture("retrieval-retrieve-bm25.json") });
    const [first] = (await provider().search(QUERY, scope())).results;
    assert.equal(first?.title, "Lake Baikal");
    assert.equal(first?.text, "Lake Baikal is a rift lake in southern Siberia, Russia.");
    assert.equal(first?.score, 14.27);
  });

  it("a server failure is UNAVAILABLE and retried; a wrong shape is UNAVAILABLE; a 422 is our bug (INTERNAL)", async () => {
    fake.on("/retrieve", { status: 503, body: "busy" }, { status: 200, body: fixture("retrieval-retrieve.json") });
    assert.equal((await provider().search(QUERY, scope())).results.length, 2);
    assert.equal(fake.requests.length, 2);
    fake.on("/retrieve", { status: 200, body: '{"results": []}' });
    await assert.rejects(provider().search(QUERY, scope()), (error: Error) => {
      assert.ok(error instanceof UnavailableError);
      assert.equal(error.errorClass, "INFRASTRUCTURE");
      assert.match(error.message, /unexpected JSON shape \(result/);
      return true;
    });
    fake.on("/retrieve", { status: 422, body: fixture("retrieval-error-422.json") });
    await assert.rejects(provider().search(QUERY, scope()), InternalError);
  });
});

describe("elasticsearch provider (Elasticsearch / OpenSearch _search)", () => {
  const provider = (key?: string) =>
    new RemoteProvider(
      elasticsearchAdapter(key, ES_OPTIONS),
      settings("elasticsearch", fake.url, "TOOLPLANE_SEARCH_ELASTICSEARCH_KEY"),
      undefined,
    );

  it("sends a multi_match over title^2 and text to /<index>/_search and reads hits", async () => {
    fake.on("/wiki/_search", { status: 200, body: fixture("elasticsearch-search.json") });
    const answer = await provider().search(QUERY, scope());
    const request = fake.requests[0];
    assert.deepEqual(JSON.parse(request?.body ?? ""), {
      size: 10,
      query: { multi_match: { query: "lake baikal depth", fields: ["title^2", "text"] } },
    });
    assert.equal(request?.headers.authorization, undefined);
    assert.deepEqual(
      answer.results.map((result) => [result.title, result.url, result.score, result.date]),
      [
        ["Lake Baikal", "https://en.wikipedia.org/wiki/Lake_Baikal", 9.418, "2018-12-20"],
        ["Baikal seal", "wiki:88120", 6.02, ""],
      ],
    );
    assert.match(answer.results[0]?.text ?? "", /deepest lake in the world/);
  });

  it("sends an API key as ApiKey and user:password as Basic", async () => {
    fake.on("/wiki/_search", { status: 200, body: fixture("elasticsearch-search.json") });
    await provider("abc123").search(QUERY, scope());
    await provider("admin:secret").search(QUERY, scope());
    assert.equal(fake.requests[0]?.headers.authorization, "ApiKey abc123");
    assert.equal(fake.requests[1]?.headers.authorization, `Basic ${Buffer.from("admin:secret").toString("base64")}`);
  });

  it("401 names the key variable with the server's reason; a missing index is INTERNAL with the reason", async () => {
    fake.on("/wiki/_search", { status: 401, body: fixture("elasticsearch-error-401.json") });
    await assert.rejects(provider("bad").search(QUERY, scope()), (error: Error) => {
      assert.ok(error instanceof UnauthenticatedError);
      assert.match(error.message, /unable to authenticate.*TOOLPLANE_SEARCH_ELASTICSEARCH_KEY/);
      return true;
    });
    fake.on("/wiki/_search", { status: 404, body: fixture("elasticsearch-error-404.json") });
    await assert.rejects(provider().search(QUERY, scope()), /no such index \[wiki\]/);
  });

  it("its entry validates the index and field names it is configured with", () => {
    const index = elasticsearch.variables?.INDEX;
    assert.ok(index);
    assert.equal(index.safeParse(undefined).data, "toolplane");
    assert.equal(index.safeParse("wiki/../_all").success, false);
    assert.equal(elasticsearch.variables?.TEXT_FIELD?.safeParse("body.en").success, true);
  });
});
