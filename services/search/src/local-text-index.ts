import { createReadStream } from "node:fs";
import { createInterface } from "node:readline";
import MiniSearch from "minisearch";
import { z } from "zod";
import type { ProviderResult } from "./types.js";

/** One corpus line: {title, url, text and/or snippet, date?}. */
const documentShape = z
  .object({
    title: z.string().min(1),
    url: z.string().min(1),
    text: z.string().optional(),
    snippet: z.string().optional(),
    date: z.string().optional(),
  })
  .refine((doc) => Boolean(doc.text || doc.snippet), { message: "needs a non-empty text or snippet" });

export type CorpusDocument = z.infer<typeof documentShape>;

interface IndexedDocument {
  id: number;
  title: string;
  url: string;
  body: string;
  snippet: string;
  date: string;
}

const SNIPPET_CHARS = 300;

// Function words match nearly every document and drown the terms that matter.
const STOP_WORDS = new Set(
  "a an and are as at be by for from has have in is it its of on or that the this to was were what when where which who why with how".split(
    " ",
  ),
);
const processTerm = (term: string): string | null => {
  const lower = term.toLowerCase();
  return STOP_WORDS.has(lower) ? null : lower;
};

/**
 * BM25 (minisearch's BM25+) over title and body. Title matches weigh double:
 * a page titled with the query is usually what a searcher wants.
 */
export class LocalTextIndex {
  private readonly index = new MiniSearch<IndexedDocument>({
    fields: ["title", "body"],
    processTerm,
    storeFields: ["title", "url", "snippet", "date"],
    searchOptions: { boost: { title: 2 }, combineWith: "OR", prefix: false, fuzzy: false },
  });

  get size(): number {
    return this.index.documentCount;
  }

  add(documents: Iterable<CorpusDocument>): void {
    const batch: IndexedDocument[] = [];
    for (const doc of documents) {
      const body = doc.text ?? doc.snippet ?? "";
      const snippet = doc.snippet ?? (body.length > SNIPPET_CHARS ? `${body.slice(0, SNIPPET_CHARS)}…` : body);
      batch.push({ id: this.size + batch.length, title: doc.title, url: doc.url, body, snippet, date: doc.date ?? "" });
    }
    this.index.addAll(batch);
  }

  search(query: string, count: number): ProviderResult[] {
    return this.index
      .search(query)
      .slice(0, count)
      .map((hit) => ({
        title: String(hit.title),
        url: String(hit.url),
        snippet: String(hit.snippet),
        date: String(hit.date),
        score: hit.score,
      }));
  }
}

/** Reads a JSONL corpus; a bad line fails with its file and line number. */
export async function readCorpus(path: string): Promise<CorpusDocument[]> {
  const documents: CorpusDocument[] = [];
  let lineNumber = 0;
  const lines = createInterface({ input: createReadStream(path, "utf8"), crlfDelay: Number.POSITIVE_INFINITY });
  for await (const line of lines) {
    lineNumber += 1;
    if (line.trim() === "") continue;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch (error) {
      throw new Error(`${path}:${lineNumber}: not JSON (${(error as Error).message})`);
    }
    const parsed = documentShape.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      throw new Error(`${path}:${lineNumber}: ${issue?.path.join(".") || "document"} ${issue?.message}`);
    }
    documents.push(parsed.data);
  }
  return documents;
}
