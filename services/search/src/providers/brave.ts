import { z } from "zod";
import type { RemoteProviderEntry } from "./registry.js";
import { parseShape, plainText, type RemoteAdapter } from "./remote.js";
import { result, text } from "./shapes.js";

/**
 * Brave Search API: GET /res/v1/web/search, key in X-Subscription-Token,
 * `count` at most 20. Answers `web.results` with HTML-emphasised descriptions.
 * No reverse image search.
 */
export function braveAdapter(apiKey: string): RemoteAdapter {
  const shape = z.object({
    web: z
      .object({
        results: z.array(
          z.object({ title: z.string(), url: z.string(), description: text, age: text, page_age: text }),
        ),
      })
      .nullish(),
  });
  return {
    name: "brave",
    textRequest: (query) => ({
      method: "GET",
      path: "/res/v1/web/search",
      headers: { "x-subscription-token": apiKey },
      query: {
        q: query.query,
        count: String(Math.min(20, query.count)),
        ...(query.language ? { search_lang: query.language } : {}),
        ...(query.region ? { country: query.region } : {}),
      },
    }),
    textResults: (body) =>
      (parseShape("brave", shape, body).web?.results ?? []).map((item) =>
        result({
          title: plainText(item.title),
          url: item.url,
          snippet: plainText(item.description),
          date: item.age ?? item.page_age ?? "",
        }),
      ),
  };
}

export const brave: RemoteProviderEntry = {
  name: "brave",
  defaultBaseUrl: "https://api.search.brave.com",
  keyVariable: "TOOLPLANE_SEARCH_BRAVE_KEY",
  create: ({ key }) => braveAdapter(key ?? ""),
};
