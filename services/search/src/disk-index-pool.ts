import { Worker } from "node:worker_threads";
import { UnavailableError } from "../../runtime/src/index.js";
import type { SearchMessage } from "./disk-index-worker.js";
import { DiskTextIndex } from "./disk-text-index.js";
import type { ProviderResult, TextIndex } from "./types.js";

type Answer = { id: number; results: ProviderResult[] } | { id: number; error: string };

interface Reader {
  worker: Worker;
  pending: Map<number, { resolve: (results: ProviderResult[]) => void; reject: (error: Error) => void }>;
}

/**
 * The disk index served from reader threads, each with its own read-only connection: an FTS5 query takes
 * milliseconds of synchronous work (tens for common words), which on the main thread would stall every
 * other call of the service, and so every other trajectory, for that long.
 */
export class DiskIndexPool implements TextIndex {
  readonly size: number;
  private readonly readers: Reader[] = [];
  private nextId = 0;
  private closed = false;

  /** Validates the file on this thread first, so a bad index fails start-up with its message. */
  constructor(
    private readonly path: string,
    threads: number,
  ) {
    const probe = new DiskTextIndex(path);
    this.size = probe.size;
    void probe.close();
    for (let i = 0; i < threads; i += 1) this.readers.push(this.startReader());
  }

  private startReader(): Reader {
    const worker = new Worker(new URL("./disk-index-worker.js", import.meta.url), { workerData: { path: this.path } });
    const reader: Reader = { worker, pending: new Map() };
    worker.on("message", (answer: Answer) => {
      const call = reader.pending.get(answer.id);
      reader.pending.delete(answer.id);
      if (!call) return;
      if ("error" in answer) call.reject(new UnavailableError(`the disk index failed a query: ${answer.error}`));
      else call.resolve(answer.results);
    });
    const fail = (why: string) => {
      for (const call of reader.pending.values()) call.reject(new UnavailableError(`a disk index reader ${why}`));
      reader.pending.clear();
      if (this.closed) return;
      // A lost reader is replaced, so one failure does not shrink the pool for good.
      const index = this.readers.indexOf(reader);
      if (index !== -1) this.readers[index] = this.startReader();
    };
    worker.on("error", (error) => fail(`crashed (${error.message})`));
    worker.on("exit", (code) => fail(`exited with code ${code}`));
    return reader;
  }

  search(query: string, count: number): Promise<ProviderResult[]> {
    if (this.closed) return Promise.reject(new UnavailableError("the disk index is closed (the service is stopping)"));
    // The least busy reader: a slow query queues only the calls sent to its thread.
    const reader = this.readers.reduce((best, candidate) =>
      candidate.pending.size < best.pending.size ? candidate : best,
    );
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      reader.pending.set(id, { resolve, reject });
      reader.worker.postMessage({ id, query, count } satisfies SearchMessage);
    });
  }

  async close(): Promise<void> {
    this.closed = true;
    await Promise.all(this.readers.map((reader) => reader.worker.terminate()));
  }
}
