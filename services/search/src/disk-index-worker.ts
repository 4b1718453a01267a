import { parentPort, workerData } from "node:worker_threads";
import { DiskTextIndex } from "./disk-text-index.js";

/** One reader thread of DiskIndexPool: its own read-only connection to the index file. */
export interface SearchMessage {
  id: number;
  query: string;
  count: number;
}

const index = new DiskTextIndex((workerData as { path: string }).path);
parentPort?.on("message", ({ id, query, count }: SearchMessage) => {
  try {
    parentPort?.postMessage({ id, results: index.search(query, count) });
  } catch (error) {
    parentPort?.postMessage({ id, error: (error as Error).message });
  }
});
