import { mkdir, readdir, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { join } from "node:path";
import type { InputImage, ResolvedLimits } from "./backend.js";

/**
 * What recreating a session anywhere needs besides its namespace: the caller's choices at CreateSession and
 * the input images' metadata (their bytes are stored beside the record, once per session).
 */
export interface SessionRecord {
  /** Format of this record; a store refuses records of another version instead of misreading them. */
  version: 1;
  language: "python";
  limits: ResolvedLimits;
  seed?: number;
  idleTtlMs: number;
  label: string;
  images: Array<Omit<InputImage, "data">>;
}

export interface StoredCheckpoint {
  record: SessionRecord;
  images: InputImage[];
  /** The kernel's pickle of the namespace: opaque bytes to the host, only ever unpickled inside a sandbox. */
  checkpoint: Buffer;
}

/**
 * Where session checkpoints live (docs/code-python.md, Checkpoints). Keys are session ids, which are random
 * UUIDs: replicas sharing one store never collide, and any of them can continue any session.
 */
export interface CheckpointStore {
  /** Replaces the session's checkpoint; the record and images are written with the first one. */
  save(sessionId: string, record: SessionRecord, images: InputImage[], checkpoint: Buffer): Promise<void>;
  /**
   * All a replica needs to recreate the session (record, images, checkpoint), or undefined when the store has
   * none of it (never checkpointed, closed, or evicted).
   */
  load(sessionId: string): Promise<StoredCheckpoint | undefined>;
  /** Only the last checkpoint's bytes: what a restore of a session this replica holds (images bound) reads. */
  loadCheckpoint(sessionId: string): Promise<Buffer | undefined>;
  delete(sessionId: string): Promise<void>;
}

const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/**
 * Checkpoints as files: `<dir>/<session id>/{record.json, checkpoint.bin, image-<n>}`, each written to a
 * temporary name and renamed, so a reader (another replica on the same volume) never sees half a file.
 * The total this process wrote is bounded: past `maxBytes` the checkpoints of the least recently saved
 * sessions are dropped (those sessions then start fresh if their interpreter is lost, with the usual note).
 */
export class DiskCheckpointStore implements CheckpointStore {
  /** Bytes written per session by this process, in least-recently-saved order (a Map keeps insertion order). */
  private readonly sizes = new Map<string, number>();
  private total = 0;

  constructor(
    private readonly dir: string,
    private readonly maxBytes: number,
  ) {}

  async save(sessionId: string, record: SessionRecord, images: InputImage[], checkpoint: Buffer): Promise<void> {
    const sessionDir = this.sessionDir(sessionId);
    let size = checkpoint.length;
    if (!this.sizes.has(sessionId)) {
      await mkdir(sessionDir, { recursive: true, mode: 0o700 });
      await Promise.all(images.map((image, index) => atomicWrite(join(sessionDir, `image-${index}`), image.data)));
      await atomicWrite(join(sessionDir, "record.json"), Buffer.from(JSON.stringify(record)));
    }
    size += images.reduce((sum, image) => sum + image.data.length, 0);
    await atomicWrite(join(sessionDir, "checkpoint.bin"), checkpoint);
    this.account(sessionId, size);
    await this.evict(sessionId);
  }

  async load(sessionId: string): Promise<StoredCheckpoint | undefined> {
    if (!SESSION_ID.test(sessionId)) return undefined;
    const sessionDir = this.sessionDir(sessionId);
    const recordBytes = await readIfExists(join(sessionDir, "record.json"));
    const checkpoint = await this.loadCheckpoint(sessionId);
    if (recordBytes === undefined || checkpoint === undefined) return undefined;
    const record = JSON.parse(recordBytes.toString("utf8")) as SessionRecord;
    if (record.version !== 1) return undefined;
    const images = await Promise.all(
      record.images.map(async (image, index) => ({
        ...image,
        data: await readFile(join(sessionDir, `image-${index}`)),
      })),
    );
    return { record, images, checkpoint };
  }

  async loadCheckpoint(sessionId: string): Promise<Buffer | undefined> {
    if (!SESSION_ID.test(sessionId)) return undefined;
    return readIfExists(join(this.sessionDir(sessionId), "checkpoint.bin"));
  }

  async delete(sessionId: string): Promise<void> {
    if (!SESSION_ID.test(sessionId)) return;
    this.account(sessionId, 0);
    this.sizes.delete(sessionId);
    await rm(this.sessionDir(sessionId), { recursive: true, force: true });
  }

  /** Sessions in the store (for tests and diagnostics). */
  async sessionIds(): Promise<string[]> {
    try {
      return (await readdir(this.dir)).filter((name) => SESSION_ID.test(name));
    } catch {
      return [];
    }
  }

  /** Bytes a session's files take on disk (for tests and benchmarks). */
  async bytesOf(sessionId: string): Promise<number> {
    const file = await stat(join(this.sessionDir(sessionId), "checkpoint.bin")).catch(() => undefined);
    return file?.size ?? 0;
  }

  private sessionDir(sessionId: string): string {
    if (!SESSION_ID.test(sessionId)) throw new Error(`not a session id: ${JSON.stringify(sessionId)}`);
    return join(this.dir, sessionId);
  }

  private account(sessionId: string, size: number): void {
    this.total -= this.sizes.get(sessionId) ?? 0;
    this.sizes.delete(sessionId);
    if (size > 0) {
      this.sizes.set(sessionId, size);
      this.total += size;
    }
  }

  private async evict(keep: string): Promise<void> {
    for (const [sessionId] of this.sizes) {
      if (this.total <= this.maxBytes) return;
      if (sessionId === keep) continue;
      await this.delete(sessionId);
    }
  }
}

/** The file's bytes, or undefined when it does not exist (a session never checkpointed, or deleted). */
async function readIfExists(path: string): Promise<Buffer | undefined> {
  try {
    return await readFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw error;
  }
}

async function atomicWrite(path: string, data: Buffer): Promise<void> {
  const temporary = `${path}.${process.pid}.tmp`;
  await writeFile(temporary, data, { mode: 0o600 });
  await rename(temporary, path);
}
