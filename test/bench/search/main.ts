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
import type { CorpusDocument } from "../../../services/search/src/corpus.js";
import { LocalTextIndex } from "../../../services/search/src/local-text-index.js";
import { type SpawnedNats, spawnNats, spawnService } from "../../support/processes.js";

const quick = process.argv.includes("--quick");
const SIZES = quick
  ? { documents: 2_000, queries: 50, scanQueries: 5, hits: 50 }
  : { documents: 100_000, queries: 1_000, scanQueries: 20, hits: 2_000 };

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

const verdict = (met: boolean) => (quick ? "not judged in --quick" : met ? "met" : "NOT met");
const fmt = (ms: number) => `${ms.toFixed(3)} ms`;
function report(name: string, samples: number[]): { p50: number; p99: number } {
  const p50 = percentile(samples, 50);
  const p99 = percentile(samples, 99);
  process.stdout.write(
    `${name.padEnd(44)} n=${String(samples.length).padStart(5)}  p50 ${fmt(p50)}  p99 ${fmt(p99)}\n`,
  );
  return { p50, p99 };
}

/**
 * Pseudo-words from syllables, drawn with a Zipf-like law (word rank r has
 * weight 1/r) like natural text: a few very common terms, a long tail.
 */
function generateCorpus(count: number, next: () => number): { documents: CorpusDocument[]; vocabulary: string[] } {
  const syllables = "ka ri to me sa lu no vi de pa fo gu be zi mo ta ne ro si la".split(" ");
  const vocabulary: string[] = [];
  const seen = new Set<string>();
  while (vocabulary.length < 30_000) {
    const length = 2 + Math.floor(next() * 3);
    let word = "";
    for (let i = 0; i < length; i += 1) word += syllables[Math.floor(next() * syllables.length)];
    if (!seen.has(word)) {
      seen.add(word);
      vocabulary.push(word);
    }
  }
  const cumulative: number[] = [];
  let total = 0;
  for (let rank = 1; rank <= vocabulary.length; rank += 1) {
    total += 1 / rank;
    cumulative.push(total);
  }
  const word = () => {
    const target = next() * total;
    let low = 0;
    let high = cumulative.length - 1;
    while (low < high) {
      const mid = (low + high) >> 1;
      if ((cumulative[mid] ?? 0) < target) low = mid + 1;
      else high = mid;
    }
    return vocabulary[low] as string;
  };
  const words = (n: number) => Array.from({ length: n }, word).join(" ");
  const documents: CorpusDocument[] = [];
  for (let id = 0; id < count; id += 1)
    documents.push({
      title: words(3 + Math.floor(next() * 4)),
      url: `https://bench.toolplane.invalid/${id}`,
      text: words(40 + Math.floor(next() * 60)),
      date: "2026-01-01",
    });
  return { documents, vocabulary };
}

async function benchIndex(): Promise<void> {
  const next = seededRandom(42);
  const generated = performance.now();
  const { documents, vocabulary } = generateCorpus(SIZES.documents, next);
  const index = new LocalTextIndex();
  const indexing = performance.now();
  index.add(documents);
  const built = performance.now();
  process.stdout.write(
    `corpus: ${index.size} documents generated in ${fmt(indexing - generated)}, indexed in ${fmt(built - indexing)}\n`,
  );
  // Queries of 2-3 terms from ranks 50..5000: neither stop-word-like nor absent.
  const queries = Array.from({ length: SIZES.queries }, () =>
    Array.from({ length: 2 + Math.floor(next() * 2) }, () => vocabulary[50 + Math.floor(next() * 4950)]).join(" "),
  );
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
  const q = report("local BM25 query (top 10)", bm25);
  const s = report("baseline: linear scan, term counts", scan);
  process.stdout.write(
    `  -> BM25 p50 is ${(s.p50 / q.p50).toFixed(0)}x faster than the scan baseline; target p50 <= 10 ms: ${verdict(q.p50 <= 10)}\n`,
  );
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
await benchIndex();
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
