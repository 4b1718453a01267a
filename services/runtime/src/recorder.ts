import { appendFile, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { jetstream } from "@nats-io/jetstream";
import { type ObjectStore, Objm } from "@nats-io/obj";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { z } from "zod";
import type { RecorderMode, RecordKey, ResultRecorder, ToolCallEvent } from "./call-events.js";
import { ConfigError, positiveInt } from "./config.js";
import { errorMessage, UnavailableError } from "./errors.js";
import type { StoppableObserver } from "./events.js";
import { sha256Hex } from "./image.js";
import type { Logger } from "./logger.js";

export const RESULTS_BUCKET = "toolplane_results";

/**
 * Record/replay settings. TOOLPLANE_RECORD_BACKEND=auto uses the JetStream
 * object store when TOOLPLANE_NATS_URL is set, otherwise the directory.
 */
export const recorderConfigShape = {
  TOOLPLANE_RECORD_MODE: z.enum(["off", "record", "replay"]).default("off"),
  TOOLPLANE_RECORD_BACKEND: z.enum(["auto", "directory", "nats"]).default("auto"),
  TOOLPLANE_RECORD_DIR: z.string().min(1).default(join(tmpdir(), "toolplane-recordings")),
  TOOLPLANE_RECORD_TIMEOUT_MS: positiveInt(5_000),
};

export type RecorderConfig = z.infer<z.ZodObject<typeof recorderConfigShape>> & { TOOLPLANE_NATS_URL?: string };

/**
 * JSON with object keys sorted at every level and undefined members left out:
 * equal values always give the same bytes (and so the same digest).
 */
export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, item]) => item !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([key, item]) => `${JSON.stringify(key)}:${canonicalJson(item)}`).join(",")}}`;
  }
  return JSON.stringify(value) ?? "null";
}

/** The storage key of a result: sha256 of the canonical JSON of the whole RecordKey. */
export function recordKeyDigest(key: RecordKey): string {
  return sha256Hex(
    canonicalJson({
      tool: key.tool,
      canonicalArguments: key.canonicalArguments,
      inputImages: key.inputImages,
      toolVersion: key.toolVersion,
    }),
  );
}

/** Where results live; both backends return exactly the bytes they were given. */
export interface ResultStore {
  get(digest: string): Promise<Uint8Array | undefined>;
  put(digest: string, key: RecordKey, result: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

/** `<dir>/results/<2 hex>/<digest>.bin`, with the key beside it as `<digest>.key.json` for audits. */
export class DirectoryResultStore implements ResultStore {
  constructor(readonly dir: string) {}

  private path(digest: string): string {
    return join(this.dir, "results", digest.slice(0, 2), digest);
  }

  async get(digest: string): Promise<Uint8Array | undefined> {
    try {
      return new Uint8Array(await readFile(`${this.path(digest)}.bin`));
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw error;
    }
  }

  async put(digest: string, key: RecordKey, result: Uint8Array): Promise<void> {
    const path = this.path(digest);
    await mkdir(join(path, ".."), { recursive: true });
    // Write then rename: a concurrent replay never reads half a result.
    const temporary = `${path}.${process.pid}.${Date.now()}.tmp`;
    await writeFile(temporary, result);
    await rename(temporary, `${path}.bin`);
    await writeFile(`${path}.key.json`, `${canonicalJson(key)}\n`);
  }

  async close(): Promise<void> {}
}

/**
 * Results as objects (chunked, so image-heavy results fit) in the JetStream
 * object store bucket toolplane_results. The connection is opened on first use
 * and reopened on the next use after a failure, so a NATS that was down when
 * the gateway started is picked up once it is back.
 */
export class ObjectStoreResultStore implements ResultStore {
  private bucket: Promise<{ connection: NatsConnection; store: ObjectStore }> | undefined;
  private closed = false;

  constructor(
    private readonly url: string,
    private readonly timeoutMs: number,
  ) {}

  private open(): Promise<{ connection: NatsConnection; store: ObjectStore }> {
    this.bucket ??= (async () => {
      const connection = await connect({ servers: this.url, name: "toolplane-recorder", maxReconnectAttempts: -1 });
      try {
        const store = await new Objm(jetstream(connection, { timeout: this.timeoutMs })).create(RESULTS_BUCKET);
        return { connection, store };
      } catch (error) {
        await connection.close();
        throw error;
      }
    })();
    const opening = this.bucket;
    opening.catch(() => {
      if (this.bucket === opening) this.bucket = undefined;
    });
    return opening;
  }

  private async store(): Promise<ObjectStore> {
    if (this.closed) throw new Error("the result store is closed");
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no connection within ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      return (await Promise.race([this.open(), timeout])).store;
    } finally {
      clearTimeout(timer);
    }
  }

  async get(digest: string): Promise<Uint8Array | undefined> {
    const blob = await (await this.store()).getBlob(digest);
    // A plain Uint8Array like the directory store's, whatever view the client hands back.
    return blob === null ? undefined : new Uint8Array(blob);
  }

  async put(digest: string, key: RecordKey, result: Uint8Array): Promise<void> {
    await (await this.store()).putBlob({ name: digest, description: canonicalJson(key) }, result);
  }

  async close(): Promise<void> {
    this.closed = true;
    const opened = await this.bucket?.catch(() => undefined);
    await opened?.connection.close();
  }
}

/**
 * The ResultRecorder: `off` does nothing; `record` always lets the tool run
 * (lookup misses) and stores each result; `replay` serves stored results and
 * stores nothing. A store that cannot be reached is an INFRASTRUCTURE error
 * (UNAVAILABLE), never a silent miss: a replay must not quietly re-run tools.
 */
export class Recorder implements ResultRecorder {
  constructor(
    readonly mode: RecorderMode,
    private readonly store: ResultStore,
  ) {}

  async lookup(key: RecordKey): Promise<Uint8Array | undefined> {
    if (this.mode !== "replay") return undefined;
    try {
      return await this.store.get(recordKeyDigest(key));
    } catch (error) {
      throw new UnavailableError(`recorded results unreachable: ${errorMessage(error)}`, { cause: error });
    }
  }

  async record(key: RecordKey, result: Uint8Array): Promise<void> {
    if (this.mode !== "record") return;
    try {
      await this.store.put(recordKeyDigest(key), key, result);
    } catch (error) {
      throw new UnavailableError(`cannot store recorded result: ${errorMessage(error)}`, { cause: error });
    }
  }

  close(): Promise<void> {
    return this.store.close();
  }
}

/** A trajectory id as a file name: readable when it is safe, hashed when it is long. */
export function trajectoryFileName(trajectoryId: string): string {
  const encoded = encodeURIComponent(trajectoryId).replace(/\./g, "%2E");
  return `${encoded.length <= 180 ? encoded : sha256Hex(trajectoryId)}.jsonl`;
}

export function trajectoryJournalPath(dir: string, trajectoryId: string): string {
  return join(dir, "trajectories", trajectoryFileName(trajectoryId));
}

/**
 * Without NATS, the per-trajectory call list lives beside the recorded results:
 * `<dir>/trajectories/<trajectory>.jsonl`, one event per line in the order the
 * gateway emitted them. Appends are chained so lines never interleave, and
 * onEvent returns at once.
 */
export class TrajectoryJournal implements StoppableObserver {
  private tail: Promise<void> = Promise.resolve();

  constructor(
    private readonly dir: string,
    private readonly logger: Logger,
  ) {}

  onEvent(event: ToolCallEvent): void {
    const path = trajectoryJournalPath(this.dir, event.trajectoryId);
    const line = `${JSON.stringify(event)}\n`;
    this.tail = this.tail
      .then(async () => {
        await mkdir(join(this.dir, "trajectories"), { recursive: true });
        await appendFile(path, line);
      })
      .catch((error: unknown) => this.logger.error({ err: error, path }, "cannot append to trajectory journal"));
  }

  async stop(): Promise<void> {
    await this.tail;
  }
}

/** The recorder the config asks for, and (directory backend, record mode) the journal observer to add. */
export function createRecorder(
  config: RecorderConfig,
  logger: Logger,
): { recorder: Recorder; journal: TrajectoryJournal | undefined } {
  const useNats =
    config.TOOLPLANE_RECORD_BACKEND === "nats" ||
    (config.TOOLPLANE_RECORD_BACKEND === "auto" && config.TOOLPLANE_NATS_URL !== undefined);
  if (useNats && config.TOOLPLANE_NATS_URL === undefined) {
    throw new ConfigError([
      'invalid environment variable TOOLPLANE_RECORD_BACKEND="nats": TOOLPLANE_NATS_URL is not set',
    ]);
  }
  const mode = config.TOOLPLANE_RECORD_MODE;
  const store =
    mode !== "off" && useNats && config.TOOLPLANE_NATS_URL !== undefined
      ? new ObjectStoreResultStore(config.TOOLPLANE_NATS_URL, config.TOOLPLANE_RECORD_TIMEOUT_MS)
      : new DirectoryResultStore(config.TOOLPLANE_RECORD_DIR);
  if (mode !== "off") {
    logger.info(
      { mode, backend: store instanceof DirectoryResultStore ? config.TOOLPLANE_RECORD_DIR : RESULTS_BUCKET },
      "result recorder on",
    );
  }
  // With NATS the TOOLPLANE_CALLS stream already is the per-trajectory call list.
  const journal =
    mode === "record" && config.TOOLPLANE_NATS_URL === undefined
      ? new TrajectoryJournal(config.TOOLPLANE_RECORD_DIR, logger)
      : undefined;
  return { recorder: new Recorder(mode, store), journal };
}

/** The journaled events of one trajectory, or an empty list when none was journaled. */
export async function readTrajectoryFromDirectory(dir: string, trajectoryId: string): Promise<ToolCallEvent[]> {
  let text: string;
  try {
    text = await readFile(trajectoryJournalPath(dir, trajectoryId), "utf8");
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw error;
  }
  return text
    .split("\n")
    .filter((line) => line !== "")
    .map((line) => JSON.parse(line) as ToolCallEvent);
}
