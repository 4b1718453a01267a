import {
  type CallScope,
  codePointLength,
  errorMessage,
  FailedPreconditionError,
  InvalidArgumentError,
  type Logger,
  limitError,
  sha256Hex,
  UnavailableError,
  verifyImage,
  withStage,
} from "../../runtime/src/index.js";
import { type CachedAnswer, imageCacheKey, type ResultCache, textCacheKey } from "./cache.js";
import { MAX_INPUT_PIXELS } from "./image-hash.js";
import type { ProviderAnswer, ProviderResult, SearchProvider } from "./types.js";

export type CachePolicyName = "default" | "use" | "refresh" | "frozen";
export type CacheStatusName = "MISS" | "HIT" | "REFRESHED";

/** DeepEyesV2 shows the model the top 5 results. */
export const DEFAULT_TOP_K = 5;

export interface SearchSettings {
  defaultProvider: string;
  maxTopK: number;
  maxQueryChars: number;
  maxImageBytes: number;
  cacheTtlMs: number;
  /** Policy for requests that leave it unspecified. */
  defaultCachePolicy: "use" | "frozen";
}

export interface TextSearchRequest {
  query: string;
  topK: number;
  provider: string;
  cachePolicy: CachePolicyName;
  language: string;
  region: string;
}

export interface ImageSearchRequest {
  /** Inline bytes; undefined when absent. */
  data: Uint8Array | undefined;
  /** Set when the caller sent a store reference instead of bytes. */
  sha256Reference: string | undefined;
  topK: number;
  provider: string;
  cachePolicy: CachePolicyName;
}

export interface SearchOutcome {
  results: ProviderResult[];
  provider: string;
  cacheStatus: CacheStatusName;
  timing: { queueMs: number; executeMs: number; totalMs: number };
}

export interface ProviderDescription {
  name: string;
  textSearch: boolean;
  imageSearch: boolean;
  isDefault: boolean;
}

/**
 * Validation, provider choice and the cache policy; knows nothing of gRPC.
 * Providers are always asked for maxTopK results and the whole list is cached,
 * so one cached answer serves every top_k.
 */
export class SearchEngine {
  private readonly providers = new Map<string, SearchProvider>();

  constructor(
    providers: SearchProvider[],
    /** Providers this build knows but this instance cannot use, with what to set to enable them. */
    private readonly unconfigured: Map<string, string>,
    private readonly cache: ResultCache,
    private readonly settings: SearchSettings,
    private readonly logger: Logger,
  ) {
    for (const provider of providers) this.providers.set(provider.name, provider);
    if (!this.providers.has(settings.defaultProvider))
      throw new Error(
        `TOOLPLANE_SEARCH_DEFAULT_PROVIDER=${settings.defaultProvider} is not available: ${this.unconfigured.get(settings.defaultProvider) ?? `available: ${[...this.providers.keys()].join(", ")}`}`,
      );
  }

  listProviders(): ProviderDescription[] {
    const names = [
      this.settings.defaultProvider,
      ...[...this.providers.keys()].filter((n) => n !== this.settings.defaultProvider),
    ];
    return names.map((name) => {
      const provider = this.providers.get(name) as SearchProvider;
      return {
        name,
        textSearch: provider.textSearch,
        imageSearch: provider.imageSearch,
        isDefault: name === this.settings.defaultProvider,
      };
    });
  }

  async search(request: TextSearchRequest, scope: CallScope): Promise<SearchOutcome> {
    const started = performance.now();
    const query = request.query.trim();
    if (query === "") throw new InvalidArgumentError("query must not be empty");
    const queryChars = codePointLength(query);
    if (queryChars > this.settings.maxQueryChars)
      throw limitError("query", queryChars, this.settings.maxQueryChars, "characters", undefined, {
        variable: "TOOLPLANE_SEARCH_MAX_QUERY_CHARS",
      });
    const topK = this.topK(request.topK);
    checkLocale("language", request.language);
    checkLocale("region", request.region);
    const provider = this.provider(request.provider, "text");
    const key = textCacheKey({ provider: provider.name, query, language: request.language, region: request.region });
    return this.cached(provider.name, key, request.cachePolicy, topK, started, () =>
      provider.search(
        { query, count: this.settings.maxTopK, language: request.language, region: request.region },
        scope,
      ),
    );
  }

  async searchImage(request: ImageSearchRequest, scope: CallScope): Promise<SearchOutcome> {
    const started = performance.now();
    if (request.sha256Reference !== undefined)
      throw new InvalidArgumentError(
        "image.sha256 references are resolved by the gateway; the search service needs image.data",
        { errorClass: "INFRASTRUCTURE" },
      );
    const data = request.data;
    if (data === undefined) throw new InvalidArgumentError("image is required (image.data with encoded image bytes)");
    if (data.byteLength === 0) throw new InvalidArgumentError("image.data is empty");
    if (data.byteLength > this.settings.maxImageBytes)
      throw limitError("image.data", data.byteLength, this.settings.maxImageBytes, "bytes", undefined, {
        variable: "TOOLPLANE_SEARCH_MAX_IMAGE_BYTES",
      });
    // The system's one whitelist, checked by signature before libvips parses anything (no SVG, no HEIF/AVIF),
    // and a full decode: a truncated or corrupt image is the caller's INVALID_ARGUMENT here, not a failure later.
    const { mimeType } = await verifyImage(data, "image.data", MAX_INPUT_PIXELS);
    const topK = this.topK(request.topK);
    const provider = this.provider(request.provider, "image");
    const sha256 = sha256Hex(data);
    return this.cached(provider.name, imageCacheKey(provider.name, sha256), request.cachePolicy, topK, started, () =>
      provider.searchImage({ data, sha256, mimeType, count: this.settings.maxTopK }, scope),
    );
  }

  private topK(requested: number): number {
    if (requested === 0) return Math.min(DEFAULT_TOP_K, this.settings.maxTopK);
    if (requested > this.settings.maxTopK)
      throw new InvalidArgumentError(
        `top_k must be between 1 and ${this.settings.maxTopK} (0 means ${DEFAULT_TOP_K}); got ${requested}`,
      );
    return requested;
  }

  private provider(name: string, kind: "text" | "image"): SearchProvider {
    if (name === "") {
      const chosen = this.providers.get(this.settings.defaultProvider) as SearchProvider;
      // The default web provider may have no reverse image search (Brave, Tavily, SearXNG).
      if (kind === "image" && !chosen.imageSearch) return this.providers.get("local") as SearchProvider;
      return chosen;
    }
    const provider = this.providers.get(name);
    // The provider field comes from the caller's configuration, never from the model.
    if (!provider) {
      const hint = this.unconfigured.get(name);
      if (hint) throw new FailedPreconditionError(`provider ${name} is not configured on this instance: ${hint}`);
      throw new InvalidArgumentError(
        `provider "${name}" is unknown; available here: ${[...this.providers.keys()].join(", ")}`,
        { errorClass: "INFRASTRUCTURE" },
      );
    }
    if (kind === "image" && !provider.imageSearch)
      throw new FailedPreconditionError(
        `provider ${name} has no reverse image search here; use one of: ${[...this.providers.values()]
          .filter((p) => p.imageSearch)
          .map((p) => p.name)
          .join(", ")}`,
      );
    return provider;
  }

  private async cached(
    providerName: string,
    key: string,
    requestedPolicy: CachePolicyName,
    topK: number,
    started: number,
    ask: () => Promise<ProviderAnswer>,
  ): Promise<SearchOutcome> {
    const policy = requestedPolicy === "default" ? this.settings.defaultCachePolicy : requestedPolicy;
    const finish = (results: ProviderResult[], cacheStatus: CacheStatusName, queueMs: number, executeMs: number) => ({
      results: results.slice(0, topK),
      provider: providerName,
      cacheStatus,
      timing: { queueMs, executeMs, totalMs: performance.now() - started },
    });

    if (policy !== "refresh") {
      const lookupStarted = performance.now();
      const hit = await withStage("cache", { "toolplane.cache.kind": this.cache.kind }, async (span) => {
        const found = await this.lookup(key, policy === "frozen");
        span.setAttribute("toolplane.cache.hit", found !== undefined);
        return found;
      });
      const fresh =
        hit !== undefined && (policy === "frozen" || Date.now() - hit.storedAtMs < this.settings.cacheTtlMs);
      if (hit && fresh) return finish(hit.results, "HIT", 0, performance.now() - lookupStarted);
      if (policy === "frozen")
        throw new FailedPreconditionError(
          `cache miss in FROZEN mode: provider ${providerName} has no stored answer for this query (key ${key.slice(0, 16)}); frozen mode serves only recorded answers`,
        );
    }

    const askStarted = performance.now();
    const answer = await withStage("provider_request", { "toolplane.provider": providerName }, ask);
    const executeMs = performance.now() - askStarted - answer.queueMs;
    try {
      await this.cache.set(key, { results: answer.results, storedAtMs: Date.now() });
    } catch (error) {
      this.logger.warn({ err: error, cache: this.cache.kind }, "storing a search answer failed; answering uncached");
    }
    return finish(answer.results, policy === "refresh" ? "REFRESHED" : "MISS", answer.queueMs, executeMs);
  }

  private async lookup(key: string, required: boolean): Promise<CachedAnswer | undefined> {
    try {
      return await this.cache.get(key);
    } catch (error) {
      // Without the cache a USE call can still ask the provider; a FROZEN call cannot answer at all.
      if (required)
        throw new UnavailableError(`the search cache (${this.cache.kind}) is unreachable: ${errorMessage(error)}`);
      this.logger.warn({ err: error, cache: this.cache.kind }, "search cache lookup failed; asking the provider");
      return undefined;
    }
  }
}

/** Locale hints are short codes ("en", "pt-BR", "us"); they go into cache keys and provider URLs. */
function checkLocale(field: "language" | "region", value: string): void {
  if (value !== "" && !/^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})?$/.test(value))
    throw new InvalidArgumentError(
      `${field} must be a language/region code like "en", "pt-BR" or "us" (2-3 letters, optional subtag); got ${JSON.stringify(value.slice(0, 40))}`,
      // Set from the caller's configuration, not by the model's tool call.
      { errorClass: "INFRASTRUCTURE" },
    );
}
