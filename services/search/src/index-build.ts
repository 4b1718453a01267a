import { closeSync, openSync, readSync, statSync } from "node:fs";
import Database from "better-sqlite3";
import { errorMessage, sha256Hex } from "../../runtime/src/index.js";
import { type CorpusDocument, parseCorpusLine, readCorpusLines } from "./corpus.js";
import { FORMAT_VERSION, SCHEMA } from "./disk-text-index.js";

export interface BuildOptions {
  /** JSONL corpus (toolplane or Search-R1 lines), optionally gzip-compressed (`.gz`). */
  source: string;
  /** The SQLite index file to create, or to resume when a build stopped part way. */
  index: string;
  /** Documents per transaction: the unit of progress a crash can lose. */
  batchSize?: number;
  onProgress?: (progress: BuildProgress) => void;
}

export interface BuildProgress {
  /** Bytes of the source file read so far (compressed bytes for .gz). */
  fileBytes: number;
  totalFileBytes: number;
  documents: number;
  phase: "indexing" | "merging";
}

export interface BuildSummary {
  documents: number;
  /** Documents already indexed by an earlier, interrupted run. */
  resumedFrom: number;
  alreadyComplete: boolean;
}

const DEFAULT_BATCH = 5_000;
const FINGERPRINT_BYTES = 1 << 20;

/**
 * Identifies the source, so a resumed build cannot silently append another corpus: the size and a hash
 * of the first MiB (hashing 20 GB at every start would cost minutes).
 */
function fingerprint(path: string): string {
  const size = statSync(path).size;
  const handle = openSync(path, "r");
  try {
    const head = Buffer.alloc(Math.min(size, FINGERPRINT_BYTES));
    readSync(handle, head, 0, head.length, 0);
    return `${size}:${sha256Hex(head)}`;
  } finally {
    closeSync(handle);
  }
}

/**
 * Builds (or resumes) a disk index from a JSONL corpus in one streaming pass: memory stays flat whatever the
 * corpus size. Every batch is one transaction that also records where the source was read up to, so a build
 * killed at any point resumes from its last committed batch. The end merges FTS5's segments into one (the
 * fastest layout to query) and switches the file to rollback-journal mode, so it can be opened read-only,
 * also from a read-only volume.
 */
export async function buildIndex(options: BuildOptions): Promise<BuildSummary> {
  const totalFileBytes = statSync(options.source).size;
  const sourceId = fingerprint(options.source);
  const db = new Database(options.index);
  try {
    db.pragma("journal_mode = WAL");
    db.pragma("synchronous = NORMAL");
    db.pragma("cache_size = -65536");
    db.exec(SCHEMA);
    const readMeta = db.prepare<[string], { value: string }>("SELECT value FROM meta WHERE key = ?");
    const meta = (key: string) => readMeta.get(key)?.value;
    const writeMeta = db.prepare<[string, string]>("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)");

    if (meta("format") === undefined) {
      db.transaction(() => {
        writeMeta.run("format", FORMAT_VERSION);
        writeMeta.run("source", sourceId);
        writeMeta.run("offset", "0");
        writeMeta.run("lines", "0");
        writeMeta.run("documents", "0");
        writeMeta.run("complete", "0");
      })();
    } else if (meta("format") !== FORMAT_VERSION) {
      throw new Error(`${options.index} has index format ${meta("format")}; this build writes ${FORMAT_VERSION}`);
    } else if (meta("source") !== sourceId) {
      throw new Error(
        `${options.index} was started from another corpus file (size or first MiB differ from ${options.source}); remove it to start over`,
      );
    }
    const resumedFrom = Number(meta("documents"));
    if (meta("complete") === "1") return { documents: resumedFrom, resumedFrom, alreadyComplete: true };

    const insertDoc = db.prepare<[string, string, string, string | null, string | null]>(
      "INSERT INTO docs (title, url, text, snippet, date) VALUES (?, ?, ?, ?, ?)",
    );
    const insertFts = db.prepare<[number | bigint, string, string]>(
      "INSERT INTO fts (rowid, title, text) VALUES (?, ?, ?)",
    );
    let documents = resumedFrom;
    const commit = db.transaction((batch: CorpusDocument[], offset: number, lines: number) => {
      for (const doc of batch) {
        const { lastInsertRowid } = insertDoc.run(doc.title, doc.url, doc.text, doc.snippet ?? null, doc.date ?? null);
        insertFts.run(lastInsertRowid, doc.title, doc.text);
      }
      documents += batch.length;
      writeMeta.run("offset", String(offset));
      writeMeta.run("lines", String(lines));
      writeMeta.run("documents", String(documents));
    });

    let fileBytes = 0;
    const report = (phase: BuildProgress["phase"]) =>
      options.onProgress?.({ fileBytes, totalFileBytes, documents, phase });
    const batchSize = options.batchSize ?? DEFAULT_BATCH;
    let batch: CorpusDocument[] = [];
    let lastLine = { endOffset: Number(meta("offset")), lineNumber: Number(meta("lines")) };
    for await (const line of readCorpusLines(options.source, {
      startOffset: lastLine.endOffset,
      linesBefore: lastLine.lineNumber,
      onFileBytes: (bytes) => {
        fileBytes = bytes;
      },
    })) {
      try {
        batch.push(parseCorpusLine(line.text, line.lineNumber));
      } catch (error) {
        throw new Error(`${options.source}:${line.lineNumber}: ${errorMessage(error)}`);
      }
      lastLine = line;
      if (batch.length >= batchSize) {
        commit(batch, lastLine.endOffset, lastLine.lineNumber);
        batch = [];
        report("indexing");
      }
    }
    if (batch.length > 0) commit(batch, lastLine.endOffset, lastLine.lineNumber);
    fileBytes = totalFileBytes;
    report("merging");
    db.exec("INSERT INTO fts (fts) VALUES ('optimize')");
    writeMeta.run("complete", "1");
    db.pragma("wal_checkpoint(TRUNCATE)");
    db.pragma("journal_mode = DELETE");
    return { documents, resumedFrom, alreadyComplete: false };
  } finally {
    db.close();
  }
}
