import { z } from "zod";
import { UnavailableError } from "../../../runtime/src/index.js";
import type { RemoteProviderEntry } from "./registry.js";
import { parseShape, plainText, type RemoteAdapter } from "./remote.js";
import { result, text } from "./shapes.js";

/**
 * SerpAPI (serpapi.com): GET /search.json, key in `api_key`. Web search uses
 * engine=google (organic_results); image search engine=google_lens with an
 * image `url` (visual_matches). A 200 whose `error` says Google returned
 * nothing is an empty answer; any other `error` is a failure.
 */
export function serpapiAdapter(apiKey: string): RemoteAdapter {
  const organic = z.object({
    error: text,
    organic_results: z
      .array(
        z.object({ title: z.string(), link: z.string(), snippet: text, date: text, position: z.number().nullish() }),
      )
      .nullish(),
  });
  const lens = z.object({
    error: text,
    visual_matches: z
      .array(z.object({ title: z.string(), link: z.string(), source: text, thumbnail: text, image: text }))
      .nullish(),
  });
  const checkError = (error: string | null | undefined): boolean => {
    if (!error) return false;
    if (/hasn't returned any results/i.test(error)) return true;
    throw new UnavailableError(`provider serpapi reported an error: ${error}`);
  };
  return {
    name: "serpapi",
    textRequest: (query) => ({
      method: "GET",
      path: "/search.json",
      query: {
        engine: "google",
        q: query.query,
        num: String(query.count),
        api_key: apiKey,
        ...(query.language ? { hl: query.language } : {}),
        ...(query.region ? { gl: query.region } : {}),
      },
    }),
    textResults: (body) => {
      const parsed = parseShape("serpapi", organic, body);
      if (checkError(parsed.error)) return [];
      return (parsed.organic_results ?? []).map((item) =>
        result({ title: item.title, url: item.link, snippet: plainText(item.snippet), date: item.date ?? "" }),
      );
    },
    imageRequest: (imageUrl) => ({
      method: "GET",
      path: "/search.json",
      query: { engine: "google_lens", url: imageUrl, api_key: apiKey },
    }),
    imageResults: (body) => {
      const parsed = parseShape("serpapi", lens, body);
      if (checkError(parsed.error)) return [];
      return (parsed.visual_matches ?? []).map((item) =>
        result({
          title: item.title,
          url: item.link,
          snippet: item.source ?? "",
          thumbnailUrl: item.thumbnail ?? item.image ?? undefined,
        }),
      );
    },
  };
}

export const serpapi: RemoteProviderEntry = {
  name: "serpapi",
  defaultBaseUrl: "https://serpapi.com",
  keyVariable: "TOOLPLANE_SEARCH_SERPAPI_KEY",
  create: ({ key }) => serpapiAdapter(key ?? ""),
};
