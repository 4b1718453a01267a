import { z } from "zod";
import { snippetOf, splitContents } from "../corpus.js";
import type { RemoteProviderEntry } from "./registry.js";
import { parseShape, type RemoteAdapter } from "./remote.js";
import { result, text } from "./shapes.js";

/**
 * A document as Search-R1's retrieval server returns it: the corpus row (`id`, `contents` = quoted title on the
 * first line, then the passage), or {title, text, contents} from its BM25 retriever. Other fields pass through.
 */
export const retrievalDocument = z.looseObject({
  id: z.union([z.string(), z.number()]).nullish(),
  contents: text,
  title: text,
  text: text,
  url: text,
});

/**
 * A Search-R1-style retrieval server (search_r1/search/retrieval_server.py at PeterGriffinJin/Search-R1
 * a14dc3a4; verl's verl/tools/utils/search_r1_like_utils.py at volcengine/verl b178a3cd calls the same):
 * POST /retrieve {"queries": [q], "topk": n, "return_scores": true} answers
 * {"result": [[{"document": {...}, "score": s}, ...]]}, one list per query. No key, no image search.
 */
export function retrievalAdapter(): RemoteAdapter {
  const shape = z.object({
    result: z.array(z.array(z.object({ document: retrievalDocument, score: z.number().nullish() }))),
  });
  return {
    name: "retrieval",
    textRequest: (query) => ({
      method: "POST",
      path: "/retrieve",
      body: { queries: [query.query], topk: query.count, return_scores: true },
    }),
    textResults: (body) =>
      (parseShape("retrieval", shape, body).result[0] ?? []).map(({ document, score }) => {
        const split = splitContents(document.contents ?? "");
        const passage = document.text ?? split.text;
        return result({
          title: document.title ?? split.title,
          url: document.url ?? `corpus:${document.id ?? ""}`,
          snippet: snippetOf({ text: passage }),
          text: passage,
          score: score ?? 0,
        });
      }),
  };
}

export const retrieval: RemoteProviderEntry = {
  name: "retrieval",
  // Self-hosted (e.g. Search-R1's server on :8000): the URL, without /retrieve, enables it.
  defaultBaseUrl: undefined,
  keyVariable: undefined,
  defaultRatePerSecond: 1_000,
  create: () => retrievalAdapter(),
};
