import type { SearchResponse } from "../../../../generated/toolplane/search/v1/search.js";
import { imageSearchObservation, searchObservation } from "../formats/index.js";
import { optionalImageReference, requireString, type ToolDefinition } from "./tool.js";

function searchHits(response: SearchResponse) {
  return response.results.map((result) => ({
    title: result.title,
    url: result.url,
    snippet: result.snippet,
    date: result.date,
  }));
}

export const searchTool: ToolDefinition = {
  name: "search",
  description: "Search the web for a text query; returns the top 5 results with title, link, date and snippet.",
  parameters: {
    type: "object",
    properties: { query: { type: "string", description: "The search query." } },
    required: ["query"],
  },
  backend: "search",
  defaultTimeoutMs: 60_000,
  version: "1",
  prepare(context, args) {
    // A format mirroring its reference sends the query it was given; the search backend judges it.
    const query = context.hints.anyQuery && typeof args.query === "string" ? args.query : requireString(args, "query");
    return {
      inputImages: [],
      run: async () => {
        const response = await context.call("search", (scope) =>
          context.backends.search.search(
            { query, topK: 5, provider: "", cachePolicy: 0, language: "", region: "" },
            scope,
          ),
        );
        const hits = searchHits(response);
        return {
          images: [],
          render: () => searchObservation(query, hits),
          output: { provider: response.provider, results: hits },
        };
      },
    };
  },
};

export const imageSearchTool: ToolDefinition = {
  name: "image_search",
  description: "Reverse image search on the trajectory's input image; returns similar images with their page titles.",
  parameters: { type: "object", properties: {}, required: [] },
  backend: "search",
  defaultTimeoutMs: 60_000,
  version: "1",
  async prepare(context, args) {
    const image = await context.image(optionalImageReference(args), "arguments.image");
    return {
      inputImages: [image.sha256],
      run: async () => {
        const response = await context.call("search", (scope) =>
          context.backends.search.imageSearch(
            {
              image: { data: image.data, mimeType: image.mimeType, width: image.width, height: image.height },
              topK: 5,
              provider: "",
              cachePolicy: 0,
            },
            scope,
          ),
        );
        // Only results with a thumbnail are shown: each entry is an <image> placeholder.
        const shown = response.results.filter((result) => result.thumbnail?.data && result.thumbnail.data.length > 0);
        return {
          images: shown.map((result) => Buffer.from(result.thumbnail?.data as Uint8Array)),
          render: (count) => imageSearchObservation(shown.slice(0, count).map((result) => result.title)),
          output: {
            provider: response.provider,
            results: response.results.map((result) => ({
              title: result.title,
              url: result.url,
              thumbnailUrl: result.thumbnailUrl,
              shown: shown.includes(result),
            })),
          },
        };
      },
    };
  },
};
