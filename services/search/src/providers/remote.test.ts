import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { after, before, beforeEach, describe, it } from "node:test";
import sharp from "sharp";
import { type CannedResponse, FakeProvider, fixture } from "../../../../test/fixtures/search/fake-provider.js";
import {
  type CallScope,
  createLogger,
  DeadlineExceededError,
  InternalError,
  ResourceExhaustedError,
  type ToolplaneError,
  UnauthenticatedError,
  UnavailableError,
} from "../../../runtime/src/index.js";
import { ImageHost } from "../image-host.js";
import type { HttpProviderSettings } from "../provider-http.js";
import type { ImageQuery, TextQuery } from "../types.js";
import { braveAdapter } from "./brave.js";
import { type ImagePublisher, type RemoteAdapter, RemoteProvider } from "./remote.js";
import { searxngAdapter } from "./searxng.js";
import { serpapiAdapter } from "./serpapi.js";
import { serperAdapter } from "./serper.js";
import { tavilyAdapter } from "./tavily.js";

const QUERY: TextQuery = { query: "lake baikal depth", count: 10, language: "en", region: "us" };
const KEY = "test-key-123";

function settings(name: string, baseUrl: string, overrides: Partial<HttpProviderSettings> = {}): HttpProviderSettings {
  return {
    name,
    baseUrl,
    keyVariable: `TOOLPLANE_SEARCH_${name.toUpperCase()}_KEY`,
    timeoutMs: 2_000,
    maxRetries: 2,
    backoffBaseMs: 5,
    backoffCapMs: 50,
    ratePerSecond: 1_000,
    burst: 100,
    breakerThreshold: 100,
    breakerCooldownMs: 60_000,
    maxResponseBytes: 1024 * 1024,
    ...overrides,
  };
}

const scope = (signal: AbortSignal = new AbortController().signal, deadlineMs?: number): CallScope => ({
  signal,
  deadlineMs,
});

async function rejection(promise: Promise<unknown>): Promise<ToolplaneError> {
  try {
    await promise;
  } catch (error) {
    return error as ToolplaneError;
  }
  assert.fail("expected the call to fail");
}

interface ProviderCase {
  name: string;
  adapter: () => RemoteAdapter;
  path: string;
  ok: string;
  authStatus: number;
  authBody: string;
  /** What the provider said in its 401/403 body, which must reach the operator. */
  authMessage: RegExp;
  rateBody: string;
  /** Checks the request carried the key and the query the provider's documented way. */
  checkRequest: (request: FakeProvider["requests"][number]) => void;
}

const CASES: ProviderCase[] = [
  {
    name: "serpapi",
    adapter: () => serpapiAdapter(KEY),
    path: "/search.json",
    ok: fixture("serpapi-google.json"),
    authStatus: 401,
    authBody: fixture("serpapi-error-401.json"),
    authMessage: /Invalid API key/,
    rateBody: fixture("serpapi-error-429.json"),
    checkRequest: (request) => {
      assert.equal(request.method, "GET");
      assert.equal(request.query.get("engine"), "google");
      assert.equal(request.query.get("q"), "lake baikal depth");
      assert.equal(request.query.get("api_key"), KEY);
      assert.equal(request.query.get("num"), "10");
      assert.equal(request.query.get("hl"), "en");
      assert.equal(request.query.get("gl"), "us");
    },
  },
  {
    name: "serper",
    adapter: () => serperAdapter(KEY),
    path: "/search",
    ok: fixture("serper-search.json"),
    authStatus: 403,
    authBody: fixture("serper-error-403.json"),
    authMessage: /Unauthorized/,
    rateBody: fixture("serper-error-429.json"),
    checkRequest: (request) => {
      assert.equal(request.method, "POST");
      assert.equal(request.headers["x-api-key"], KEY);
      assert.deepEqual(JSON.parse(request.body), { q: "lake baikal depth", num: 10, hl: "en", gl: "us" });
    },
  },
  {
    name: "brave",
    adapter: () => braveAdapter(KEY),
    path: "/res/v1/web/search",
    ok: fixture("brave-web.json"),
    authStatus: 401,
    authBody: fixture("brave-error-401.json"),
    authMessage: /subscription token is invalid/,
    rateBody: fixture("brave-error-429.json"),
    checkRequest: (request) => {
      assert.equal(request.method, "GET");
      assert.equal(request.headers["x-subscription-token"], KEY);
      assert.equal(request.query.get("q"), "lake baikal depth");
      assert.equal(request.query.get("count"), "10");
    },
  },
  {
    name: "tavily",
    adapter: () => tavilyAdapter(KEY),
    path: "/search",
    ok: fixture("tavily-search.json"),
    authStatus: 401,
    authBody: fixture("tavily-error-401.json"),
    authMessage: /missing or invalid API key/,
    rateBody: fixture("tavily-error-429.json"),
    checkRequest: (request) => {
      assert.equal(request.method, "POST");
      assert.equal(request.headers.authorization, `Bearer ${KEY}`);
      const body = JSON.parse(request.body) as Record<string, unknown>;
      assert.equal(body.query, "lake baikal depth");
      assert.equal(body.max_results, 10);
    },
  },
  {
    name: "searxng",
    adapter: () => searxngAdapter(),
    path: "/search",
    ok: fixture("searxng-search.json"),
    authStatus: 403,
    authBody: fixture("searxng-error-403.txt"),
    authMessage: /permission to access/,
    rateBody: '{"error":"rate limited by the limiter plugin"}',
    checkRequest: (request) => {
      assert.equal(request.method, "GET");
      assert.equal(request.query.get("format"), "json");
      assert.equal(request.query.get("q"), "lake baikal depth");
      assert.equal(request.query.get("language"), "en");
    },
  },
];

describe("remote provider adapters against a local HTTP server", () => {
  let fake: FakeProvider;
  before(async () => {
    fake = await FakeProvider.start();
  });
  after(() => fake.stop());
  beforeEach(() => fake.reset());

  for (const c of CASES) {
    const make = (overrides: Partial<HttpProviderSettings> = {}) =>
      new RemoteProvider(c.adapter(), settings(c.name, fake.url, overrides), undefined);
    const ok: CannedResponse = { status: 200, body: c.ok };

    describe(c.name, () => {
      it("reads the documented response shape and sends the documented request", async () => {
        fake.on(c.path, ok);
        const answer = await make().search(QUERY, scope());
        assert.equal(answer.results.length, 2);
        const [first, second] = answer.results;
        assert.equal(first?.title, "Lake Baikal - deepest lake facts");
        assert.equal(first?.url, "https://lakes.example.org/baikal");
        assert.match(first?.snippet ?? "", /^Lake Baikal reaches a maximum depth of about 1,640 metres/);
        assert.doesNotMatch(first?.snippet ?? "", /<strong>/);
        assert.equal(second?.url, "https://geo.example.net/baikal-rift");
        assert.equal(fake.requests.length, 1);
        c.checkRequest(fake.requests[0] as FakeProvider["requests"][number]);
      });

      it(`${c.authStatus} is UNAUTHENTICATED/INFRASTRUCTURE naming the key variable, not retried`, async () => {
        fake.on(c.path, { status: c.authStatus, body: c.authBody });
        const error = await rejection(make().search(QUERY, scope()));
        assert.ok(error instanceof UnauthenticatedError, String(error));
        assert.equal(error.errorClass, "INFRASTRUCTURE");
        assert.match(error.message, c.authMessage);
        assert.match(error.message, new RegExp(`TOOLPLANE_SEARCH_${c.name.toUpperCase()}_`));
        assert.equal(fake.requests.length, 1);
      });

      it("429 is retried and the retry's answer is returned", async () => {
        fake.on(c.path, { status: 429, body: c.rateBody, headers: { "retry-after": "0" } }, ok);
        const answer = await make().search(QUERY, scope());
        assert.equal(answer.results.length, 2);
        assert.equal(fake.requests.length, 2);
      });

      it("429 after every retry is RESOURCE_EXHAUSTED/INFRASTRUCTURE with a retry hint", async () => {
        fake.on(c.path, { status: 429, body: c.rateBody, headers: { "retry-after": "0" } });
        const error = await rejection(make({ maxRetries: 2 }).search(QUERY, scope()));
        assert.ok(error instanceof ResourceExhaustedError, String(error));
        assert.equal(error.errorClass, "INFRASTRUCTURE");
        assert.ok(error.retryAfterMs !== undefined);
        assert.equal(fake.requests.length, 3);
      });

      it("5xx is retried, then UNAVAILABLE/INFRASTRUCTURE", async () => {
        fake.on(c.path, {
          status: 503,
          body: fixture("server-error-503.txt"),
          headers: { "content-type": "text/html" },
        });
        const error = await rejection(make({ maxRetries: 1 }).search(QUERY, scope()));
        assert.ok(error instanceof UnavailableError, String(error));
        assert.equal(error.errorClass, "INFRASTRUCTURE");
        assert.match(error.message, /HTTP 503/);
        assert.equal(fake.requests.length, 2);
      });

      it("a hanging provider times out per attempt, is retried, then UNAVAILABLE", async () => {
        fake.on(c.path, { status: 200, hang: true });
        const error = await rejection(make({ timeoutMs: 150, maxRetries: 1 }).search(QUERY, scope()));
        assert.ok(error instanceof UnavailableError, String(error));
        assert.match(error.message, /did not answer within 150 ms/);
        assert.equal(fake.requests.length, 2);
      });

      it("malformed JSON is UNAVAILABLE and not retried", async () => {
        fake.on(c.path, { status: 200, body: fixture("malformed.json.txt") });
        const error = await rejection(make().search(QUERY, scope()));
        assert.ok(error instanceof UnavailableError, String(error));
        assert.match(error.message, /not JSON/);
        assert.equal(fake.requests.length, 1);
      });

      it("JSON of the wrong shape is UNAVAILABLE naming the field", async () => {
        fake.on(c.path, { status: 200, body: JSON.stringify({ organic_results: 7, organic: 7, results: 7, web: 7 }) });
        const error = await rejection(make().search(QUERY, scope()));
        assert.ok(error instanceof UnavailableError, String(error));
        assert.match(error.message, /unexpected JSON shape/);
      });
    });
  }

  it("serpapi: Google's 'no results' answer is an empty list, other errors in a 200 are failures", async () => {
    const provider = new RemoteProvider(serpapiAdapter(KEY), settings("serpapi", fake.url), undefined);
    fake.on("/search.json", { status: 200, body: fixture("serpapi-google-no-results.json") });
    assert.deepEqual((await provider.search(QUERY, scope())).results, []);
    fake.on("/search.json", { status: 200, body: '{"error":"Unsupported `xx` gl parameter."}' });
    const error = await rejection(provider.search(QUERY, scope()));
    assert.ok(error instanceof UnavailableError);
    assert.match(error.message, /Unsupported/);
  });

  it("a long Retry-After is handed back to the caller instead of waited out", async () => {
    const provider = new RemoteProvider(serperAdapter(KEY), settings("serper", fake.url), undefined);
    fake.on("/search", { status: 429, body: fixture("serper-error-429.json"), headers: { "retry-after": "30" } });
    const error = await rejection(provider.search(QUERY, scope()));
    assert.ok(error instanceof ResourceExhaustedError);
    assert.equal(error.retryAfterMs, 30_000);
    assert.equal(fake.requests.length, 1);
  });

  it("a body over the size limit is UNAVAILABLE, declared or streamed", async () => {
    const provider = new RemoteProvider(
      tavilyAdapter(KEY),
      settings("tavily", fake.url, { maxResponseBytes: 100 }),
      undefined,
    );
    for (const headers of [{}, { "transfer-encoding": "chunked" }] as Array<Record<string, string>>) {
      fake.reset();
      fake.on("/search", { status: 200, body: fixture("tavily-search.json"), headers });
      const error = await rejection(provider.search(QUERY, scope()));
      assert.ok(error instanceof UnavailableError, String(error));
      assert.match(error.message, /sent more than 100 bytes/);
      assert.equal(fake.requests.length, 1);
    }
  });

  it("408 from the provider is retried like a 5xx", async () => {
    const provider = new RemoteProvider(searxngAdapter(), settings("searxng", fake.url), undefined);
    fake.on("/search", { status: 408, body: "" }, { status: 200, body: fixture("searxng-search.json") });
    assert.equal((await provider.search(QUERY, scope())).results.length, 2);
    assert.equal(fake.requests.length, 2);
  });

  it("tavily: plan limit (432) is RESOURCE_EXHAUSTED without retrying", async () => {
    const provider = new RemoteProvider(tavilyAdapter(KEY), settings("tavily", fake.url), undefined);
    fake.on("/search", { status: 432, body: fixture("tavily-error-432.json") });
    const error = await rejection(provider.search(QUERY, scope()));
    assert.ok(error instanceof ResourceExhaustedError);
    assert.match(error.message, /usage limit/);
    assert.equal(fake.requests.length, 1);
  });

  it("another 4xx means our request is wrong: INTERNAL, not retried", async () => {
    const provider = new RemoteProvider(braveAdapter(KEY), settings("brave", fake.url), undefined);
    fake.on("/res/v1/web/search", {
      status: 422,
      body: '{"type":"ErrorResponse","error":{"detail":"Unable to validate request parameter(s)"}}',
    });
    const error = await rejection(provider.search(QUERY, scope()));
    assert.ok(error instanceof InternalError);
    assert.match(error.message, /Unable to validate/);
    assert.equal(fake.requests.length, 1);
  });

  it("a refused connection is retried, then UNAVAILABLE", async () => {
    const closed = await FakeProvider.start();
    const url = closed.url;
    await closed.stop();
    const provider = new RemoteProvider(braveAdapter(KEY), settings("brave", url, { maxRetries: 1 }), undefined);
    const error = await rejection(provider.search(QUERY, scope()));
    assert.ok(error instanceof UnavailableError);
    assert.match(error.message, /could not be reached: ECONNREFUSED/);
  });

  it("the caller's cancellation aborts the provider request (deadline propagation)", async () => {
    const provider = new RemoteProvider(
      serperAdapter(KEY),
      settings("serper", fake.url, { timeoutMs: 30_000 }),
      undefined,
    );
    fake.on("/search", { status: 200, hang: true });
    const error = await rejection(provider.search(QUERY, scope(AbortSignal.timeout(200), Date.now() + 200)));
    assert.ok(error instanceof DeadlineExceededError, String(error));
    assert.equal(fake.requests.length, 1);
    // The provider saw its connection closed rather than held open.
    for (let i = 0; i < 50 && fake.abandoned === 0; i += 1) await new Promise((r) => setTimeout(r, 20));
    assert.equal(fake.abandoned, 1);
  });

  it("the circuit opens after N consecutive failures, then lets one probe through after the cooldown", async () => {
    const provider = new RemoteProvider(
      braveAdapter(KEY),
      settings("brave", fake.url, { maxRetries: 0, breakerThreshold: 2, breakerCooldownMs: 300 }),
      undefined,
    );
    fake.on(
      "/res/v1/web/search",
      { status: 500, body: "{}" },
      { status: 500, body: "{}" },
      { status: 200, body: fixture("brave-web.json") },
    );
    await rejection(provider.search(QUERY, scope()));
    await rejection(provider.search(QUERY, scope()));
    const open = await rejection(provider.search(QUERY, scope()));
    assert.ok(open instanceof UnavailableError);
    assert.match(open.message, /circuit open after 2 consecutive failures/);
    assert.ok((open.retryAfterMs ?? 0) > 0);
    assert.equal(fake.requests.length, 2, "no request reaches a provider while the circuit is open");
    await new Promise((resolve) => setTimeout(resolve, 350));
    const probe = await provider.search(QUERY, scope());
    assert.equal(probe.results.length, 2);
    assert.equal(provider.http.breaker.currentState, "closed");
  });

  it("rate limiting: a wait past the deadline fails fast with RESOURCE_EXHAUSTED and a retry hint", async () => {
    const provider = new RemoteProvider(
      braveAdapter(KEY),
      settings("brave", fake.url, { ratePerSecond: 0.1, burst: 1 }),
      undefined,
    );
    fake.on("/res/v1/web/search", { status: 200, body: fixture("brave-web.json") });
    await provider.search(QUERY, scope());
    const error = await rejection(provider.search(QUERY, scope(new AbortController().signal, Date.now() + 100)));
    assert.ok(error instanceof ResourceExhaustedError, String(error));
    assert.match(error.message, /rate limited to 0.1\/s/);
    assert.ok((error.retryAfterMs ?? 0) > 100);
    assert.equal(fake.requests.length, 1);
  });
});

describe("Lens-style image search publishes the query image at a URL the provider fetches", () => {
  let fake: FakeProvider;
  let host: ImageHost;
  let image: ImageQuery;
  before(async () => {
    fake = await FakeProvider.start();
    host = await ImageHost.start({
      host: "127.0.0.1",
      port: 0,
      publicUrl: "http://127.0.0.1:0",
      ttlMs: 60_000,
      logger: createLogger("test", "silent"),
    });
    const data = new Uint8Array(
      await sharp({ create: { width: 40, height: 30, channels: 3, background: "#ff8800" } })
        .png()
        .toBuffer(),
    );
    image = { data, sha256: createHash("sha256").update(data).digest("hex"), mimeType: "image/png", count: 10 };
  });
  after(async () => {
    await fake.stop();
    await host.stop();
  });

  // The host's public URL is only known after it bound its port.
  const publisher = (): ImagePublisher => ({
    publish: (query) => host.publish(query).replace("127.0.0.1:0", `127.0.0.1:${host.port}`),
  });

  for (const [name, adapter, path, body, fetchUrl] of [
    [
      "serpapi",
      serpapiAdapter(KEY),
      "/search.json",
      fixture("serpapi-google-lens.json"),
      (r: FakeProvider["requests"][number]) => r.query.get("url"),
    ],
    [
      "serper",
      serperAdapter(KEY),
      "/lens",
      fixture("serper-lens.json"),
      (r: FakeProvider["requests"][number]) => (JSON.parse(r.body) as { url: string }).url,
    ],
  ] as const) {
    it(`${name}: visual matches with thumbnail URLs; the image URL serves the query bytes`, async () => {
      fake.reset();
      fake.on(path, { status: 200, body });
      const provider = new RemoteProvider(adapter, settings(name, fake.url), publisher());
      assert.equal(provider.imageSearch, true);
      const answer = await provider.searchImage(image, scope());
      assert.equal(answer.results[0]?.title, "Orange circle poster on navy background");
      assert.equal(answer.results[0]?.url, "https://posters.example.org/orange-circle");
      assert.match(answer.results[0]?.thumbnailUrl ?? "", /tbn:orange-circle/);
      const request = fake.requests[0] as FakeProvider["requests"][number];
      if (name === "serpapi") assert.equal(request.query.get("engine"), "google_lens");
      const url = fetchUrl(request) ?? "";
      assert.match(url, new RegExp(`/images/${image.sha256}$`));
      const served = await fetch(url);
      assert.equal(served.status, 200);
      assert.equal(served.headers.get("content-type"), "image/png");
      assert.deepEqual(new Uint8Array(await served.arrayBuffer()), image.data);
    });
  }

  it("thumbnails are downloaded and inlined as small JPEGs; one that fails keeps only its URL", async () => {
    fake.reset();
    const body = fixture("serpapi-google-lens.json")
      .replace("https://encrypted-tbn1.gstatic.example/images?q=tbn:orange-circle", `${fake.url}/thumbs/orange.png`)
      .replace("https://encrypted-tbn2.gstatic.example/images?q=tbn:geometric", `${fake.url}/thumbs/missing.png`);
    fake.on("/search.json", { status: 200, body });
    const png = await sharp({ create: { width: 400, height: 300, channels: 3, background: "#ff8800" } })
      .png()
      .toBuffer();
    fake.on("/thumbs/orange.png", { status: 200, body: new Uint8Array(png), headers: { "content-type": "image/png" } });
    const provider = new RemoteProvider(serpapiAdapter(KEY), settings("serpapi", fake.url), publisher(), {
      timeoutMs: 1_000,
      maxBytes: 1024 * 1024,
    });
    const [first, second] = (await provider.searchImage(image, scope())).results;
    assert.equal(first?.thumbnail?.mimeType, "image/jpeg");
    assert.equal(first?.thumbnail?.width, 160);
    assert.equal(first?.thumbnail?.height, 120);
    assert.equal((await sharp(first?.thumbnail?.data).metadata()).format, "jpeg");
    assert.equal(second?.thumbnail, undefined);
    assert.equal(second?.thumbnailUrl, `${fake.url}/thumbs/missing.png`);
  });

  it("a thumbnail over the byte limit is not inlined", async () => {
    fake.reset();
    fake.on("/lens", {
      status: 200,
      body: JSON.stringify({
        organic: [{ title: "big", link: "https://big.test", thumbnailUrl: `${fake.url}/thumbs/big.png` }],
      }),
    });
    fake.on("/thumbs/big.png", { status: 200, body: new Uint8Array(5000), headers: { "content-type": "image/png" } });
    const provider = new RemoteProvider(serperAdapter(KEY), settings("serper", fake.url), publisher(), {
      timeoutMs: 1_000,
      maxBytes: 4096,
    });
    const [only] = (await provider.searchImage(image, scope())).results;
    assert.equal(only?.title, "big");
    assert.equal(only?.thumbnail, undefined);
  });

  it("the image host serves nothing it was not asked to publish", async () => {
    const response = await fetch(`http://127.0.0.1:${host.port}/images/${"0".repeat(64)}`);
    assert.equal(response.status, 404);
  });

  it("without a publisher a Lens provider offers no image search", () => {
    const provider = new RemoteProvider(serpapiAdapter(KEY), settings("serpapi", fake.url), undefined);
    assert.equal(provider.imageSearch, false);
  });
});
