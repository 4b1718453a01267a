import { LRUCache } from "lru-cache";
import {
  CancelledError,
  DeadlineExceededError,
  sha256Hex,
  stoppedError,
  type ToolplaneError,
} from "../../runtime/src/index.js";
import type { InputInfo } from "./input.js";
import type { Raster } from "./raster.js";

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
  /** Calls that read their bytes without the cache because their image had not been seen often enough yet. */
  bypasses: number;
}

/** Keys of images seen but not (yet) held that the cache remembers, for admitOnSighting. */
const SIGHTINGS_REMEMBERED = 4096;

/**
 * Cache key of an encoded input: the lowercase hex sha256 of its bytes (equal bytes and nothing else share
 * pixels), the name the gateway's image store gives the same image, so a caller may send that instead.
 */
export function decodedCacheKey(data: Buffer): string {
  return sha256Hex(data);
}

function cancelledWhileWaiting(signal: AbortSignal): ToolplaneError {
  return stoppedError(signal, "stopped while another call decoded the same image");
}

/** `pending`, or a rejection as soon as `signal` aborts: a caller that has gone stops waiting for someone else's work. */
function untilAborted<T>(pending: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(cancelledWhileWaiting(signal));
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(cancelledWhileWaiting(signal));
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
  /** How often each recent key not yet held was offered (keys only: a few dozen bytes each). */
  private readonly sightings = new LRUCache<string, number>({ max: SIGHTINGS_REMEMBERED });
  private hits = 0;
  private misses = 0;
  private bypasses = 0;

  /**
   * @param admitOnSighting an image is decoded for the cache the n-th time its bytes arrive. Decoding the
   *   whole image for the cache costs more than the call itself would (a crop decodes only down to its last
   *   row), so with 2 an image seen once is never charged for it, and one seen twice is likely seen again.
   */
  constructor(
    readonly maxBytes: number,
    readonly admitOnSighting = 1,
  ) {
    this.held = new LRUCache({
      maxSize: maxBytes,
      sizeCalculation: (image) => Math.max(1, image.raster.data.length),
    });
  }

  /**
   * Whether this call should go through the cache: the image is held or being decoded, or this is its
   * admitOnSighting-th arrival. Otherwise the sighting is counted and the call reads its bytes as without a cache.
   */
  admits(key: string): boolean {
    if (this.held.has(key) || this.decoding.has(key)) return true;
    const seen = (this.sightings.get(key) ?? 0) + 1;
    if (seen >= this.admitOnSighting) {
      this.sightings.delete(key);
      return true;
    }
    this.sightings.set(key, seen);
    this.bypasses += 1;
    return false;
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
        // The decoding call stopped (its own deadline or caller): this one, still wanted, decodes itself.
        const ownerStopped = error instanceof DeadlineExceededError || error instanceof CancelledError;
        if (!ownerStopped || signal.aborted) throw error;
      }
    }
  }

  stats(): DecodedCacheStats {
    return {
      hits: this.hits,
      misses: this.misses,
      bytes: this.held.calculatedSize,
      entries: this.held.size,
      bypasses: this.bypasses,
    };
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
