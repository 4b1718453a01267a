import { ConfigError, errorMessage, type Logger } from "../../runtime/src/index.js";
import { MemoryCache, NatsKvCache, type ResultCache } from "./cache.js";
import type { SearchConfig } from "./config.js";
import { readCorpus } from "./corpus.js";
import { DiskIndexPool } from "./disk-index-pool.js";
import { ImageHost } from "./image-host.js";
import { LocalImageIndex, readImageDir } from "./local-image-index.js";
import { LocalTextIndex } from "./local-text-index.js";
import { LocalProvider } from "./providers/local.js";
import { REMOTE_PROVIDERS, variablePrefix } from "./providers/registry.js";
import { RemoteProvider } from "./providers/remote.js";
import { RetrieveEndpoint } from "./retrieve-endpoint.js";
import { sampleCorpus } from "./sample-corpus.js";
import { sampleImages } from "./sample-images.js";
import { SearchEngine } from "./search-engine.js";
import type { SearchProvider, TextIndex } from "./types.js";

export interface SearchApp {
  engine: SearchEngine;
  stop(): Promise<void>;
}

/**
 * The local text index: a disk index built by build-index (TOOLPLANE_SEARCH_INDEX), a JSONL corpus read into
 * memory (TOOLPLANE_SEARCH_CORPUS), or the built-in sample.
 */
async function openTextIndex(config: SearchConfig): Promise<TextIndex> {
  if (config.TOOLPLANE_SEARCH_INDEX && config.TOOLPLANE_SEARCH_CORPUS)
    throw new ConfigError([
      "TOOLPLANE_SEARCH_INDEX and TOOLPLANE_SEARCH_CORPUS are both set: the local provider serves one; build the corpus into the index",
    ]);
  if (config.TOOLPLANE_SEARCH_INDEX) {
    try {
      return new DiskIndexPool(config.TOOLPLANE_SEARCH_INDEX, config.TOOLPLANE_SEARCH_INDEX_THREADS);
    } catch (error) {
      throw new ConfigError([`TOOLPLANE_SEARCH_INDEX: ${errorMessage(error)}`]);
    }
  }
  const index = new LocalTextIndex();
  try {
    index.add(config.TOOLPLANE_SEARCH_CORPUS ? await readCorpus(config.TOOLPLANE_SEARCH_CORPUS) : sampleCorpus());
  } catch (error) {
    throw new ConfigError([`TOOLPLANE_SEARCH_CORPUS: ${errorMessage(error)}`]);
  }
  return index;
}

/** Builds indexes, cache and providers from the validated config. */
export async function createSearchApp(config: SearchConfig, logger: Logger): Promise<SearchApp> {
  const textIndex = await openTextIndex(config);
  const imageIndex = new LocalImageIndex(config.TOOLPLANE_SEARCH_IMAGE_MAX_DISTANCE);
  try {
    const sources = config.TOOLPLANE_SEARCH_IMAGE_DIR
      ? await readImageDir(config.TOOLPLANE_SEARCH_IMAGE_DIR)
      : await sampleImages();
    for (const source of sources)
      await imageIndex.add(source).catch((error: Error) => {
        throw new Error(`${source.url}: ${error.message}`);
      });
  } catch (error) {
    throw new ConfigError([`TOOLPLANE_SEARCH_IMAGE_DIR: ${errorMessage(error)}`]);
  }
  logger.info(
    {
      documents: textIndex.size,
      corpus: config.TOOLPLANE_SEARCH_INDEX ?? config.TOOLPLANE_SEARCH_CORPUS ?? "built-in sample",
      images: imageIndex.size,
      imageDir: config.TOOLPLANE_SEARCH_IMAGE_DIR ?? "built-in sample",
    },
    "local search indexes ready",
  );

  const imageHost = config.TOOLPLANE_SEARCH_IMAGE_PUBLIC_URL
    ? await ImageHost.start({
        host: config.TOOLPLANE_HOST,
        port: config.TOOLPLANE_SEARCH_IMAGE_PORT,
        publicUrl: config.TOOLPLANE_SEARCH_IMAGE_PUBLIC_URL,
        ttlMs: 10 * 60 * 1000,
        logger,
      })
    : undefined;

  const providers: SearchProvider[] = [new LocalProvider(textIndex, imageIndex)];
  const unconfigured = new Map<string, string>();
  const env = config as unknown as Record<string, string | number | undefined>;
  for (const entry of REMOTE_PROVIDERS) {
    const prefix = variablePrefix(entry.name);
    const key = entry.keyVariable ? (env[entry.keyVariable] as string | undefined) : undefined;
    const baseUrl = (env[`${prefix}_URL`] as string | undefined) ?? entry.defaultBaseUrl;
    if (!baseUrl) {
      unconfigured.set(entry.name, `set ${prefix}_URL`);
      continue;
    }
    if (entry.keyVariable && !entry.keyOptional && !key) {
      unconfigured.set(entry.name, `set ${entry.keyVariable}`);
      continue;
    }
    const variables = Object.fromEntries(
      Object.keys(entry.variables ?? {}).map((suffix) => [suffix, env[`${prefix}_${suffix}`]]),
    );
    const adapter = entry.create({ key, variables });
    providers.push(
      new RemoteProvider(
        adapter,
        {
          name: entry.name,
          baseUrl,
          keyVariable: entry.keyVariable ?? `${prefix}_URL (and the service's access rules)`,
          timeoutMs: config.TOOLPLANE_SEARCH_PROVIDER_TIMEOUT_MS,
          maxRetries: config.TOOLPLANE_SEARCH_MAX_RETRIES,
          backoffBaseMs: config.TOOLPLANE_SEARCH_BACKOFF_BASE_MS,
          backoffCapMs: config.TOOLPLANE_SEARCH_BACKOFF_CAP_MS,
          ratePerSecond: env[`${prefix}_RATE_PER_SEC`] as number,
          burst: config.TOOLPLANE_SEARCH_RATE_BURST,
          breakerThreshold: config.TOOLPLANE_SEARCH_BREAKER_THRESHOLD,
          breakerCooldownMs: config.TOOLPLANE_SEARCH_BREAKER_COOLDOWN_MS,
          maxResponseBytes: config.TOOLPLANE_SEARCH_MAX_RESPONSE_BYTES,
        },
        imageHost,
        config.TOOLPLANE_SEARCH_FETCH_THUMBNAILS
          ? {
              timeoutMs: Math.min(5_000, config.TOOLPLANE_SEARCH_PROVIDER_TIMEOUT_MS),
              maxBytes: config.TOOLPLANE_SEARCH_THUMBNAIL_MAX_BYTES,
            }
          : undefined,
      ),
    );
  }

  const available = new Set(providers.map((provider) => provider.name));
  if (!available.has(config.TOOLPLANE_SEARCH_DEFAULT_PROVIDER))
    throw new ConfigError([
      `TOOLPLANE_SEARCH_DEFAULT_PROVIDER=${config.TOOLPLANE_SEARCH_DEFAULT_PROVIDER} is not available: ${unconfigured.get(config.TOOLPLANE_SEARCH_DEFAULT_PROVIDER)}`,
    ]);

  let cache: ResultCache;
  if (config.TOOLPLANE_NATS_URL) {
    try {
      cache = await NatsKvCache.open({
        url: config.TOOLPLANE_NATS_URL,
        bucket: config.TOOLPLANE_SEARCH_CACHE_BUCKET,
        retentionMs: config.TOOLPLANE_SEARCH_CACHE_RETENTION_MS,
        logger,
      });
    } catch (error) {
      // Replicas must share one cache: starting with a private one would silently break FROZEN replays.
      throw new ConfigError([
        `TOOLPLANE_NATS_URL=${config.TOOLPLANE_NATS_URL}: cannot open the search cache bucket (${errorMessage(error)})`,
      ]);
    }
  } else {
    cache = new MemoryCache(config.TOOLPLANE_SEARCH_CACHE_MAX_ENTRIES);
  }

  const engine = new SearchEngine(
    providers,
    unconfigured,
    cache,
    {
      defaultProvider: config.TOOLPLANE_SEARCH_DEFAULT_PROVIDER,
      maxTopK: config.TOOLPLANE_SEARCH_MAX_TOP_K,
      maxQueryChars: config.TOOLPLANE_SEARCH_MAX_QUERY_CHARS,
      maxImageBytes: config.TOOLPLANE_SEARCH_MAX_IMAGE_BYTES,
      cacheTtlMs: config.TOOLPLANE_SEARCH_CACHE_TTL_MS,
      defaultCachePolicy: config.TOOLPLANE_SEARCH_CACHE_POLICY,
    },
    logger,
  );
  logger.info({ providers: engine.listProviders().map((p) => p.name), cache: cache.kind }, "search providers ready");
  const retrieveEndpoint =
    config.TOOLPLANE_SEARCH_RETRIEVE_PORT === undefined
      ? undefined
      : await RetrieveEndpoint.start(engine, {
          host: config.TOOLPLANE_HOST,
          port: config.TOOLPLANE_SEARCH_RETRIEVE_PORT,
          defaultTopK: Math.min(config.TOOLPLANE_SEARCH_RETRIEVE_DEFAULT_TOP_K, config.TOOLPLANE_SEARCH_MAX_TOP_K),
          maxTopK: config.TOOLPLANE_SEARCH_MAX_TOP_K,
          logger,
        });
  return {
    engine,
    async stop() {
      await retrieveEndpoint?.stop();
      await imageHost?.stop();
      await textIndex.close?.();
      await cache.close();
    },
  };
}
