import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { status } from "@grpc/grpc-js";
import sharp from "sharp";
import {
  CachePolicy,
  CacheStatus,
  ImageSearchRequest,
  SearchRequest,
  SearchServiceClient,
} from "../../generated/toolplane/search/v1/search.js";
import { createClient, invoke, type ToolplaneError } from "../../services/runtime/src/index.js";
import { sampleImages } from "../../services/search/src/sample-images.js";
import { FakeProvider, fixture } from "../fixtures/search/fake-provider.js";
import { distRoot, freePort, type SpawnedService, spawnService } from "../support/processes.js";

async function rejection(promise: Promise<unknown>): Promise<ToolplaneError> {
  try {
    await promise;
  } catch (error) {
    return error as ToolplaneError;
  }
  assert.fail("expected the call to fail");
}

describe("search service over a real socket", () => {
  let fake: FakeProvider;
  let service: SpawnedService;
  let client: SearchServiceClient;
  const search = (request: Partial<SearchRequest>, deadlineMs?: number) =>
    invoke(client, client.search, SearchRequest.fromPartial(request), { deadlineMs });

  before(async () => {
    fake = await FakeProvider.start();
    service = await spawnService("search", {
      TOOLPLANE_SEARCH_SERPER_KEY: "serper-test-key",
      TOOLPLANE_SEARCH_SERPER_URL: fake.url,
      TOOLPLANE_SEARCH_BRAVE_KEY: "brave-test-key",
      TOOLPLANE_SEARCH_BRAVE_URL: fake.url,
      TOOLPLANE_SEARCH_MAX_RETRIES: "1",
      TOOLPLANE_SEARCH_BACKOFF_BASE_MS: "10",
      TOOLPLANE_SEARCH_BACKOFF_CAP_MS: "50",
    });
    client = createClient(SearchServiceClient, service.address);
  });
  after(async () => {
    client?.close();
    await service?.stop();
    await fake?.stop();
  });

  it("ListProviders: the default first, only providers with keys listed", async () => {
    const { providers } = await invoke(client, client.listProviders, {});
    assert.deepEqual(
      providers.map((p) => [p.name, p.textSearch, p.imageSearch, p.isDefault]),
      [
        ["local", true, true, true],
        ["serper", true, false, false],
        ["brave", true, false, false],
      ],
    );
  });

  it("local BM25 search, then the same normalized query is a cache HIT", async () => {
    const first = await search({ query: "Paris capital", topK: 3 });
    assert.equal(first.provider, "local");
    assert.equal(first.cacheStatus, CacheStatus.CACHE_STATUS_MISS);
    assert.equal(first.results.length, 3);
    assert.equal(first.results[0]?.title, "Paris, capital of France");
    assert.ok((first.timing?.totalMs ?? -1) >= 0);
    const second = await search({ query: "  paris   CAPITAL", topK: 2 });
    assert.equal(second.cacheStatus, CacheStatus.CACHE_STATUS_HIT);
    assert.deepEqual(second.results, first.results.slice(0, 2));
  });

  it("an empty query is INVALID_ARGUMENT with class MODEL", async () => {
    const error = await rejection(search({ query: " " }));
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.equal(error.errorClass, "MODEL");
    assert.match(error.message, /query must not be empty/);
  });

  it("top_k over the limit is INVALID_ARGUMENT naming the range", async () => {
    const error = await rejection(search({ query: "iron", topK: 11 }));
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.match(error.message, /top_k must be between 1 and 10/);
  });

  it("FROZEN miss is FAILED_PRECONDITION with class INFRASTRUCTURE", async () => {
    const error = await rejection(
      search({ query: "never asked before", cachePolicy: CachePolicy.CACHE_POLICY_FROZEN }),
    );
    assert.equal(error.code, status.FAILED_PRECONDITION);
    assert.equal(error.errorClass, "INFRASTRUCTURE");
    assert.match(error.message, /cache miss in FROZEN mode/);
  });

  it("reverse image search finds a resized, recompressed copy of a shipped image, with a JPEG thumbnail", async () => {
    const [, sample] = await sampleImages();
    assert.ok(sample);
    const copy = await sharp(sample.data).resize(250).jpeg({ quality: 60 }).toBuffer();
    const response = await invoke(
      client,
      client.imageSearch,
      ImageSearchRequest.fromPartial({ image: { data: copy }, topK: 3 }),
    );
    assert.equal(response.provider, "local");
    const [first] = response.results;
    assert.equal(first?.url, sample.url);
    assert.equal(first?.title, sample.title);
    assert.ok(first?.thumbnail?.data && first.thumbnail.data.length > 0);
    assert.equal(first?.thumbnail?.mimeType, "image/jpeg");
    const metadata = await sharp(first?.thumbnail?.data).metadata();
    assert.equal(metadata.width, first?.thumbnail?.width);
  });

  it("image search with a store reference instead of bytes is INVALID_ARGUMENT", async () => {
    const error = await rejection(
      invoke(client, client.imageSearch, ImageSearchRequest.fromPartial({ image: { sha256: "ab".repeat(32) } })),
    );
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.match(error.message, /image\.sha256 references are resolved by the gateway/);
  });

  it("a remote provider (serper) answers through the service and its answer is cached", async () => {
    fake.reset();
    fake.on("/search", { status: 200, body: fixture("serper-search.json") });
    const first = await search({ query: "lake baikal depth", provider: "serper", language: "en" });
    assert.equal(first.provider, "serper");
    assert.equal(first.results[0]?.url, "https://lakes.example.org/baikal");
    assert.equal(first.results[0]?.date, "Mar 3, 2025");
    const again = await search({ query: "Lake Baikal depth", provider: "serper", language: "en" });
    assert.equal(again.cacheStatus, CacheStatus.CACHE_STATUS_HIT);
    assert.equal(fake.requests.length, 1);
  });

  it("a rejected key is UNAUTHENTICATED, class INFRASTRUCTURE, naming the variable", async () => {
    fake.reset();
    fake.on("/res/v1/web/search", { status: 401, body: fixture("brave-error-401.json") });
    const error = await rejection(search({ query: "anything", provider: "brave" }));
    assert.equal(error.code, status.UNAUTHENTICATED);
    assert.equal(error.errorClass, "INFRASTRUCTURE");
    assert.match(error.message, /TOOLPLANE_SEARCH_BRAVE_KEY/);
  });

  it("429 after retries is RESOURCE_EXHAUSTED with the retry hint in trailing metadata", async () => {
    fake.reset();
    fake.on("/res/v1/web/search", {
      status: 429,
      body: fixture("brave-error-429.json"),
      headers: { "retry-after": "0" },
    });
    const error = await rejection(search({ query: "rate limited", provider: "brave" }));
    assert.equal(error.code, status.RESOURCE_EXHAUSTED);
    assert.equal(error.errorClass, "INFRASTRUCTURE");
    assert.ok((error.retryAfterMs ?? 0) > 0);
    assert.equal(fake.requests.length, 2);
  });

  it("the caller's deadline reaches the provider request", async () => {
    fake.reset();
    fake.on("/res/v1/web/search", { status: 200, hang: true });
    const error = await rejection(search({ query: "slow provider", provider: "brave" }, Date.now() + 300));
    assert.equal(error.code, status.DEADLINE_EXCEEDED);
    for (let i = 0; i < 100 && fake.abandoned === 0; i += 1) await new Promise((r) => setTimeout(r, 20));
    assert.equal(fake.abandoned, 1, "the service dropped its provider request when the caller's deadline passed");
  });

  it("a provider that is not configured is FAILED_PRECONDITION saying what to set", async () => {
    const error = await rejection(search({ query: "x", provider: "tavily" }));
    assert.equal(error.code, status.FAILED_PRECONDITION);
    assert.match(error.message, /TOOLPLANE_SEARCH_TAVILY_KEY/);
  });
});

describe("search service with your own corpus and images", () => {
  let dir: string;
  let service: SpawnedService;
  before(async () => {
    dir = mkdtempSync(join(tmpdir(), "search-own-"));
    writeFileSync(
      join(dir, "corpus.jsonl"),
      [
        {
          title: "Quokka",
          url: "https://animals.test/quokka",
          text: "A small marsupial from Rottnest Island.",
          date: "2024-01-02",
        },
        { title: "Numbat", url: "https://animals.test/numbat", snippet: "A termite-eating marsupial." },
      ]
        .map((doc) => JSON.stringify(doc))
        .join("\n"),
    );
    const images = join(dir, "images");
    mkdirSync(images);
    const png = await sharp({ create: { width: 64, height: 48, channels: 3, background: "#22aa44" } })
      .composite([
        { input: Buffer.from('<svg width="64" height="48"><circle cx="16" cy="20" r="12" fill="#fff"/></svg>') },
      ])
      .png()
      .toBuffer();
    writeFileSync(join(images, "green.png"), png);
    writeFileSync(
      join(images, "index.jsonl"),
      `${JSON.stringify({ file: "green.png", title: "Green card", url: "https://cards.test/green" })}\n`,
    );
    service = await spawnService("search", {
      TOOLPLANE_SEARCH_CORPUS: join(dir, "corpus.jsonl"),
      TOOLPLANE_SEARCH_IMAGE_DIR: images,
    });
  });
  after(async () => {
    await service?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("indexes the given JSONL corpus and image folder", async () => {
    const client = createClient(SearchServiceClient, service.address);
    try {
      const text = await invoke(client, client.search, SearchRequest.fromPartial({ query: "termite" }));
      assert.deepEqual(
        text.results.map((r) => r.title),
        ["Numbat"],
      );
      // A bigger, JPEG-recompressed copy of the indexed PNG.
      const image = await sharp(readFileSync(join(dir, "images", "green.png")))
        .resize(128, 96)
        .jpeg()
        .toBuffer();
      const found = await invoke(
        client,
        client.imageSearch,
        ImageSearchRequest.fromPartial({ image: { data: image } }),
      );
      assert.equal(found.results[0]?.url, "https://cards.test/green");
    } finally {
      client.close();
    }
  });
});

describe("search service start-up configuration", () => {
  const start = (env: Record<string, string>) =>
    new Promise<{ code: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [join(distRoot, "services", "search", "src", "main.js")], {
        env: { ...process.env, TOOLPLANE_GRPC_PORT: "0", ...env },
        stdio: ["ignore", "ignore", "pipe"],
      });
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => {
        stderr += chunk.toString();
      });
      child.once("exit", (code) => resolve({ code, stderr }));
    });

  it("a default provider without its key fails start-up saying what to set", async () => {
    const { code, stderr } = await start({ TOOLPLANE_SEARCH_DEFAULT_PROVIDER: "serpapi" });
    assert.equal(code, 1);
    assert.match(
      stderr,
      /TOOLPLANE_SEARCH_DEFAULT_PROVIDER=serpapi is not available: set TOOLPLANE_SEARCH_SERPAPI_KEY/,
    );
  });

  it("bad values are named one per line", async () => {
    const { code, stderr } = await start({ TOOLPLANE_SEARCH_MAX_TOP_K: "0", TOOLPLANE_SEARCH_BRAVE_URL: "not a url" });
    assert.equal(code, 1);
    assert.match(stderr, /TOOLPLANE_SEARCH_MAX_TOP_K="0"/);
    assert.match(stderr, /TOOLPLANE_SEARCH_BRAVE_URL="not a url"/);
  });

  it("an unreachable NATS fails start-up naming the variable (replicas must share one cache)", async () => {
    const { code, stderr } = await start({ TOOLPLANE_NATS_URL: "nats://127.0.0.1:1" });
    assert.equal(code, 1);
    assert.match(stderr, /TOOLPLANE_NATS_URL=nats:\/\/127\.0\.0\.1:1: cannot open the search cache bucket/);
  });

  it("a corpus line that is not a document fails start-up with file and line", async () => {
    const dir = mkdtempSync(join(tmpdir(), "search-bad-"));
    try {
      writeFileSync(join(dir, "c.jsonl"), '{"title":"ok","url":"u","text":"t"}\n{"title":"no text","url":"u"}\n');
      const { code, stderr } = await start({ TOOLPLANE_SEARCH_CORPUS: join(dir, "c.jsonl") });
      assert.equal(code, 1);
      assert.match(stderr, /TOOLPLANE_SEARCH_CORPUS: .*c\.jsonl:2: .*needs a non-empty text or snippet/);
      assert.equal(stderr.trim().split("\n").length, 1, stderr);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("Lens-style image search through the service", () => {
  let fake: FakeProvider;
  let service: SpawnedService;
  let imagePort: number;
  before(async () => {
    fake = await FakeProvider.start();
    imagePort = await freePort();
    service = await spawnService("search", {
      TOOLPLANE_SEARCH_SERPAPI_KEY: "serpapi-test-key",
      TOOLPLANE_SEARCH_SERPAPI_URL: fake.url,
      TOOLPLANE_SEARCH_IMAGE_PUBLIC_URL: `http://127.0.0.1:${imagePort}`,
      TOOLPLANE_SEARCH_IMAGE_PORT: String(imagePort),
    });
  });
  after(async () => {
    await service?.stop();
    await fake?.stop();
  });

  it("publishes the query image for the provider, returns visual matches with inlined thumbnails", async () => {
    const thumbnail = await sharp({ create: { width: 300, height: 200, channels: 3, background: "#3366cc" } })
      .jpeg()
      .toBuffer();
    fake.on("/thumbs/1.jpg", {
      status: 200,
      body: new Uint8Array(thumbnail),
      headers: { "content-type": "image/jpeg" },
    });
    fake.on("/search.json", {
      status: 200,
      body: fixture("serpapi-google-lens.json").replace(
        "https://encrypted-tbn1.gstatic.example/images?q=tbn:orange-circle",
        `${fake.url}/thumbs/1.jpg`,
      ),
    });
    const query = await sharp({ create: { width: 50, height: 40, channels: 3, background: "#ff8800" } })
      .png()
      .toBuffer();
    const client = createClient(SearchServiceClient, service.address);
    try {
      const { providers } = await invoke(client, client.listProviders, {});
      assert.equal(providers.find((p) => p.name === "serpapi")?.imageSearch, true);
      const response = await invoke(
        client,
        client.imageSearch,
        ImageSearchRequest.fromPartial({ image: { data: query }, provider: "serpapi", topK: 2 }),
      );
      assert.equal(response.provider, "serpapi");
      assert.equal(response.results[0]?.url, "https://posters.example.org/orange-circle");
      assert.equal(response.results[0]?.thumbnail?.mimeType, "image/jpeg");
      assert.equal(response.results[0]?.thumbnail?.width, 160);
      const request = fake.requests.find((r) => r.path === "/search.json");
      assert.equal(request?.query.get("engine"), "google_lens");
      const imageUrl = request?.query.get("url") ?? "";
      assert.match(imageUrl, new RegExp(`^http://127\\.0\\.0\\.1:${imagePort}/images/[0-9a-f]{64}$`));
      const served = await fetch(imageUrl);
      assert.equal(served.status, 200);
      assert.deepEqual(Buffer.from(await served.arrayBuffer()), query);
    } finally {
      client.close();
    }
  });
});
