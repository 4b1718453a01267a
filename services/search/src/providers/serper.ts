import { z } from "zod";
import type { RemoteProviderEntry } from "./registry.js";
import { parseShape, plainText, type RemoteAdapter } from "./remote.js";
import { result, text } from "./shapes.js";

/**
 * Serper (google.serper.dev): POST JSON, key in the X-API-KEY header. /search
 * answers `organic`; /lens takes an image `url` and answers `organic` with
 * `imageUrl`/`thumbnailUrl`.
 */
export function serperAdapter(apiKey: string): RemoteAdapter {
  const organic = z.object({
    organic: z
      .array(
        z.object({
          title: z.string(),
          link: z.string(),
          snippet: text,
          date: text,
          source: text,
          imageUrl: text,
          thumbnailUrl: text,
        }),
      )
      .nullish(),
  });
  const headers = { "x-api-key": apiKey };
  return {
    name: "serper",
    textRequest: (query) => ({
      method: "POST",
      path: "/search",
      headers,
      body: {
        q: query.query,
        num: query.count,
        ...(query.language ? { hl: query.language } : {}),
        ...(query.region ? { gl: query.region } : {}),
      },
    }),
    textResults: (body) =>
      (parseShape("serper", organic, body).organic ?? []).map((item) =>
        result({ title: item.title, url: item.link, snippet: plainText(item.snippet), date: item.date ?? "" }),
      ),
    imageRequest: (imageUrl) => ({ method: "POST", path: "/lens", headers, body: { url: imageUrl } }),
    imageResults: (body) =>
      (parseShape("serper", organic, body).organic ?? []).map((item) =>
        result({
          title: item.title,
          url: item.link,
          snippet: item.source ?? plainText(item.snippet),
          thumbnailUrl: item.thumbnailUrl ?? item.imageUrl ?? undefined,
        }),
      ),
  };
}

export const serper: RemoteProviderEntry = {
  name: "serper",
  defaultBaseUrl: "https://google.serper.dev",
  keyVariable: "TOOLPLANE_SEARCH_SERPER_KEY",
  create: ({ key }) => serperAdapter(key ?? ""),
};
