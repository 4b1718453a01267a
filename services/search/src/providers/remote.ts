import type { z } from "zod";
import { type CallScope, FailedPreconditionError, stoppedError, UnavailableError } from "../../../runtime/src/index.js";
import { makeThumbnail } from "../local-image-index.js";
import {
  type HttpProviderSettings,
  type JsonAnswer,
  ProviderHttpClient,
  type ProviderRequest,
  readBodyCapped,
} from "../provider-http.js";
import type { ImageQuery, ProviderAnswer, ProviderResult, SearchProvider, TextQuery } from "../types.js";

/**
 * Turns an image into a URL the provider can fetch: Google Lens based APIs take
 * an image URL, not bytes (see image-host.ts).
 */
export interface ImagePublisher {
  publish(query: ImageQuery): string;
}

/** Describes one remote API: how to ask, and how to read its answer. */
export interface RemoteAdapter {
  name: string;
  textRequest(query: TextQuery): ProviderRequest;
  textResults(body: unknown): ProviderResult[];
  imageRequest?(imageUrl: string, query: ImageQuery): ProviderRequest;
  imageResults?(body: unknown): ProviderResult[];
  /** Statuses meaning "plan or usage limit" (not retried). */
  quotaStatuses?: number[];
}

/** Validates a provider body against its documented shape; a mismatch is the provider's failure. */
export function parseShape<T>(provider: string, schema: z.ZodType<T>, body: unknown): T {
  const parsed = schema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  throw new UnavailableError(
    `provider ${provider} answered with an unexpected JSON shape (${issue?.path.join(".") || "body"}: ${issue?.message})`,
  );
}

/** Providers put HTML emphasis in snippets (Brave's <strong>); the model gets plain text. */
export function plainText(value: string | undefined | null): string {
  if (!value) return "";
  return value
    .replace(/<[^>]*>/g, "")
    .replace(/&quot;/g, '"')
    .replace(/&#39;|&#x27;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">")
    .replace(/&amp;/g, "&")
    .replace(/\s+/g, " ")
    .trim();
}

/** How remote thumbnails are inlined (image search); undefined = keep only their URLs. */
export interface ThumbnailFetching {
  timeoutMs: number;
  maxBytes: number;
}

/**
 * Downloads one thumbnail and re-encodes it as a small JPEG. A thumbnail that
 * cannot be fetched or decoded is left out (its URL stays): the search itself
 * succeeded, and the caller can still see where the picture was.
 */
async function inlineThumbnail(
  result: ProviderResult,
  fetching: ThumbnailFetching,
  signal: AbortSignal,
): Promise<ProviderResult> {
  const url = result.thumbnailUrl;
  if (!url || !/^https?:\/\//i.test(url)) return result;
  try {
    const response = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(fetching.timeoutMs)]) });
    if (!response.ok) {
      await response.body?.cancel();
      return result;
    }
    const bytes = await readBodyCapped(response, fetching.maxBytes);
    if (bytes === undefined) return result;
    return { ...result, thumbnail: await makeThumbnail(bytes) };
  } catch {
    return result;
  }
}

export class RemoteProvider implements SearchProvider {
  readonly name: string;
  readonly textSearch = true;
  readonly imageSearch: boolean;
  readonly http: ProviderHttpClient;

  constructor(
    private readonly adapter: RemoteAdapter,
    http: HttpProviderSettings,
    private readonly publisher: ImagePublisher | undefined,
    private readonly thumbnails?: ThumbnailFetching,
  ) {
    this.name = adapter.name;
    this.http = new ProviderHttpClient(http, adapter.quotaStatuses);
    this.imageSearch = adapter.imageRequest !== undefined && publisher !== undefined;
  }

  async search(query: TextQuery, scope: CallScope): Promise<ProviderAnswer> {
    const answer = await this.http.requestJson(this.adapter.textRequest(query), scope);
    return this.read(answer, (body) => this.adapter.textResults(body), query.count);
  }

  async searchImage(query: ImageQuery, scope: CallScope): Promise<ProviderAnswer> {
    const { imageRequest, imageResults } = this.adapter;
    if (!imageRequest || !imageResults || !this.publisher)
      throw new FailedPreconditionError(
        `provider ${this.name} cannot do image search here (needs TOOLPLANE_SEARCH_IMAGE_PUBLIC_URL for Lens-style APIs)`,
      );
    const imageUrl = this.publisher.publish(query);
    const answer = await this.http.requestJson(imageRequest(imageUrl, query), scope);
    const read = this.read(answer, imageResults, query.count);
    const fetching = this.thumbnails;
    if (!fetching) return read;
    // Inlined here, so cached answers (and FROZEN replays) carry the pictures themselves.
    const results = await Promise.all(read.results.map((result) => inlineThumbnail(result, fetching, scope.signal)));
    // Thumbnails cut short by the caller's deadline must not be cached as if they did not exist.
    if (scope.signal.aborted)
      throw stoppedError(scope.signal, `image search on ${this.name} stopped while fetching thumbnails`);
    return { ...read, results };
  }

  private read(answer: JsonAnswer, parse: (body: unknown) => ProviderResult[], count: number): ProviderAnswer {
    try {
      return { results: parse(answer.body).slice(0, count), queueMs: answer.queueMs };
    } catch (error) {
      // A 200 with the wrong shape is as much a provider failure as a 500.
      this.http.breaker.onFailure();
      throw error;
    }
  }
}
