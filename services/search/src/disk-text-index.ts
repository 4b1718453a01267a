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

/** FTS5's bm25() saturation constant: a term adds at most idf * (K1 + 1) to a document's score, whatever its frequency. */
const K1 = 1.2;

/** Document frequencies kept per connection: the file never changes, so a cached frequency never goes stale. */
const MAX_CACHED_FREQUENCIES = 50_000;

/** One query term quoted as an FTS5 string, so no term is read as query syntax; `OR` joins them. */
export function matchAny(terms: readonly string[]): string {
  return terms.map((term) => `"${term}"`).join(" OR ");
}

/**
 * A finished index opened read-only: never written, so any number of processes (replicas on one node,
 * or pods mounting one read-only volume) can query the same file at once.
 */
export class DiskTextIndex implements TextIndex {
  readonly size: number;
  private readonly db: Database.Database;
  private readonly ranked: Database.Statement<[string, number], Row>;
  private readonly pruned: Database.Statement<[string, string, number], Row>;
  private readonly frequency: Database.Statement<[string], { n: number }>;
  private readonly frequencies = new Map<string, number>();

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
      const ranking = (filter: string) =>
        `SELECT d.id, d.title, d.url, d.text, d.snippet, d.date, -r.score AS score
           FROM (SELECT rowid, ${BM25} AS score FROM fts WHERE fts MATCH ? ${filter} ORDER BY score LIMIT ?) AS r
           JOIN docs AS d ON d.id = r.rowid
          ORDER BY r.score`;
      this.ranked = this.db.prepare(ranking(""));
      // The unary + keeps SQLite from driving the scan by the candidate list: each rowid lookup would re-open
      // every term's postings (and recount bm25's idf); as a filter it is a Bloom/B-tree probe per posting.
      this.pruned = this.db.prepare(ranking("AND +rowid IN (SELECT rowid FROM fts WHERE fts MATCH ?)"));
      this.frequency = this.db.prepare("SELECT count(*) AS n FROM fts WHERE fts MATCH ?");
    } catch (error) {
      this.db.close();
      if (error instanceof IndexFileError) throw error;
      throw new IndexFileError(`${path} is not a toolplane search index (${(error as Error).message})`);
    }
  }

  /**
   * The exact BM25 top `count` of the query's terms ORed, pruned like MaxScore (Turtle & Flood 1995). Ranking
   * costs one bm25() per matching posting, and the common terms hold most postings; a term can add at most
   * idf * (K1 + 1) to any score. So the commonest terms are first left out of the candidates (their postings
   * are still walked, which is cheap, but a document holding only them is never scored): when the `count`-th
   * score found exceeds the sum of their bounds, no document holding only them could have entered the top, and
   * the answer is exact. Otherwise one more common term joins the candidates, down to the plain full ranking.
   */
  search(query: string, count: number): ProviderResult[] {
    const terms = queryTerms(query);
    if (terms.length === 0) return [];
    const byBound = terms.map((term) => ({ term, bound: this.idf(term) * (K1 + 1) })).sort((a, b) => a.bound - b.bound);
    const all = matchAny(terms);
    const rarest = byBound[byBound.length - 1]?.bound ?? 0;
    // First guess: leave out the common terms whose bounds add up to less than half the rarest term's bound;
    // a top document usually holds the rarest term, so its score clears that and one pass suffices.
    let omitted = 0;
    let omittedBound = 0;
    while (omitted < byBound.length - 1 && omittedBound + (byBound[omitted]?.bound ?? 0) < rarest / 2) {
      omittedBound += byBound[omitted]?.bound ?? 0;
      omitted += 1;
    }
    let rows: Row[] | undefined;
    for (; omitted > 0 && rows === undefined; omitted -= 1) {
      const candidates = this.pruned.all(all, matchAny(byBound.slice(omitted).map(({ term }) => term)), count);
      const threshold = candidates.length === count ? (candidates[count - 1]?.score ?? 0) : 0;
      if (threshold > omittedBound) rows = candidates;
      omittedBound -= byBound[omitted - 1]?.bound ?? 0;
    }
    return (rows ?? this.ranked.all(all, count)).map((row) => ({
      title: row.title,
      url: row.url,
      text: row.text,
      snippet: snippetOf({ text: row.text, snippet: row.snippet }),
      date: row.date ?? "",
      score: row.score,
    }));
  }

  /** FTS5 bm25()'s idf of a term: log((N - df + 0.5) / (df + 0.5)), floored at 1e-6 as FTS5 does. */
  private idf(term: string): number {
    let df = this.frequencies.get(term);
    if (df === undefined) {
      df = this.frequency.get(`"${term}"`)?.n ?? 0;
      if (this.frequencies.size >= MAX_CACHED_FREQUENCIES) this.frequencies.clear();
      this.frequencies.set(term, df);
    }
    return Math.max(1e-6, Math.log((this.size - df + 0.5) / (df + 0.5)));
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
