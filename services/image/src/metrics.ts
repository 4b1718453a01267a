import { Counter, Gauge } from "prom-client";
import { metricsRegistry, onScrape } from "../../runtime/src/index.js";
import type { DecodedCache } from "./decoded-cache.js";

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
  let reported = { hits: 0, misses: 0 };
  onScrape(() => {
    const now = cache.stats();
    hits.inc(now.hits - reported.hits);
    misses.inc(now.misses - reported.misses);
    bytes.set(now.bytes);
    entries.set(now.entries);
    reported = now;
  });
}
