import type { CallScope } from "../../runtime/src/index.js";

/** One search hit as every provider reports it, before it becomes a proto message. */
export interface ProviderResult {
  title: string;
  url: string;
  snippet: string;
  /**
   * The whole passage, when the provider has it (local indexes, retrieval servers): the retrieval
   * endpoint returns it as Search-R1's `contents`. Absent for web providers, whose snippet is all there is.
   */
  text?: string;
  /** Publication date as the provider gives it (free text), empty when unknown. */
  date: string;
  /** Remote thumbnail, when the provider gives one. */
  thumbnailUrl?: string;
  /** Inline thumbnail (local image index). */
  thumbnail?: Thumbnail;
  /** Relevance or similarity, higher is better; 0 when the provider gives none. */
  score: number;
}

export interface Thumbnail {
  data: Uint8Array;
  mimeType: string;
  width: number;
  height: number;
}

export interface TextQuery {
  query: string;
  /** How many results to ask the provider for. */
  count: number;
  language: string;
  region: string;
}

export interface ImageQuery {
  data: Uint8Array;
  /** Lowercase hex sha256 of data. */
  sha256: string;
  mimeType: string;
  count: number;
}

export interface ProviderAnswer {
  results: ProviderResult[];
  /** Time spent waiting for the provider's rate limiter. */
  queueMs: number;
}

export interface SearchProvider {
  readonly name: string;
  readonly textSearch: boolean;
  readonly imageSearch: boolean;
  search(query: TextQuery, scope: CallScope): Promise<ProviderAnswer>;
  searchImage(query: ImageQuery, scope: CallScope): Promise<ProviderAnswer>;
}

/** A local full-text index: in memory (minisearch) or on disk (SQLite FTS5). */
export interface TextIndex {
  readonly size: number;
  search(query: string, count: number): ProviderResult[] | Promise<ProviderResult[]>;
  close?(): Promise<void>;
}
