import {
  CachePolicy,
  CacheStatus,
  type SearchResponse,
  type SearchServiceServer,
} from "../../../generated/toolplane/search/v1/search.js";
import { type Logger, unary } from "../../runtime/src/index.js";
import type { CachePolicyName, SearchEngine, SearchOutcome } from "./search-engine.js";

const POLICIES: Record<number, CachePolicyName> = {
  [CachePolicy.CACHE_POLICY_UNSPECIFIED]: "default",
  [CachePolicy.CACHE_POLICY_USE]: "use",
  [CachePolicy.CACHE_POLICY_REFRESH]: "refresh",
  [CachePolicy.CACHE_POLICY_FROZEN]: "frozen",
};

const STATUSES = {
  MISS: CacheStatus.CACHE_STATUS_MISS,
  HIT: CacheStatus.CACHE_STATUS_HIT,
  REFRESHED: CacheStatus.CACHE_STATUS_REFRESHED,
} as const;

// An unknown enum number from a newer client means "the default", like proto3 intends.
const policyOf = (value: CachePolicy): CachePolicyName => POLICIES[value] ?? "default";

function toResponse(outcome: SearchOutcome): SearchResponse {
  return {
    provider: outcome.provider,
    cacheStatus: STATUSES[outcome.cacheStatus],
    timing: outcome.timing,
    results: outcome.results.map((result) => ({
      title: result.title,
      url: result.url,
      snippet: result.snippet,
      date: result.date,
      score: result.score,
      thumbnailUrl: result.thumbnailUrl ?? "",
      thumbnail: result.thumbnail
        ? {
            data: Buffer.from(result.thumbnail.data),
            sha256: undefined,
            mimeType: result.thumbnail.mimeType,
            width: result.thumbnail.width,
            height: result.thumbnail.height,
          }
        : undefined,
    })),
  };
}

export function createSearchServiceImplementation(engine: SearchEngine, logger: Logger): SearchServiceServer {
  return {
    search: unary("Search", logger, async (request, call) =>
      toResponse(
        await engine.search(
          {
            query: request.query,
            topK: request.topK,
            provider: request.provider,
            cachePolicy: policyOf(request.cachePolicy),
            language: request.language,
            region: request.region,
          },
          call.scope,
        ),
      ),
    ),
    imageSearch: unary("ImageSearch", logger, async (request, call) =>
      toResponse(
        await engine.searchImage(
          {
            data: request.image?.data,
            sha256Reference: request.image?.sha256,
            topK: request.topK,
            provider: request.provider,
            cachePolicy: policyOf(request.cachePolicy),
          },
          call.scope,
        ),
      ),
    ),
    listProviders: unary("ListProviders", logger, async () => ({ providers: engine.listProviders() })),
  };
}
