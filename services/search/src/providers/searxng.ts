import { z } from "zod";
import type { RemoteProviderEntry } from "./registry.js";
import { parseShape, plainText, type RemoteAdapter } from "./remote.js";
import { result, text } from "./shapes.js";

/**
 * SearXNG (self-hosted): GET /search?format=json (the instance must list
 * `json` under search.formats, otherwise it answers 403). No key by default.
 */
export function searxngAdapter(): RemoteAdapter {
  const shape = z.object({
    results: z.array(
      z.object({
        title: z.string(),
        url: z.string(),
        content: text,
        publishedDate: text,
        score: z.number().nullish(),
      }),
    ),
  });
  return {
    name: "searxng",
    textRequest: (query) => ({
      method: "GET",
      path: "/search",
      query: { q: query.query, format: "json", pageno: "1", ...(query.language ? { language: query.language } : {}) },
    }),
    textResults: (body) =>
      parseShape("searxng", shape, body).results.map((item) =>
        result({
          title: plainText(item.title),
          url: item.url,
          snippet: plainText(item.content),
          date: item.publishedDate ?? "",
          score: item.score ?? 0,
        }),
      ),
  };
}

export const searxng: RemoteProviderEntry = {
  name: "searxng",
  // Self-hosted: no public default.
  defaultBaseUrl: undefined,
  keyVariable: undefined,
  create: () => searxngAdapter(),
};
