import MiniSearch from "minisearch";
import { type CorpusDocument, snippetOf } from "./corpus.js";
import { STOP_WORDS } from "./query-terms.js";
import type { ProviderResult, TextIndex } from "./types.js";

interface IndexedDocument {
  id: number;
  title: string;
  url: string;
  body: string;
  snippet: string;
  date: string;
  text: string;
}

const processTerm = (term: string): string | null => {
  const lower = term.toLowerCase();
  return STOP_WORDS.has(lower) ? null : lower;
};

/**
 * BM25 (minisearch's BM25+) over title and body. Title matches weigh double:
 * a page titled with the query is usually what a searcher wants.
 */
export class LocalTextIndex implements TextIndex {
  private readonly index = new MiniSearch<IndexedDocument>({
    fields: ["title", "body"],
    processTerm,
    storeFields: ["title", "url", "snippet", "date", "text"],
    searchOptions: { boost: { title: 2 }, combineWith: "OR", prefix: false, fuzzy: false },
  });

  get size(): number {
    return this.index.documentCount;
  }

  add(documents: Iterable<CorpusDocument>): void {
    const batch: IndexedDocument[] = [];
    for (const doc of documents) {
      batch.push({
        id: this.size + batch.length,
        title: doc.title,
        url: doc.url,
        body: doc.text,
        snippet: snippetOf(doc),
        date: doc.date ?? "",
        text: doc.text,
      });
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
        text: String(hit.text),
        score: hit.score,
      }));
  }
}
