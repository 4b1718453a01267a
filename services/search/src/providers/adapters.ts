import { z } from "zod";
import { UnavailableError } from "../../../runtime/src/index.js";
import type { ProviderResult } from "../types.js";
import { parseShape, plainText, type RemoteAdapter } from "./remote.js";

const text = z.string().nullish();
const result = (fields: Partial<ProviderResult> & Pick<ProviderResult, "title" | "url">): ProviderResult => ({
  snippet: "",
  date: "",
  score: 0,
  ...fields,
});

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
