import { type KV, Kvm } from "@nats-io/kv";
import { type ObjectStore, Objm } from "@nats-io/obj";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { sha256Hex } from "../../runtime/src/index.js";
import type { CheckpointStore, SessionRecord, StoredCheckpoint } from "./checkpoint-store.js";

const SESSION_ID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** The KV entry of a session: its record and the sha256 of each input image, in binding order. */
interface SessionEntry {
  record: SessionRecord;
  images: string[];
}

/**
 * Checkpoints in NATS JetStream (TOOLPLANE_NATS_URL set), so every replica connected to the same server restores
 * every session: session records in a KV bucket, namespaces and input images in an Object Store bucket whose
 * max_bytes bounds the total. Images are content-addressed (`image.<sha256>`): one copy however many sessions
 * (a rollout's trajectories share their prompt's image) bind it.
 */
export class NatsCheckpointStore implements CheckpointStore {
  /** Sessions whose record this process wrote already (the record and images go with the first checkpoint). */
  private readonly recorded = new Set<string>();

  private constructor(
    private readonly connection: NatsConnection,
    private readonly objects: ObjectStore,
    private readonly sessions: KV,
  ) {}

  static async connect(options: { url: string; bucket: string; maxBytes: number }): Promise<NatsCheckpointStore> {
    const connection = await connect({ servers: options.url, name: "toolplane-code-checkpoints" });
    try {
      const objects = await new Objm(connection).create(options.bucket, { max_bytes: options.maxBytes });
      const sessions = await new Kvm(connection).create(`${options.bucket}_sessions`, { history: 1 });
      return new NatsCheckpointStore(connection, objects, sessions);
    } catch (error) {
      await connection.close();
      throw error;
    }
  }

  async save(
    sessionId: string,
    record: SessionRecord,
    images: StoredCheckpoint["images"],
    checkpoint: Buffer,
  ): Promise<void> {
    if (!SESSION_ID.test(sessionId)) throw new Error(`not a session id: ${JSON.stringify(sessionId)}`);
    if (!this.recorded.has(sessionId)) {
      const digests = await Promise.all(
        images.map(async (image) => {
          const digest = sha256Hex(image.data);
          const name = `image.${digest}`;
          if ((await this.objects.info(name)) === null) await this.objects.putBlob({ name }, image.data);
          return digest;
        }),
      );
      const entry: SessionEntry = { record, images: digests };
      await this.sessions.put(sessionId, JSON.stringify(entry));
      this.recorded.add(sessionId);
    }
    await this.objects.putBlob({ name: `checkpoint.${sessionId}` }, checkpoint);
  }

  async load(sessionId: string): Promise<StoredCheckpoint | undefined> {
    if (!SESSION_ID.test(sessionId)) return undefined;
    const kv = await this.sessions.get(sessionId);
    if (kv?.operation !== "PUT" || kv.value.length === 0) return undefined;
    const entry = JSON.parse(kv.string()) as SessionEntry;
    if (entry.record.version !== 1) return undefined;
    const checkpoint = await this.loadCheckpoint(sessionId);
    if (checkpoint === undefined) return undefined;
    const images = [];
    for (const [index, digest] of entry.images.entries()) {
      const data = await this.objects.getBlob(`image.${digest}`);
      const meta = entry.record.images[index];
      // An image dropped past the bucket's bound: the session cannot be recreated faithfully.
      if (data === null || meta === undefined) return undefined;
      images.push({ ...meta, data: toBuffer(data) });
    }
    return { record: entry.record, images, checkpoint };
  }

  async loadCheckpoint(sessionId: string): Promise<Buffer | undefined> {
    if (!SESSION_ID.test(sessionId)) return undefined;
    const checkpoint = await this.objects.getBlob(`checkpoint.${sessionId}`);
    return checkpoint === null ? undefined : toBuffer(checkpoint);
  }

  async delete(sessionId: string): Promise<void> {
    if (!SESSION_ID.test(sessionId)) return;
    this.recorded.delete(sessionId);
    await this.sessions.delete(sessionId);
    // Images stay: other sessions may bind the same bytes; the bucket's bound ages them out.
    if ((await this.objects.info(`checkpoint.${sessionId}`)) !== null)
      await this.objects.delete(`checkpoint.${sessionId}`);
  }

  async close(): Promise<void> {
    await this.connection.drain();
  }
}

function toBuffer(data: Uint8Array): Buffer {
  return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}
