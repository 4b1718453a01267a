import { type KV, Kvm } from "@nats-io/kv";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { LRUCache } from "lru-cache";
import { type Logger, sha256Hex } from "../../runtime/src/index.js";
import type { ProviderResult } from "./types.js";

/** A provider's answer as stored: the results and when they were fetched. */
export interface CachedAnswer {
  results: ProviderResult[];
  storedAtMs: number;
}

/**
 * Where answers are kept. Freshness (TTL) is judged by the caller from
 * storedAtMs, so a FROZEN replay can still serve an answer older than the TTL
 * as long as the store holds it.
 */
export interface ResultCache {
  readonly kind: string;
  get(key: string): Promise<CachedAnswer | undefined>;
  set(key: string, answer: CachedAnswer): Promise<void>;
  close(): Promise<void>;
}

/** Collapses the spellings of one query: Unicode form, case, and whitespace. */
export function normalizeQuery(query: string): string {
  return query.normalize("NFKC").toLowerCase().replace(/\s+/g, " ").trim();
}

export interface TextKeyParts {
  provider: string;
  query: string;
  language: string;
  region: string;
}

/**
 * Cache keys are sha256 hex of the versioned parts: fixed length, and valid as
 * NATS KV keys whatever the query contains.
 */
export function textCacheKey(parts: TextKeyParts): string {
  const canonical = JSON.stringify([
    "text/v1",
    parts.provider,
    normalizeQuery(parts.query),
    parts.language.toLowerCase(),
    parts.region.toLowerCase(),
  ]);
  return sha256Hex(canonical);
}

export function imageCacheKey(provider: string, imageSha256: string): string {
  return sha256Hex(JSON.stringify(["image/v1", provider, imageSha256]));
}

/** Thumbnails are bytes; JSON carries them as base64. */
interface StoredResult extends Omit<ProviderResult, "thumbnail"> {
  thumbnail?: { data: string; mimeType: string; width: number; height: number };
}

export function encodeAnswer(answer: CachedAnswer): Uint8Array {
  const results: StoredResult[] = answer.results.map(({ thumbnail, ...rest }) =>
    thumbnail ? { ...rest, thumbnail: { ...thumbnail, data: Buffer.from(thumbnail.data).toString("base64") } } : rest,
  );
  return new TextEncoder().encode(JSON.stringify({ results, storedAtMs: answer.storedAtMs }));
}

export function decodeAnswer(bytes: Uint8Array): CachedAnswer {
  const stored = JSON.parse(new TextDecoder().decode(bytes)) as { results: StoredResult[]; storedAtMs: number };
  return {
    storedAtMs: stored.storedAtMs,
    results: stored.results.map(({ thumbnail, ...rest }) =>
      thumbnail
        ? { ...rest, thumbnail: { ...thumbnail, data: new Uint8Array(Buffer.from(thumbnail.data, "base64")) } }
        : rest,
    ),
  };
}

/** In-process LRU: the default, nothing to run. Bounded by entry count. */
export class MemoryCache implements ResultCache {
  readonly kind = "memory";
  private readonly entries: LRUCache<string, CachedAnswer>;

  constructor(maxEntries: number) {
    this.entries = new LRUCache({ max: maxEntries });
  }

  async get(key: string): Promise<CachedAnswer | undefined> {
    return this.entries.get(key);
  }

  async set(key: string, answer: CachedAnswer): Promise<void> {
    this.entries.set(key, answer);
  }

  async close(): Promise<void> {
    this.entries.clear();
  }
}

/**
 * NATS JetStream KV: shared by every replica, survives restarts. The bucket's
 * max age (retention) bounds how long answers are kept at all. No in-process
 * copy in front: a REFRESH on one replica must be seen by all of them.
 */
export class NatsKvCache implements ResultCache {
  readonly kind = "nats-kv";

  private constructor(
    private readonly connection: NatsConnection,
    private readonly bucket: KV,
    private readonly logger: Logger,
  ) {}

  static async open(options: {
    url: string;
    bucket: string;
    retentionMs: number;
    logger: Logger;
  }): Promise<NatsKvCache> {
    const connection = await connect({ servers: options.url, name: "toolplane-search" });
    try {
      const bucket = await new Kvm(connection).create(options.bucket, { ttl: options.retentionMs, history: 1 });
      options.logger.info({ bucket: options.bucket, url: options.url }, "search cache in NATS KV");
      return new NatsKvCache(connection, bucket, options.logger);
    } catch (error) {
      await connection.close();
      throw error;
    }
  }

  async get(key: string): Promise<CachedAnswer | undefined> {
    const entry = await this.bucket.get(key);
    if (entry?.operation !== "PUT" || entry.value.length === 0) return undefined;
    return decodeAnswer(entry.value);
  }

  async set(key: string, answer: CachedAnswer): Promise<void> {
    await this.bucket.put(key, encodeAnswer(answer));
  }

  async close(): Promise<void> {
    try {
      await this.connection.drain();
    } catch (error) {
      this.logger.warn({ err: error }, "closing the NATS connection failed");
    }
  }
}
