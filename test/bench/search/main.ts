/**
 * Search benchmark: a cache hit at the service (over gRPC, memory and NATS KV
 * caches) and local BM25 queries over a generated 100k-document corpus, each
 * with a baseline measured in the same run:
 *   - cache hit vs ListProviders (a no-op RPC on the same connection: the floor of any call);
 *   - BM25 query vs a naive linear scan counting query terms in every document.
 * Targets from issue 6: cache hit p50 <= 1 ms at the service, local query p50 <= 10 ms.
 * `--quick`: tiny sizes, proves the script works; no figure is judged.
 */
import { execFileSync } from "node:child_process";
import { CacheStatus, SearchRequest, SearchServiceClient } from "../../../generated/toolplane/search/v1/search.js";
import { createClient, invoke, seededRandom } from "../../../services/runtime/src/index.js";
import { LocalTextIndex } from "../../../services/search/src/local-text-index.js";
import { type SpawnedNats, spawnNats, spawnService } from "../../support/processes.js";
import { benchDiskIndex } from "./disk-index.js";
import { fmt, report } from "./figures.js";
import { SyntheticCorpus } from "./synthetic-corpus.js";

const quick = process.argv.includes("--quick");
const SIZES = quick
  ? { documents: 2_000, queries: 50, scanQueries: 5, hits: 50 }
  : { documents: 100_000, queries: 1_000, scanQueries: 20, hits: 2_000 };

const verdict = (met: boolean) => (quick ? "not judged in --quick" : met ? "met" : "NOT met");

/** The in-memory index on 100k documents: the baseline of the disk index's queries (disk-index.ts). */
async function benchIndex(): Promise<{ p50: number; p99: number }> {
  const corpus = new SyntheticCorpus(seededRandom(42));
  const generated = performance.now();
  const documents = Array.from({ length: SIZES.documents }, (_, id) => corpus.document(id));
  const index = new LocalTextIndex();
  const indexing = performance.now();
  index.add(documents);
  const built = performance.now();
  process.stdout.write(
    `in-memory corpus: ${index.size} documents generated in ${fmt(indexing - generated)}, indexed in ${fmt(built - indexing)}\n`,
  );
  const queries = corpus.queries(SIZES.queries);
  for (const query of queries.slice(0, 20)) index.search(query, 10);
  const bm25 = queries.map((query) => {
    const start = performance.now();
    index.search(query, 10);
    return performance.now() - start;
  });
  const bodies = documents.map((doc) => `${doc.title} ${doc.text}`);
  const scan = queries.slice(0, SIZES.scanQueries).map((query) => {
    const terms = query.split(" ");
    const start = performance.now();
    const scored: Array<[number, number]> = [];
    for (const [id, body] of bodies.entries()) {
      let score = 0;
      for (const term of terms) score += body.split(term).length - 1;
      if (score > 0) scored.push([score, id]);
    }
    scored.sort((a, b) => b[0] - a[0]).slice(0, 10);
    return performance.now() - start;
  });
  const q = report(`in-memory BM25 query (top 10), ${SIZES.documents} docs`, bm25);
  const s = report("baseline: linear scan, term counts", scan);
  process.stdout.write(
    `  -> BM25 p50 is ${(s.p50 / q.p50).toFixed(0)}x faster than the scan baseline; target p50 <= 10 ms: ${verdict(q.p50 <= 10)}\n`,
  );
  return q;
}

async function benchCacheHit(label: string, env: Record<string, string>): Promise<void> {
  const service = await spawnService("search", env);
  const client = createClient(SearchServiceClient, service.address);
  try {
    const request = SearchRequest.fromPartial({ query: "perceptual hash of an image", topK: 5 });
    const warm = await invoke(client, client.search, request);
    if (warm.cacheStatus !== CacheStatus.CACHE_STATUS_MISS) throw new Error("expected the first call to miss");
    for (let i = 0; i < 50; i += 1) {
      await invoke(client, client.search, request);
      await invoke(client, client.listProviders, {});
    }
    const roundTrip: number[] = [];
    const atService: number[] = [];
    const noop: number[] = [];
    for (let i = 0; i < SIZES.hits; i += 1) {
      let start = performance.now();
      const response = await invoke(client, client.search, request);
      roundTrip.push(performance.now() - start);
      if (response.cacheStatus !== CacheStatus.CACHE_STATUS_HIT) throw new Error("expected a cache hit");
      atService.push(response.timing?.totalMs ?? Number.NaN);
      start = performance.now();
      await invoke(client, client.listProviders, {});
      noop.push(performance.now() - start);
    }
    const service50 = report(`cache hit (${label}), inside the service`, atService).p50;
    const hit = report(`cache hit (${label}), gRPC round trip`, roundTrip);
    const floor = report("baseline: ListProviders round trip", noop);
    process.stdout.write(
      `  -> hit round trip / no-op round trip = ${(hit.p50 / floor.p50).toFixed(2)}x; target p50 <= 1 ms at the service: ${verdict(service50 <= 1)}\n`,
    );
  } finally {
    client.close();
    await service.stop();
  }
}

function natsAvailable(): boolean {
  try {
    execFileSync("nats-server", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

process.stdout.write(`search benchmark${quick ? " (--quick: sizes too small to judge)" : ""}\n`);
const inMemory = await benchIndex();
await benchDiskIndex({ quick, inMemory, verdict });
await benchCacheHit("memory LRU", {});
if (natsAvailable()) {
  let nats: SpawnedNats | undefined;
  try {
    nats = await spawnNats();
    await benchCacheHit("NATS KV", { TOOLPLANE_NATS_URL: nats.url });
  } finally {
    await nats?.stop();
  }
} else {
  process.stdout.write("NATS KV cache hit: skipped, nats-server is not installed\n");
}
