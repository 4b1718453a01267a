import type { z } from "zod";
import { FailedPreconditionError, UnavailableError } from "../../../runtime/src/index.js";
import { type JsonAnswer, ProviderHttpClient, type ProviderRequest } from "../provider-http.js";
import type { CallBudget, ImageQuery, ProviderAnswer, ProviderResult, SearchProvider, TextQuery } from "../types.js";

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

export class RemoteProvider implements SearchProvider {
  readonly name: string;
  readonly textSearch = true;
  readonly imageSearch: boolean;
  readonly http: ProviderHttpClient;

  constructor(
    private readonly adapter: RemoteAdapter,
    http: ConstructorParameters<typeof ProviderHttpClient>[0],
    private readonly publisher: ImagePublisher | undefined,
  ) {
    this.name = adapter.name;
    this.http = new ProviderHttpClient(http, adapter.quotaStatuses);
    this.imageSearch = adapter.imageRequest !== undefined && publisher !== undefined;
  }

  async search(query: TextQuery, budget: CallBudget): Promise<ProviderAnswer> {
    const answer = await this.http.requestJson(this.adapter.textRequest(query), budget);
    return this.read(answer, (body) => this.adapter.textResults(body), query.count);
  }

  async searchImage(query: ImageQuery, budget: CallBudget): Promise<ProviderAnswer> {
    const { imageRequest, imageResults } = this.adapter;
    if (!imageRequest || !imageResults || !this.publisher)
      throw new FailedPreconditionError(
        `provider ${this.name} cannot do image search here (needs TOOLPLANE_SEARCH_IMAGE_PUBLIC_URL for Lens-style APIs)`,
      );
    const imageUrl = this.publisher.publish(query);
    const answer = await this.http.requestJson(imageRequest(imageUrl, query), budget);
    return this.read(answer, imageResults, query.count);
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
