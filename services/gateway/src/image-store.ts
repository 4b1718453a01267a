import {
  InvalidArgumentError,
  isSha256,
  NotFoundError,
  overLimit,
  probeImage,
  ResourceExhaustedError,
  sha256Hex,
} from "../../runtime/src/index.js";
import type { ImageStore, StoredImage } from "./stores.js";

export type { ImageStore, StoredImage } from "./stores.js";

interface Entry extends StoredImage {
  /** Live sessions holding the image; a held image is never evicted. */
  refs: number;
}

/**
 * Content-addressed image store: every image is kept once under its sha256.
 * Memory is bounded by bytes; images no live session holds are evicted least
 * recently used first, images a session holds are never evicted (the store
 * refuses new images rather than drop them).
 */
export class MemoryImageStore implements ImageStore {
  // Map iteration order is insertion order: re-inserting on use keeps it LRU.
  private readonly entries = new Map<string, Entry>();
  private totalBytes = 0;
  private heldBytes = 0;

  constructor(readonly maxBytes: number) {}

  get size(): { images: number; bytes: number; heldBytes: number } {
    return { images: this.entries.size, bytes: this.totalBytes, heldBytes: this.heldBytes };
  }

  /** Decodes the header, stores the bytes and, when `hold`, takes a reference for a session. */
  async put(data: Buffer, options: { hold?: boolean; field?: string } = {}): Promise<StoredImage> {
    const sha256 = sha256Hex(data);
    const existing = this.lookup(sha256);
    if (existing) {
      if (options.hold) this.retain(sha256);
      return existing;
    }
    const { mimeType, width, height } = await probeImage(data, options.field ?? "image.data");
    return this.insert({ sha256, data, mimeType, width, height }, options.hold ?? false);
  }

  /** Stores an image whose metadata is already known (tool outputs). */
  putProbed(image: Omit<StoredImage, "sha256">, options: { hold?: boolean } = {}): StoredImage {
    const sha256 = sha256Hex(image.data);
    const existing = this.lookup(sha256);
    if (existing) {
      if (options.hold) this.retain(sha256);
      return existing;
    }
    return this.insert({ sha256, ...image }, options.hold ?? false);
  }

  /** The image, marked as recently used; undefined when unknown or evicted. */
  get(sha256: string): StoredImage | undefined {
    return this.lookup(sha256);
  }

  /** Like get, but a miss is NOT_FOUND naming the field. */
  require(sha256: string, field: string): StoredImage {
    if (!isSha256(sha256)) throw new InvalidArgumentError(`${field} must be 64 lowercase hex characters (sha256)`);
    const image = this.lookup(sha256);
    if (!image)
      throw new NotFoundError(`${field}: no image with sha256 ${sha256} in the store (upload it with PutImage)`);
    return image;
  }

  retain(sha256: string): void {
    const entry = this.entries.get(sha256);
    if (!entry) throw new NotFoundError(`no image with sha256 ${sha256} in the store`);
    if (entry.refs === 0) this.heldBytes += entry.data.length;
    entry.refs += 1;
  }

  /** Drops one session reference; the image becomes evictable at zero. */
  release(sha256: string): void {
    const entry = this.entries.get(sha256);
    if (!entry || entry.refs === 0) return;
    entry.refs -= 1;
    if (entry.refs === 0) {
      this.heldBytes -= entry.data.length;
      this.evict();
    }
  }

  private lookup(sha256: string): StoredImage | undefined {
    const entry = this.entries.get(sha256);
    if (!entry) return undefined;
    this.entries.delete(sha256);
    this.entries.set(sha256, entry);
    return entry;
  }

  private insert(image: StoredImage, hold: boolean): StoredImage {
    const bytes = image.data.length;
    if (this.heldBytes + bytes > this.maxBytes) {
      throw new ResourceExhaustedError(
        `image store full: ${overLimit(`${this.heldBytes} bytes held by live sessions and ${bytes} more`, `${this.maxBytes} bytes`, "TOOLPLANE_GATEWAY_IMAGE_STORE_MB")}; close finished sessions`,
        { retryAfterMs: 1000 },
      );
    }
    const entry: Entry = { ...image, refs: hold ? 1 : 0 };
    this.entries.set(image.sha256, entry);
    this.totalBytes += bytes;
    if (hold) this.heldBytes += bytes;
    this.evict(image.sha256);
    return entry;
  }

  /** Drops unheld images, oldest use first, until the store fits (never `keep`, just stored). */
  private evict(keep?: string): void {
    if (this.totalBytes <= this.maxBytes) return;
    for (const [sha256, entry] of this.entries) {
      if (this.totalBytes <= this.maxBytes) break;
      if (entry.refs > 0 || sha256 === keep) continue;
      this.entries.delete(sha256);
      this.totalBytes -= entry.data.length;
    }
  }
}
