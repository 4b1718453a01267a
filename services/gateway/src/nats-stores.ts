import { type KV, Kvm } from "@nats-io/kv";
import { type ObjectStore, Objm } from "@nats-io/obj";
import { connect, type NatsConnection, nanos } from "@nats-io/transport-node";
import type { Limits } from "../../../generated/toolplane/code/v1/code.js";
import {
  InvalidArgumentError,
  isSha256,
  NotFoundError,
  probeImage,
  sha256Hex,
  UnavailableError,
} from "../../runtime/src/index.js";
import { MemoryImageStore } from "./image-store.js";
import type { CodeLanguage, CodeSessionHandle, NewSession, TrajectorySession } from "./sessions.js";
import type { ImageStore, SessionStore, StoredImage } from "./stores.js";

/**
 * The gateway's stores in NATS JetStream, so that any gateway replica serves any call of any session: session
 * records (with the code replica each code session lives on) in a KV bucket, images in an Object Store under
 * their sha256. Consistency: a call reads the record when it starts and writes it back when it ends
 * (touch), with compare-and-set on the KV revision; when another gateway wrote the record in between (two calls
 * of one trajectory at once on two gateways), the write re-reads and merges: sets and maps are unioned, cell
 * histories keep the longer, counters the larger. Calls of one trajectory are sequential in every agent loop,
 * so the merge only matters for a caller that overlaps them; two overlapping first code calls of one language on
 * two gateways may each create a kernel, and the merge keeps one of them.
 */

/** How often a gateway scans the shared records for expired sessions (a TTL is enforced within this). */
const SWEEP_SCAN_MS = 5000;

/** The serialisable form of a TrajectorySession (its live maps and promises resolved). */
interface SessionRecord {
  id: string;
  rolloutId: string;
  inputImages: string[];
  heldImages: string[];
  codeSessions: Partial<Record<CodeLanguage, { id: string; limits?: Limits; replica?: string }>>;
  codeHistory: Partial<Record<CodeLanguage, string[]>>;
  imagesShown: number;
  idleTtlMs: number;
  /** Absent = fresh entropy per code session (JSON has no undefined). */
  seed?: number;
  lastUsedMs: number;
}

/** KV keys allow [-/_=.a-zA-Z0-9]: caller ids go base64url-encoded. */
const keyOf = (id: string) => `s.${Buffer.from(id).toString("base64url") || "_"}`;
const rolloutKeyOf = (rolloutId: string, id: string) =>
  `r.${Buffer.from(rolloutId).toString("base64url") || "_"}.${Buffer.from(id).toString("base64url") || "_"}`;

const encode = (record: SessionRecord) => new TextEncoder().encode(JSON.stringify(record));
const decode = (bytes: Uint8Array) => JSON.parse(new TextDecoder().decode(bytes)) as SessionRecord;

async function toRecord(session: TrajectorySession): Promise<SessionRecord> {
  const codeSessions: SessionRecord["codeSessions"] = {};
  for (const [language, pending] of session.codeSessions) {
    const settled = await Promise.allSettled([pending]);
    const first = settled[0];
    if (first?.status === "fulfilled") codeSessions[language] = first.value;
  }
  return {
    id: session.id,
    rolloutId: session.rolloutId,
    inputImages: [...session.inputImages],
    heldImages: [...session.heldImages],
    codeSessions,
    codeHistory: Object.fromEntries(session.codeHistory),
    imagesShown: session.imagesShown,
    idleTtlMs: session.idleTtlMs,
    ...(session.seed === undefined ? {} : { seed: session.seed }),
    lastUsedMs: session.lastUsedMs,
  };
}

function fromRecord(record: SessionRecord): TrajectorySession {
  return {
    id: record.id,
    rolloutId: record.rolloutId,
    inputImages: record.inputImages,
    heldImages: new Set(record.heldImages),
    codeSessions: new Map(
      Object.entries(record.codeSessions).map(([language, handle]) => [
        language as CodeLanguage,
        Promise.resolve(handle as CodeSessionHandle),
      ]),
    ),
    codeHistory: new Map(Object.entries(record.codeHistory) as Array<[CodeLanguage, string[]]>),
    imagesShown: record.imagesShown,
    idleTtlMs: record.idleTtlMs,
    seed: record.seed,
    lastUsedMs: record.lastUsedMs,
    activeCalls: 0,
    closed: false,
  };
}

/** Two writers' records of one session, combined (see the consistency note above). */
function merge(mine: SessionRecord, theirs: SessionRecord): SessionRecord {
  const codeHistory = { ...theirs.codeHistory };
  for (const [language, history] of Object.entries(mine.codeHistory) as Array<[CodeLanguage, string[]]>) {
    if (history.length >= (codeHistory[language]?.length ?? 0)) codeHistory[language] = history;
  }
  return {
    ...mine,
    heldImages: [...new Set([...theirs.heldImages, ...mine.heldImages])],
    codeSessions: { ...mine.codeSessions, ...theirs.codeSessions },
    codeHistory,
    imagesShown: Math.max(mine.imagesShown, theirs.imagesShown),
    lastUsedMs: Math.max(mine.lastUsedMs, theirs.lastUsedMs),
  };
}

export class NatsSessionStore implements SessionStore {
  /** KV revision each session object was read at, for compare-and-set on write-back. */
  private readonly revisions = new WeakMap<TrajectorySession, number>();
  private lastScanMs = Number.NEGATIVE_INFINITY;

  constructor(
    private readonly kv: KV,
    private readonly now: () => number = Date.now,
  ) {}

  async create(request: NewSession): Promise<TrajectorySession> {
    const id = request.trajectoryId || crypto.randomUUID();
    const session = fromRecord({
      id,
      rolloutId: request.rolloutId,
      inputImages: [...request.inputImages],
      heldImages: [...new Set(request.inputImages)],
      codeSessions: {},
      codeHistory: {},
      imagesShown: 0,
      idleTtlMs: request.idleTtlMs,
      ...(request.seed === undefined ? {} : { seed: request.seed }),
      lastUsedMs: this.now(),
    });
    let revision: number;
    try {
      revision = await this.kv.create(keyOf(id), encode(await toRecord(session)));
    } catch (error) {
      if (/wrong last sequence|key exists/i.test(String(error))) {
        throw new InvalidArgumentError(`trajectory_id "${id}" is already open; close it first or use another id`);
      }
      throw new UnavailableError(`session store (NATS KV) refused the session: ${String(error)}`, { cause: error });
    }
    if (request.rolloutId) await this.kv.put(rolloutKeyOf(request.rolloutId, id), new Uint8Array());
    this.revisions.set(session, revision);
    return session;
  }

  async get(id: string, field = "session_id"): Promise<TrajectorySession> {
    if (!id) throw new InvalidArgumentError(`${field} is required`, { errorClass: "INFRASTRUCTURE" });
    const entry = await this.kv.get(keyOf(id));
    if (entry?.operation !== "PUT") {
      throw new NotFoundError(`${field}: no open session "${id}" (closed, expired or never created)`, {
        errorClass: "INFRASTRUCTURE",
      });
    }
    const session = fromRecord(decode(entry.value));
    session.lastUsedMs = this.now();
    this.revisions.set(session, entry.revision);
    return session;
  }

  /** Writes the session back (the end of every call), merging with a concurrent writer's record. */
  async touch(session: TrajectorySession): Promise<void> {
    session.lastUsedMs = this.now();
    if (session.closed) return;
    let record = await toRecord(session);
    let revision = this.revisions.get(session);
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const written =
          revision === undefined
            ? await this.kv.put(keyOf(session.id), encode(record))
            : await this.kv.update(keyOf(session.id), encode(record), revision);
        this.revisions.set(session, written);
        return;
      } catch {
        const current = await this.kv.get(keyOf(session.id));
        // Closed by another gateway meanwhile: nothing to write back.
        if (current?.operation !== "PUT") return;
        record = merge(record, decode(current.value));
        revision = current.revision;
      }
    }
    throw new UnavailableError(`session "${session.id}": the session store kept changing under the write-back`);
  }

  /** Removes the session; only the gateway whose delete wins gets it back for cleanup. */
  async remove(id: string, attempts = 5): Promise<TrajectorySession | undefined> {
    const entry = await this.kv.get(keyOf(id));
    if (entry?.operation !== "PUT") return undefined;
    try {
      await this.kv.delete(keyOf(id), { previousSeq: entry.revision });
    } catch (error) {
      // Written meanwhile: read again (a call finished) or gone (another gateway removed it).
      if (attempts <= 1) throw new UnavailableError(`session "${id}" could not be removed: ${String(error)}`);
      return this.remove(id, attempts - 1);
    }
    const session = fromRecord(decode(entry.value));
    session.closed = true;
    if (session.rolloutId) await this.kv.delete(rolloutKeyOf(session.rolloutId, id)).catch(() => undefined);
    return session;
  }

  async removeRollout(rolloutId: string): Promise<TrajectorySession[]> {
    const prefix = `r.${Buffer.from(rolloutId).toString("base64url") || "_"}.`;
    const ids: string[] = [];
    for await (const key of await this.kv.keys(`${prefix}*`)) {
      ids.push(Buffer.from(key.slice(prefix.length), "base64url").toString());
    }
    const removed = await Promise.all(ids.map((id) => this.remove(id)));
    return removed.filter((session) => session !== undefined);
  }

  /**
   * Sessions idle past their TTL, by the last write-back of any gateway. A call still running on some gateway
   * is not visible here: the TTL (900 s by default) must exceed the longest call (330 s for a code cell).
   */
  async removeExpired(): Promise<TrajectorySession[]> {
    const now = this.now();
    // Every gateway sweeps and a sweep reads every record: at most one scan per SWEEP_SCAN_MS per gateway.
    if (now - this.lastScanMs < SWEEP_SCAN_MS) return [];
    this.lastScanMs = now;
    const expired: TrajectorySession[] = [];
    for (const id of await this.ids()) {
      const entry = await this.kv.get(keyOf(id));
      if (entry?.operation !== "PUT") continue;
      const record = decode(entry.value);
      if (now - record.lastUsedMs < record.idleTtlMs) continue;
      const session = await this.remove(id);
      if (session && now - session.lastUsedMs >= session.idleTtlMs) expired.push(session);
    }
    return expired;
  }

  /** A gateway stopping leaves the shared sessions to the others. */
  async removeAll(): Promise<TrajectorySession[]> {
    return [];
  }

  private async ids(): Promise<string[]> {
    const ids: string[] = [];
    for await (const key of await this.kv.keys("s.*")) ids.push(Buffer.from(key.slice(2), "base64url").toString());
    return ids;
  }
}

/**
 * Images in a JetStream Object Store under their sha256 (content-addressed, so immutable), with this process's
 * MemoryImageStore as a cache in front. Every gateway reads every session's images from the bucket; references
 * (retain/release) are not counted across gateways: the bucket's max age bounds what it keeps, and it must exceed
 * the longest session TTL.
 */
export class NatsImageStore implements ImageStore {
  constructor(
    private readonly bucket: ObjectStore,
    private readonly cache: MemoryImageStore,
  ) {}

  async put(data: Buffer, options: { hold?: boolean; field?: string } = {}): Promise<StoredImage> {
    const sha256 = sha256Hex(data);
    const known = await this.get(sha256);
    if (known) return known;
    const { mimeType, width, height } = await probeImage(data, options.field ?? "image.data");
    return this.store({ sha256, data, mimeType, width, height });
  }

  async putProbed(image: Omit<StoredImage, "sha256">): Promise<StoredImage> {
    const sha256 = sha256Hex(image.data);
    return (await this.get(sha256)) ?? this.store({ sha256, ...image });
  }

  async get(sha256: string): Promise<StoredImage | undefined> {
    const cached = this.cache.get(sha256);
    if (cached) return cached;
    const info = await this.bucket.info(sha256);
    if (!info || info.deleted) return undefined;
    const data = await this.bucket.getBlob(sha256);
    if (!data) return undefined;
    const meta = JSON.parse(info.description ?? "{}") as { mimeType?: string; width?: number; height?: number };
    return this.cache.putProbed({
      data: Buffer.from(data),
      mimeType: meta.mimeType ?? "application/octet-stream",
      width: meta.width ?? 0,
      height: meta.height ?? 0,
    });
  }

  async require(sha256: string, field: string): Promise<StoredImage> {
    if (!isSha256(sha256)) throw new InvalidArgumentError(`${field} must be 64 lowercase hex characters (sha256)`);
    const image = await this.get(sha256);
    if (!image) {
      throw new NotFoundError(`${field}: no image with sha256 ${sha256} in the store (upload it with PutImage)`);
    }
    return image;
  }

  retain(): void {}

  release(): void {}

  private async store(image: StoredImage): Promise<StoredImage> {
    const { mimeType, width, height } = image;
    await this.bucket.putBlob(
      { name: image.sha256, description: JSON.stringify({ mimeType, width, height }) },
      new Uint8Array(image.data),
    );
    return this.cache.putProbed(image);
  }
}

export interface NatsStores {
  sessions: NatsSessionStore;
  images: NatsImageStore;
  close(): Promise<void>;
}

/** Connects and opens (creating when missing) the session bucket and the image object store. */
export async function openNatsStores(options: {
  url: string;
  /** Bucket names; one pair per deployment. */
  sessionBucket: string;
  imageBucket: string;
  /** How long the image bucket keeps an image: longer than any session lives. */
  imageMaxAgeMs: number;
  cacheBytes: number;
}): Promise<NatsStores> {
  const connection: NatsConnection = await connect({ servers: options.url, maxReconnectAttempts: -1 });
  const kv = await new Kvm(connection).create(options.sessionBucket, { history: 1 });
  const bucket = await new Objm(connection).create(options.imageBucket, { ttl: nanos(options.imageMaxAgeMs) });
  return {
    sessions: new NatsSessionStore(kv),
    images: new NatsImageStore(bucket, new MemoryImageStore(options.cacheBytes)),
    close: () => connection.drain(),
  };
}
