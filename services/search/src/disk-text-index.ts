import Database from "better-sqlite3";
import { snippetOf } from "./corpus.js";
import { queryTerms } from "./query-terms.js";
import type { ProviderResult, TextIndex } from "./types.js";

/**
 * The on-disk index is one SQLite file: `docs` holds the documents, `fts` is an FTS5 table over their
 * title and text that stores only the inverted index (external content), `meta` holds the build state.
 * Bump FORMAT_VERSION when the layout changes: an older file is then refused with a message, not misread.
 */
export const FORMAT_VERSION = "1";

export const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS docs (
  id INTEGER PRIMARY KEY,
  title TEXT NOT NULL,
  url TEXT NOT NULL,
  text TEXT NOT NULL,
  snippet TEXT,
  date TEXT
);
CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(
  title, text,
  content = 'docs', content_rowid = 'id',
  tokenize = 'porter unicode61 remove_diacritics 2'
);
`;

/** A title match weighs double, like the in-memory index: a page titled with the query is usually the answer. */
const BM25 = "bm25(fts, 2.0, 1.0)";

/**
 * Pages SQLite keeps per connection (negative = KiB). The file itself stays in the OS page cache, which
 * replicas on one node share; this only bounds what each process holds privately.
 */
const CACHE_KIB = 32 * 1024;

interface Row {
  id: number;
  title: string;
  url: string;
  text: string;
  snippet: string | null;
  date: string | null;
  score: number;
}

/** Why an index file cannot be served, in words an operator can act on. */
export class IndexFileError extends Error {}

/**
 * Most postings one stage of a query scores. FTS5 has no dynamic pruning (WAND): ranking an OR of common
 * terms scores every document holding any of them (~1 µs each), so a stage scores the first MAX_SCORED
 * matches in document order and ranks those. Queries with a rare term never reach the cap.
 */
export const MAX_SCORED = 20_000;

/** FTS5 MATCH expressions for a query: its terms ANDed and ORed, each quoted so none is read as query syntax. */
export function matchExpressions(query: string): { all: string; any: string } | undefined {
  const terms = queryTerms(query).map((term) => `"${term}"`);
  if (terms.length === 0) return undefined;
  return { all: terms.join(" AND "), any: terms.join(" OR ") };
}

/**
 * A finished index opened read-only: never written, so any number of processes (replicas on one node,
 * or pods mounting one read-only volume) can query the same file at once.
 */
export class DiskTextIndex implements TextIndex {
  readonly size: number;
  private readonly db: Database.Database;
  private readonly query: Database.Statement<[string, number, number], Row>;

  constructor(path: string) {
    try {
      this.db = new Database(path, { readonly: true, fileMustExist: true });
    } catch (error) {
      throw new IndexFileError(`cannot open ${path} (${(error as Error).message})`);
    }
    try {
      const meta = new Map(
        this.db
          .prepare<[], { key: string; value: string }>("SELECT key, value FROM meta")
          .all()
          .map((row) => [row.key, row.value]),
      );
      if (meta.get("format") !== FORMAT_VERSION)
        throw new IndexFileError(
          `${path} has index format ${meta.get("format") ?? "unknown"}; this build reads format ${FORMAT_VERSION}: rebuild it`,
        );
      if (meta.get("complete") !== "1")
        throw new IndexFileError(
          `${path} is not finished (${meta.get("documents") ?? 0} documents so far): run the build again to resume it`,
        );
      this.size = Number(meta.get("documents"));
      this.db.pragma(`cache_size = -${CACHE_KIB}`);
      this.query = this.db.prepare(
        `SELECT d.id, d.title, d.url, d.text, d.snippet, d.date, -r.score AS score
           FROM (SELECT rowid, score FROM (SELECT rowid, ${BM25} AS score FROM fts WHERE fts MATCH ? LIMIT ?)
                  ORDER BY score LIMIT ?) AS r
           JOIN docs AS d ON d.id = r.rowid
          ORDER BY r.score`,
      );
    } catch (error) {
      this.db.close();
      if (error instanceof IndexFileError) throw error;
      throw new IndexFileError(`${path} is not a toolplane search index (${(error as Error).message})`);
    }
  }

  /**
   * Documents holding every term first (cheap: FTS5 intersects posting lists by skipping), then, when they
   * are fewer than asked, documents holding any term. BM25 ranks each stage: a document with all the
   * query's terms almost always outranks one missing a term, so this matches a full OR ranking's top.
   */
  search(query: string, count: number): ProviderResult[] {
    const expressions = matchExpressions(query);
    if (expressions === undefined) return [];
    const rows = this.query.all(expressions.all, MAX_SCORED, count);
    if (rows.length < count && expressions.any !== expressions.all) {
      const seen = new Set(rows.map((row) => row.id));
      for (const row of this.query.all(expressions.any, MAX_SCORED, count)) {
        if (rows.length === count) break;
        if (!seen.has(row.id)) rows.push(row);
      }
    }
    return rows.map((row) => ({
      title: row.title,
      url: row.url,
      text: row.text,
      snippet: snippetOf({ text: row.text, snippet: row.snippet }),
      date: row.date ?? "",
      score: row.score,
    }));
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
