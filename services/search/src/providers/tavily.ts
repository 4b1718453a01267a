import { z } from "zod";
import type { RemoteProviderEntry } from "./registry.js";
import { parseShape, plainText, type RemoteAdapter } from "./remote.js";
import { result, text } from "./shapes.js";

/**
 * Tavily: POST /search with `Authorization: Bearer`, max_results at most 20.
 * Answers `results` with `content` and a relevance `score`. 432/433 are plan
 * and pay-as-you-go limits. No reverse image search.
 */
export function tavilyAdapter(apiKey: string): RemoteAdapter {
  const shape = z.object({
    results: z.array(
      z.object({
        title: z.string(),
        url: z.string(),
        content: text,
        score: z.number().nullish(),
        published_date: text,
      }),
    ),
  });
  return {
    name: "tavily",
    quotaStatuses: [432, 433],
    textRequest: (query) => ({
      method: "POST",
      path: "/search",
      headers: { authorization: `Bearer ${apiKey}` },
      body: {
        query: query.query,
        max_results: Math.min(20, query.count),
        // Tavily's `country` takes full country names, not the codes `region` carries: not passed.
        search_depth: "basic",
      },
    }),
    textResults: (body) =>
      parseShape("tavily", shape, body).results.map((item) =>
        result({
          title: item.title,
          url: item.url,
          snippet: plainText(item.content),
          date: item.published_date ?? "",
          score: item.score ?? 0,
        }),
      ),
  };
}

export const tavily: RemoteProviderEntry = {
  name: "tavily",
  defaultBaseUrl: "https://api.tavily.com",
  keyVariable: "TOOLPLANE_SEARCH_TAVILY_KEY",
  create: ({ key }) => tavilyAdapter(key ?? ""),
};
