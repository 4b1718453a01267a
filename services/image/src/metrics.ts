import { Counter, Gauge } from "prom-client";
import { metricsRegistry, onScrape, poolSize, queueDepth } from "../../runtime/src/index.js";
import type { DecodedCache } from "./decoded-cache.js";
import type { WorkQueue } from "./limits.js";

/**
 * Publishes the decoded-image cache on /metrics. The cache counts for itself
 * (its unit tests read those counts); each scrape brings these up to date.
 */
export function exposeDecodedCacheMetrics(cache: DecodedCache): void {
  const hits = new Counter({
    name: "toolplane_image_decoded_cache_hits_total",
    help: "Image calls that took the decoded input from the cache (held, or decoded by a concurrent call)",
    registers: [metricsRegistry],
  });
  const misses = new Counter({
    name: "toolplane_image_decoded_cache_misses_total",
    help: "Image calls that decoded their input for the cache",
    registers: [metricsRegistry],
  });
  const bypasses = new Counter({
    name: "toolplane_image_decoded_cache_bypasses_total",
    help: "Image calls that read their bytes without the cache: the image had not yet been seen TOOLPLANE_IMAGE_DECODED_CACHE_ADMIT_ON times",
    registers: [metricsRegistry],
  });
  const bytes = new Gauge({
    name: "toolplane_image_decoded_cache_bytes",
    help: "Pixel bytes held by the decoded-image cache (budget: TOOLPLANE_IMAGE_DECODED_CACHE_MB)",
    registers: [metricsRegistry],
  });
  const entries = new Gauge({
    name: "toolplane_image_decoded_cache_entries",
    help: "Decoded images held by the cache",
    registers: [metricsRegistry],
  });
  let reported = { hits: 0, misses: 0, bypasses: 0 };
  onScrape(() => {
    const now = cache.stats();
    hits.inc(now.hits - reported.hits);
    misses.inc(now.misses - reported.misses);
    bypasses.inc(now.bypasses - reported.bypasses);
    bytes.set(now.bytes);
    entries.set(now.entries);
    reported = now;
  });
}

/**
 * Publishes the pipeline workers before every scrape: waiting calls as
 * `toolplane_queue_depth{queue="image_workers"}`, workers as
 * `toolplane_pool_size{pool="image_workers",state="busy"|"idle"}`.
 */
export function exposeWorkQueueMetrics(queue: WorkQueue): void {
  onScrape(() => {
    const { running, waiting } = queue.stats;
    queueDepth.set({ queue: "image_workers" }, waiting);
    poolSize.set({ pool: "image_workers", state: "busy" }, running);
    poolSize.set({ pool: "image_workers", state: "idle" }, Math.max(0, queue.maxRunning - running));
  });
}

/** Process calls that named their image by sha256: served from held pixels, or answered NOT_FOUND. */
export const imageReferences = new Counter({
  name: "toolplane_image_references_total",
  help: "Process calls that sent image.sha256 instead of the bytes, by outcome (served, not_held: the caller resends the bytes)",
  labelNames: ["outcome"] as const,
  registers: [metricsRegistry],
});
