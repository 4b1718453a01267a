import { createHash } from "node:crypto";
import { LRUCache } from "lru-cache";
import { DeadlineExceededError } from "../../runtime/src/index.js";
import type { InputInfo, Raster } from "./raster.js";

/** One input as the first step of a pipeline sees it once decoded, with what its header said. */
export interface DecodedImage {
  raster: Raster;
  input: InputInfo;
}

export interface DecodedCacheStats {
  /** Calls that got the pixels without decoding: held, or decoded by a concurrent call on the same bytes. */
  hits: number;
  /** Calls that decoded the image themselves. */
  misses: number;
  /** Pixel bytes held. */
  bytes: number;
  /** Images held. */
  entries: number;
}

/** Cache key of an encoded input: the sha256 of its bytes, so equal bytes and nothing else share pixels. */
export function decodedCacheKey(data: Buffer): string {
  return createHash("sha256").update(data).digest("base64");
}

function cancelledWhileWaiting(): DeadlineExceededError {
  return new DeadlineExceededError("deadline passed or call cancelled while another call decoded the same image");
}

/** `pending`, or a rejection as soon as `signal` aborts: a caller that has gone stops waiting for someone else's work. */
function untilAborted<T>(pending: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(cancelledWhileWaiting());
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(cancelledWhileWaiting());
    signal.addEventListener("abort", onAbort, { once: true });
    pending.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Decoded input images, keyed by the sha256 of their bytes: rollouts and multi-step trajectories send the same
 * image again and again, and decoding it is most of the cost of a crop or zoom. Bounded by pixel bytes with LRU
 * eviction; an image larger than the whole budget is never held. Concurrent calls on bytes being decoded wait
 * for that decode instead of running their own. Only successful decodes are held: a failure reaches the callers
 * waiting for it and is forgotten.
 */
export class DecodedCache {
  private readonly held: LRUCache<string, DecodedImage>;
  private readonly decoding = new Map<string, Promise<DecodedImage>>();
  private hits = 0;
  private misses = 0;

  constructor(readonly maxBytes: number) {
    this.held = new LRUCache({
      maxSize: maxBytes,
      sizeCalculation: (image) => Math.max(1, image.raster.data.length),
    });
  }

  /** Whether an image of this many decoded bytes would be held at all (a larger one is not worth decoding for it). */
  fits(bytes: number): boolean {
    return bytes <= this.maxBytes;
  }

  /** The held image, if any, without counting a hit or refreshing its recency (the caller may not need the pixels). */
  peek(key: string): DecodedImage | undefined {
    return this.held.peek(key);
  }

  /**
   * The decoded image for `key`: held, being decoded by another call (waited for until `signal` aborts), or
   * decoded now with `decode`. When another call's decode ends with that call's own deadline or cancellation,
   * this call decodes under its own instead of failing with it.
   */
  async get(key: string, decode: () => Promise<DecodedImage>, signal: AbortSignal): Promise<DecodedImage> {
    for (;;) {
      const held = this.held.get(key);
      if (held !== undefined) {
        this.hits += 1;
        return held;
      }
      const pending = this.decoding.get(key);
      if (pending === undefined) {
        this.misses += 1;
        return this.start(key, decode);
      }
      try {
        const image = await untilAborted(pending, signal);
        this.hits += 1;
        return image;
      } catch (error) {
        if (!(error instanceof DeadlineExceededError) || signal.aborted) throw error;
      }
    }
  }

  stats(): DecodedCacheStats {
    return { hits: this.hits, misses: this.misses, bytes: this.held.calculatedSize, entries: this.held.size };
  }

  private start(key: string, decode: () => Promise<DecodedImage>): Promise<DecodedImage> {
    const decoded = Promise.resolve()
      .then(decode)
      .then((image) => {
        this.held.set(key, image);
        return image;
      })
      // Runs before any waiter resumes, so one retrying after a failure starts a fresh decode.
      .finally(() => this.decoding.delete(key));
    this.decoding.set(key, decoded);
    return decoded;
  }
}
