import assert from "node:assert/strict";
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
import { declareVariant, type NatsTarget, natsSkips, startNats } from "../support/containers.js";
import { type SpawnedService, spawnService } from "../support/processes.js";

const skips = await natsSkips();

/**
 * Two replicas of the search service share one cache in a real nats-server's
 * JetStream KV: what one fetched, the other serves, including in FROZEN mode.
 */
describe("search cache shared through NATS JetStream KV", () => {
  let nats: NatsTarget | undefined;
  let fake: FakeProvider;
  const replicas: SpawnedService[] = [];
  const clients: SearchServiceClient[] = [];
  const search = (replica: number, request: Partial<SearchRequest>) => {
    const client = clients[replica] as SearchServiceClient;
    return invoke(client, client.search, SearchRequest.fromPartial(request));
  };
  const env = () => ({
    TOOLPLANE_NATS_URL: nats?.url ?? "",
    TOOLPLANE_SEARCH_SERPER_KEY: "serper-test-key",
    TOOLPLANE_SEARCH_SERPER_URL: fake.url,
  });

  before(async () => {
    nats = await startNats();
    fake = await FakeProvider.start();
    for (let i = 0; i < 2; i += 1) {
      const replica = await spawnService("search", env());
      replicas.push(replica);
      clients.push(createClient(SearchServiceClient, replica.address));
    }
  });
  after(async () => {
    for (const client of clients) client.close();
    for (const replica of replicas) await replica.stop();
    await fake?.stop();
    await nats?.stop();
  });

  declareVariant("NATS", skips, () => nats?.via);

  it("both replicas use the NATS KV cache", () => {
    for (const replica of replicas)
      assert.ok(
        replica.output.some((line) => line.includes('"cache":"nats-kv"')),
        replica.output.join("\n"),
      );
  });

  it("an answer fetched by one replica is a HIT on the other, without a second provider request", async () => {
    fake.reset();
    fake.on("/search", { status: 200, body: fixture("serper-search.json") });
    const first = await search(0, { query: "lake baikal depth", provider: "serper" });
    assert.equal(first.cacheStatus, CacheStatus.CACHE_STATUS_MISS);
    const second = await search(1, { query: "Lake  Baikal depth", provider: "serper" });
    assert.equal(second.cacheStatus, CacheStatus.CACHE_STATUS_HIT);
    assert.deepEqual(second.results, first.results);
    assert.equal(fake.requests.length, 1);
  });

  it("FROZEN on one replica misses until the other has stored the answer", async () => {
    const frozen = { query: "highest waterfall", cachePolicy: CachePolicy.CACHE_POLICY_FROZEN };
    await assert.rejects(search(1, frozen), (error: ToolplaneError) => {
      assert.equal(error.code, status.FAILED_PRECONDITION);
      assert.equal(error.errorClass, "INFRASTRUCTURE");
      assert.match(error.message, /cache miss in FROZEN mode/);
      return true;
    });
    const stored = await search(0, { query: "highest waterfall" });
    const replayed = await search(1, frozen);
    assert.equal(replayed.cacheStatus, CacheStatus.CACHE_STATUS_HIT);
    assert.deepEqual(replayed.results, stored.results);
  });

  it("a REFRESH on one replica is what the other serves next", async () => {
    fake.reset();
    const changed = JSON.parse(fixture("serper-search.json")) as { organic: Array<{ title: string }> };
    (changed.organic[0] as { title: string }).title = "Lake Baikal - updated page";
    fake.on("/search", { status: 200, body: JSON.stringify(changed) });
    const refreshed = await search(1, {
      query: "lake baikal depth",
      provider: "serper",
      cachePolicy: CachePolicy.CACHE_POLICY_REFRESH,
    });
    assert.equal(refreshed.cacheStatus, CacheStatus.CACHE_STATUS_REFRESHED);
    const other = await search(0, { query: "lake baikal depth", provider: "serper" });
    assert.equal(other.cacheStatus, CacheStatus.CACHE_STATUS_HIT);
    assert.equal(other.results[0]?.title, "Lake Baikal - updated page");
    assert.equal(fake.requests.length, 1);
  });

  it("image answers, thumbnails included, are shared by content hash", async () => {
    const [sample] = await sampleImages();
    assert.ok(sample);
    const request = ImageSearchRequest.fromPartial({ image: { data: Buffer.from(sample.data) }, topK: 2 });
    const a = clients[0] as SearchServiceClient;
    const b = clients[1] as SearchServiceClient;
    const first = await invoke(a, a.imageSearch, request);
    assert.equal(first.cacheStatus, CacheStatus.CACHE_STATUS_MISS);
    const second = await invoke(b, b.imageSearch, request);
    assert.equal(second.cacheStatus, CacheStatus.CACHE_STATUS_HIT);
    assert.equal(second.results[0]?.url, sample.url);
    assert.deepEqual(second.results[0]?.thumbnail?.data, first.results[0]?.thumbnail?.data);
    assert.equal((await sharp(second.results[0]?.thumbnail?.data).metadata()).format, "jpeg");
  });

  it("the shared cache outlives the replicas: a new one replays in FROZEN mode", async () => {
    const fresh = await spawnService("search", { ...env(), TOOLPLANE_SEARCH_CACHE_POLICY: "frozen" });
    const client = createClient(SearchServiceClient, fresh.address);
    try {
      const replayed = await invoke(client, client.search, SearchRequest.fromPartial({ query: "highest waterfall" }));
      assert.equal(replayed.cacheStatus, CacheStatus.CACHE_STATUS_HIT);
      await assert.rejects(
        invoke(client, client.search, SearchRequest.fromPartial({ query: "not recorded anywhere" })),
        (error: ToolplaneError) => error.code === status.FAILED_PRECONDITION,
      );
    } finally {
      client.close();
      await fresh.stop();
    }
  });
});
