// Function words match nearly every document and drown the terms that matter; both local indexes skip them.
export const STOP_WORDS: ReadonlySet<string> = new Set(
  "a an and are as at be by for from has have in is it its of on or that the this to was were what when where which who why with how".split(
    " ",
  ),
);

/** Most distinct terms a query keeps: each one is a posting list to walk. */
export const MAX_QUERY_TERMS = 32;

/**
 * The terms of a free-text query as the disk index's tokenizer (FTS5 unicode61) sees them: runs of letters
 * and digits, lower-cased, function words and repeats dropped. The model's query never reaches FTS5's query
 * syntax, so no query can be malformed there.
 */
export function queryTerms(query: string): string[] {
  const terms = new Set<string>();
  for (const match of query.toLowerCase().matchAll(/[\p{L}\p{N}\p{M}]+/gu)) {
    const term = match[0];
    // A lone letter is what "Einstein's" or "U.S." leave behind, and it matches nearly everything.
    if (STOP_WORDS.has(term) || (term.length === 1 && !/\p{N}/u.test(term))) continue;
    terms.add(term);
    if (terms.size === MAX_QUERY_TERMS) break;
  }
  return [...terms];
}
