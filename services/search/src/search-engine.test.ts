import assert from "node:assert/strict";
import { describe, it } from "node:test";
import sharp from "sharp";
import {
  createLogger,
  FailedPreconditionError,
  InvalidArgumentError,
  type ToolplaneError,
  UnavailableError,
  unboundedScope,
} from "../../runtime/src/index.js";
import { type CachedAnswer, MemoryCache, normalizeQuery, type ResultCache, textCacheKey } from "./cache.js";
import { SearchEngine, type SearchSettings, type TextSearchRequest } from "./search-engine.js";
import type { ImageQuery, ProviderAnswer, SearchProvider, TextQuery } from "./types.js";

/** A provider that counts its calls and answers `count` numbered results. */
class CountingProvider implements SearchProvider {
  readonly textSearch = true;
  calls: TextQuery[] = [];
  imageCalls: ImageQuery[] = [];
  failWith: Error | undefined;
  constructor(
    readonly name: string,
    readonly imageSearch: boolean,
  ) {}
  async search(query: TextQuery): Promise<ProviderAnswer> {
    this.calls.push(query);
    if (this.failWith) throw this.failWith;
    return {
      results: Array.from({ length: query.count }, (_, i) => ({
        title: `${query.query} #${i + 1} (call ${this.calls.length})`,
        url: `https://r.test/${i}`,
        snippet: "",
        date: "",
        score: query.count - i,
      })),
      queueMs: 0,
    };
  }
  async searchImage(query: ImageQuery): Promise<ProviderAnswer> {
    this.imageCalls.push(query);
    return {
      results: [{ title: `image ${query.sha256.slice(0, 8)}`, url: "https://i.test", snippet: "", date: "", score: 1 }],
      queueMs: 0,
    };
  }
}

const SETTINGS: SearchSettings = {
  defaultProvider: "local",
  maxTopK: 10,
  maxQueryChars: 50,
  maxImageBytes: 100_000,
  cacheTtlMs: 60_000,
  defaultCachePolicy: "use",
};
const logger = createLogger("test", "silent");
const scope = unboundedScope();
const request = (overrides: Partial<TextSearchRequest> = {}): TextSearchRequest => ({
  query: "deep lakes",
  topK: 0,
  provider: "",
  cachePolicy: "default",
  language: "",
  region: "",
  ...overrides,
});

function setup(settings: Partial<SearchSettings> = {}, cache: ResultCache = new MemoryCache(100)) {
  const local = new CountingProvider("local", true);
  const brave = new CountingProvider("brave", false);
  const engine = new SearchEngine(
    [local, brave],
    new Map([["serpapi", "set TOOLPLANE_SEARCH_SERPAPI_KEY"]]),
    cache,
    { ...SETTINGS, ...settings },
    logger,
  );
  return { engine, local, brave };
}

async function rejection(promise: Promise<unknown>): Promise<ToolplaneError> {
  try {
    await promise;
  } catch (error) {
    return error as ToolplaneError;
  }
  assert.fail("expected the call to fail");
}

describe("SearchEngine validation", () => {
  it("an empty or blank query is INVALID_ARGUMENT/MODEL naming the field", async () => {
    const { engine } = setup();
    for (const query of ["", "   \n"]) {
      const error = await rejection(engine.search(request({ query }), scope));
      assert.ok(error instanceof InvalidArgumentError);
      assert.equal(error.errorClass, "MODEL");
      assert.match(error.message, /^query must not be empty/);
    }
  });

  it("an oversized query is INVALID_ARGUMENT/MODEL naming the limit", async () => {
    const { engine } = setup();
    const error = await rejection(engine.search(request({ query: "x".repeat(51) }), scope));
    assert.ok(error instanceof InvalidArgumentError);
    assert.equal(error.errorClass, "MODEL");
    assert.equal(error.message, "query has 51 characters, over the limit of 50 (TOOLPLANE_SEARCH_MAX_QUERY_CHARS)");
  });

  it("counts the query in code points: 50 astral-plane characters (100 UTF-16 units) are within a limit of 50", async () => {
    const { engine } = setup();
    const astral = "\u{1F600}".repeat(50);
    assert.equal(astral.length, 100);
    assert.ok((await engine.search(request({ query: astral }), scope)).results);
    const error = await rejection(engine.search(request({ query: `${astral}\u{1F600}` }), scope));
    assert.ok(error instanceof InvalidArgumentError);
    assert.match(error.message, /^query has 51 characters, over the limit of 50/);
  });

  it("top_k above the maximum is INVALID_ARGUMENT/MODEL naming the range; 0 means 5", async () => {
    const { engine } = setup();
    const error = await rejection(engine.search(request({ topK: 11 }), scope));
    assert.ok(error instanceof InvalidArgumentError);
    assert.equal(error.errorClass, "MODEL");
    assert.match(error.message, /top_k must be between 1 and 10 \(0 means 5\); got 11/);
    assert.equal((await engine.search(request({ topK: 0 }), scope)).results.length, 5);
    assert.equal((await engine.search(request({ topK: 10 }), scope)).results.length, 10);
  });

  it("language and region must be short locale codes", async () => {
    const { engine } = setup();
    for (const [field, value] of [
      ["language", "english please"],
      ["region", "x".repeat(100)],
    ] as const) {
      const error = await rejection(engine.search(request({ [field]: value }), scope));
      assert.ok(error instanceof InvalidArgumentError);
      assert.match(error.message, new RegExp(`^${field} must be a language/region code`));
    }
    assert.equal((await engine.search(request({ language: "pt-BR", region: "br" }), scope)).cacheStatus, "MISS");
  });

  it("an unknown provider names the available ones; a known but unconfigured one says what to set", async () => {
    const { engine } = setup();
    const unknown = await rejection(engine.search(request({ provider: "altavista" }), scope));
    assert.ok(unknown instanceof InvalidArgumentError);
    assert.equal(unknown.errorClass, "INFRASTRUCTURE", "the provider field comes from configuration, not the model");
    assert.match(unknown.message, /available here: local, brave/);
    const unconfigured = await rejection(engine.search(request({ provider: "serpapi" }), scope));
    assert.ok(unconfigured instanceof FailedPreconditionError);
    assert.match(unconfigured.message, /TOOLPLANE_SEARCH_SERPAPI_KEY/);
  });

  it("image search: missing, empty, referenced, oversized and undecodable images are rejected by name", async () => {
    const { engine } = setup();
    const image = (data: Uint8Array | undefined, sha256Reference?: string) =>
      engine.searchImage({ data, sha256Reference, topK: 0, provider: "", cachePolicy: "default" }, scope);
    assert.match((await rejection(image(undefined))).message, /^image is required/);
    assert.match((await rejection(image(new Uint8Array()))).message, /^image\.data is empty/);
    const reference = await rejection(image(undefined, "ab".repeat(32)));
    assert.match(reference.message, /image\.sha256 references are resolved by the gateway/);
    assert.equal(reference.errorClass, "INFRASTRUCTURE");
    assert.match(
      (await rejection(image(new Uint8Array(100_001)))).message,
      /image\.data has 100001 bytes, over the limit of 100000 \(TOOLPLANE_SEARCH_MAX_IMAGE_BYTES\)/,
    );
    const garbage = await rejection(image(new TextEncoder().encode("definitely not an image")));
    assert.ok(garbage instanceof InvalidArgumentError);
    assert.equal(garbage.errorClass, "MODEL");
    assert.match(garbage.message, /image\.data does not start like an accepted image/);
  });

  it("image search takes only the system's whitelist, by signature: SVG and AVIF are never parsed, a cut JPEG is refused", async () => {
    const { engine } = setup();
    const image = (data: Uint8Array) =>
      engine.searchImage({ data, sha256Reference: undefined, topK: 0, provider: "", cachePolicy: "default" }, scope);
    const svgs = [
      '<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10"><image xlink:href="file:///etc/passwd" width="10" height="10"/></svg>',
      '<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><image href="http://127.0.0.1:1/x.png" width="10" height="10"/></svg>',
      '<svg xmlns="http://www.w3.org/2000/svg" width="30000" height="30000"><filter id="f"><feTurbulence baseFrequency="0.9" numOctaves="100"/></filter><rect width="100%" height="100%" filter="url(#f)"/></svg>',
    ];
    const avif = await sharp({ create: { width: 16, height: 16, channels: 3, background: "#123456" } })
      .avif()
      .toBuffer();
    for (const data of [...svgs.map((svg) => new TextEncoder().encode(svg)), new Uint8Array(avif)]) {
      const refused = await rejection(image(data));
      assert.ok(refused instanceof InvalidArgumentError, String(refused));
      assert.equal(refused.errorClass, "MODEL");
      assert.match(refused.message, /^image\.data does not start like an accepted image \(its first bytes\)/);
    }
    const jpeg = await sharp({ create: { width: 64, height: 64, channels: 3, background: "#884422" } })
      .jpeg()
      .toBuffer();
    const cut = await rejection(image(new Uint8Array(jpeg.subarray(0, jpeg.length - 40))));
    assert.ok(cut instanceof InvalidArgumentError, String(cut));
    assert.match(cut.message, /^image\.data (does not decode completely|is not a decodable image)/);
  });

  it("image search on a provider without it is refused; the default falls back to local", async () => {
    const { engine, local } = setup({ defaultProvider: "brave" });
    const png = new Uint8Array(
      await sharp({ create: { width: 8, height: 8, channels: 3, background: "#123456" } })
        .png()
        .toBuffer(),
    );
    const refused = await rejection(
      engine.searchImage(
        { data: png, sha256Reference: undefined, topK: 1, provider: "brave", cachePolicy: "default" },
        scope,
      ),
    );
    assert.ok(refused instanceof FailedPreconditionError);
    assert.match(refused.message, /no reverse image search here; use one of: local/);
    const answer = await engine.searchImage(
      { data: png, sha256Reference: undefined, topK: 1, provider: "", cachePolicy: "default" },
      scope,
    );
    assert.equal(answer.provider, "local");
    assert.equal(local.imageCalls[0]?.mimeType, "image/png");
  });

  it("lists the default provider first", () => {
    const { engine } = setup({ defaultProvider: "brave" });
    assert.deepEqual(engine.listProviders(), [
      { name: "brave", textSearch: true, imageSearch: false, isDefault: true },
      { name: "local", textSearch: true, imageSearch: true, isDefault: false },
    ]);
  });

  it("refuses to start with a default provider that is not available", () => {
    assert.throws(
      () =>
        new SearchEngine(
          [],
          new Map([["serpapi", "set TOOLPLANE_SEARCH_SERPAPI_KEY"]]),
          new MemoryCache(1),
          { ...SETTINGS, defaultProvider: "serpapi" },
          logger,
        ),
      /TOOLPLANE_SEARCH_DEFAULT_PROVIDER=serpapi is not available: set TOOLPLANE_SEARCH_SERPAPI_KEY/,
    );
  });
});

describe("SearchEngine cache policies", () => {
  it("USE: the first call is a MISS, the same normalized query is then a HIT without asking the provider", async () => {
    const { engine, local } = setup();
    const first = await engine.search(request({ query: "Deep  Lakes", topK: 3 }), scope);
    assert.equal(first.cacheStatus, "MISS");
    assert.equal(first.results.length, 3);
    const second = await engine.search(request({ query: "deep lakes ", topK: 7 }), scope);
    assert.equal(second.cacheStatus, "HIT");
    assert.equal(second.results.length, 7, "one cached answer of max_top_k serves any top_k");
    assert.equal(second.results[0]?.title, first.results[0]?.title);
    assert.equal(local.calls.length, 1);
    assert.equal(local.calls[0]?.count, 10, "providers are asked for max_top_k");
  });

  it("the cache key separates providers, locales and queries", async () => {
    const { engine, local, brave } = setup();
    await engine.search(request(), scope);
    await engine.search(request({ provider: "brave" }), scope);
    await engine.search(request({ language: "de" }), scope);
    await engine.search(request({ query: "shallow lakes" }), scope);
    assert.equal(local.calls.length, 3);
    assert.equal(brave.calls.length, 1);
  });

  it("REFRESH always asks the provider and stores the new answer", async () => {
    const { engine, local } = setup();
    await engine.search(request(), scope);
    const refreshed = await engine.search(request({ cachePolicy: "refresh" }), scope);
    assert.equal(refreshed.cacheStatus, "REFRESHED");
    assert.match(refreshed.results[0]?.title ?? "", /call 2/);
    const hit = await engine.search(request({ cachePolicy: "use" }), scope);
    assert.equal(hit.cacheStatus, "HIT");
    assert.match(hit.results[0]?.title ?? "", /call 2/);
    assert.equal(local.calls.length, 2);
  });

  it("FROZEN: a miss is FAILED_PRECONDITION/INFRASTRUCTURE with a clear message and never asks the provider", async () => {
    const { engine, local } = setup();
    const error = await rejection(engine.search(request({ cachePolicy: "frozen" }), scope));
    assert.ok(error instanceof FailedPreconditionError);
    assert.equal(error.errorClass, "INFRASTRUCTURE");
    assert.match(error.message, /cache miss in FROZEN mode: provider local has no stored answer/);
    assert.equal(local.calls.length, 0);
    await engine.search(request(), scope);
    assert.equal((await engine.search(request({ cachePolicy: "frozen" }), scope)).cacheStatus, "HIT");
  });

  it("the configured default policy applies when the request leaves it unspecified", async () => {
    const { engine } = setup({ defaultCachePolicy: "frozen" });
    await assert.rejects(engine.search(request(), scope), FailedPreconditionError);
    assert.equal((await engine.search(request({ cachePolicy: "use" }), scope)).cacheStatus, "MISS");
    assert.equal((await engine.search(request(), scope)).cacheStatus, "HIT");
  });

  it("an answer older than the TTL is asked again under USE but still served under FROZEN", async () => {
    const cache = new MemoryCache(10);
    const { engine, local } = setup({ cacheTtlMs: 1000 }, cache);
    const key = textCacheKey({ provider: "local", query: "deep lakes", language: "", region: "" });
    const stale: CachedAnswer = {
      storedAtMs: Date.now() - 5000,
      results: [{ title: "old", url: "u", snippet: "", date: "", score: 1 }],
    };
    await cache.set(key, stale);
    assert.equal((await engine.search(request({ cachePolicy: "frozen" }), scope)).results[0]?.title, "old");
    const fresh = await engine.search(request(), scope);
    assert.equal(fresh.cacheStatus, "MISS");
    assert.equal(local.calls.length, 1);
  });

  it("an unreachable cache: USE still answers from the provider, FROZEN is UNAVAILABLE", async () => {
    const broken: ResultCache = {
      kind: "broken",
      get: () => Promise.reject(new Error("connection refused")),
      set: () => Promise.reject(new Error("connection refused")),
      close: async () => {},
    };
    const { engine } = setup({}, broken);
    assert.equal((await engine.search(request(), scope)).cacheStatus, "MISS");
    const error = await rejection(engine.search(request({ cachePolicy: "frozen" }), scope));
    assert.ok(error instanceof UnavailableError);
    assert.match(error.message, /search cache \(broken\) is unreachable/);
  });

  it("provider failures pass through with their class and are not cached", async () => {
    const { engine, local } = setup();
    local.failWith = new UnavailableError("provider local failed (HTTP 503)");
    await assert.rejects(engine.search(request(), scope), UnavailableError);
    local.failWith = undefined;
    assert.equal((await engine.search(request(), scope)).cacheStatus, "MISS");
  });

  it("image answers are keyed by the image's content hash", async () => {
    const { engine, local } = setup();
    const png = async (color: string) =>
      new Uint8Array(
        await sharp({ create: { width: 8, height: 8, channels: 3, background: color } })
          .png()
          .toBuffer(),
      );
    const red = await png("#ff0000");
    const call = (data: Uint8Array) =>
      engine.searchImage(
        { data, sha256Reference: undefined, topK: 0, provider: "local", cachePolicy: "default" },
        scope,
      );
    assert.equal((await call(red)).cacheStatus, "MISS");
    assert.equal((await call(new Uint8Array(red))).cacheStatus, "HIT");
    assert.equal((await call(await png("#0000ff"))).cacheStatus, "MISS");
    assert.equal(local.imageCalls.length, 2);
  });
});

describe("normalizeQuery", () => {
  it("folds case, Unicode compatibility forms and whitespace", () => {
    assert.equal(normalizeQuery("  Ｌake\tBaikal \n DEPTH "), "lake baikal depth");
  });
});
