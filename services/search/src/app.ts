import { ConfigError, type Logger } from "../../runtime/src/index.js";
import { MemoryCache, NatsKvCache, type ResultCache } from "./cache.js";
import { DEFAULT_BASE_URLS, REMOTE_PROVIDERS, type RemoteProviderName, type SearchConfig } from "./config.js";
import { ImageHost } from "./image-host.js";
import { LocalImageIndex, readImageDir } from "./local-image-index.js";
import { LocalTextIndex, readCorpus } from "./local-text-index.js";
import { braveAdapter, searxngAdapter, serpapiAdapter, serperAdapter, tavilyAdapter } from "./providers/adapters.js";
import { LocalProvider } from "./providers/local.js";
import { type RemoteAdapter, RemoteProvider } from "./providers/remote.js";
import { sampleCorpus } from "./sample-corpus.js";
import { sampleImages } from "./sample-images.js";
import { SearchEngine } from "./search-engine.js";
import type { SearchProvider } from "./types.js";

export interface SearchApp {
  engine: SearchEngine;
  stop(): Promise<void>;
}

function adapterFor(name: RemoteProviderName, key: string | undefined): RemoteAdapter | undefined {
  switch (name) {
    case "serpapi":
      return key ? serpapiAdapter(key) : undefined;
    case "serper":
      return key ? serperAdapter(key) : undefined;
    case "brave":
      return key ? braveAdapter(key) : undefined;
    case "tavily":
      return key ? tavilyAdapter(key) : undefined;
    case "searxng":
      return searxngAdapter();
  }
}

/** Builds indexes, cache and providers from the validated config. */
export async function createSearchApp(config: SearchConfig, logger: Logger): Promise<SearchApp> {
  const textIndex = new LocalTextIndex();
  const imageIndex = new LocalImageIndex(config.TOOLPLANE_SEARCH_IMAGE_MAX_DISTANCE);
  try {
    textIndex.add(config.TOOLPLANE_SEARCH_CORPUS ? await readCorpus(config.TOOLPLANE_SEARCH_CORPUS) : sampleCorpus());
  } catch (error) {
    throw new ConfigError([`TOOLPLANE_SEARCH_CORPUS: ${(error as Error).message}`]);
  }
  try {
    const sources = config.TOOLPLANE_SEARCH_IMAGE_DIR
      ? await readImageDir(config.TOOLPLANE_SEARCH_IMAGE_DIR)
      : await sampleImages();
    for (const source of sources)
      await imageIndex.add(source).catch((error: Error) => {
        throw new Error(`${source.url}: ${error.message}`);
      });
  } catch (error) {
    throw new ConfigError([`TOOLPLANE_SEARCH_IMAGE_DIR: ${(error as Error).message}`]);
  }
  logger.info(
    {
      documents: textIndex.size,
      corpus: config.TOOLPLANE_SEARCH_CORPUS ?? "built-in sample",
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
  for (const name of REMOTE_PROVIDERS) {
    const prefix = `TOOLPLANE_SEARCH_${name.toUpperCase()}`;
    const key = env[`${prefix}_KEY`] as string | undefined;
    const baseUrl = (env[`${prefix}_URL`] as string | undefined) ?? DEFAULT_BASE_URLS[name];
    const adapter = adapterFor(name, key);
    if (!adapter || !baseUrl) {
      unconfigured.set(name, baseUrl ? `set ${prefix}_KEY` : `set ${prefix}_URL`);
      continue;
    }
    providers.push(
      new RemoteProvider(
        adapter,
        {
          name,
          baseUrl,
          keyVariable: name === "searxng" ? `${prefix}_URL (and the instance's access rules)` : `${prefix}_KEY`,
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
        `TOOLPLANE_NATS_URL=${config.TOOLPLANE_NATS_URL}: cannot open the search cache bucket (${(error as Error).message})`,
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
  return {
    engine,
    async stop() {
      await imageHost?.stop();
      await cache.close();
    },
  };
}
