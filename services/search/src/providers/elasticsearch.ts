import { z } from "zod";
import { snippetOf } from "../corpus.js";
import type { RemoteProviderEntry } from "./registry.js";
import { parseShape, type RemoteAdapter } from "./remote.js";
import { result } from "./shapes.js";

export interface ElasticsearchOptions {
  index: string;
  titleField: string;
  textField: string;
}

/**
 * Elasticsearch or OpenSearch (the same search API): POST /<index>/_search with a `multi_match` over the title
 * (boosted ×2, like the local index) and text fields, answered as hits.hits[] with _id, _score and _source.
 * A key containing ':' is sent as HTTP Basic credentials (OpenSearch's security plugin), any other as an
 * Elasticsearch API key. No image search.
 */
export function elasticsearchAdapter(key: string | undefined, options: ElasticsearchOptions): RemoteAdapter {
  const source = z.record(z.string(), z.unknown());
  const shape = z.object({
    hits: z.object({
      hits: z.array(z.object({ _id: z.string(), _score: z.number().nullish(), _source: source.nullish() })),
    }),
  });
  const field = (doc: Record<string, unknown> | null | undefined, name: string): string => {
    const value = doc?.[name];
    return typeof value === "string" ? value : "";
  };
  const authorization =
    key === undefined
      ? undefined
      : key.includes(":")
        ? `Basic ${Buffer.from(key).toString("base64")}`
        : `ApiKey ${key}`;
  return {
    name: "elasticsearch",
    textRequest: (query) => ({
      method: "POST",
      path: `/${encodeURIComponent(options.index)}/_search`,
      ...(authorization ? { headers: { authorization } } : {}),
      body: {
        size: query.count,
        query: {
          multi_match: { query: query.query, fields: [`${options.titleField}^2`, options.textField] },
        },
      },
    }),
    textResults: (body) =>
      parseShape("elasticsearch", shape, body).hits.hits.map((hit) => {
        const passage = field(hit._source, options.textField);
        return result({
          title: field(hit._source, options.titleField),
          url: field(hit._source, "url") || `${options.index}:${hit._id}`,
          snippet: snippetOf({ text: passage }),
          text: passage,
          date: field(hit._source, "date"),
          score: hit._score ?? 0,
        });
      }),
  };
}

const fieldName = (fallback: string) =>
  z
    .string()
    .regex(/^[\w.@-]+$/, "a field name: letters, digits, '_', '.', '@', '-'")
    .default(fallback);

export const elasticsearch: RemoteProviderEntry = {
  name: "elasticsearch",
  // Self-hosted: the URL enables it.
  defaultBaseUrl: undefined,
  keyVariable: "TOOLPLANE_SEARCH_ELASTICSEARCH_KEY",
  keyOptional: true,
  defaultRatePerSecond: 1_000,
  variables: {
    INDEX: z
      .string()
      .regex(/^[^\s/\\*?"<>|,#:]+$/, 'an index name without spaces or / \\ * ? " < > | , # :')
      .default("toolplane"),
    TITLE_FIELD: fieldName("title"),
    TEXT_FIELD: fieldName("text"),
  },
  create: ({ key, variables }) =>
    elasticsearchAdapter(key, {
      index: String(variables.INDEX),
      titleField: String(variables.TITLE_FIELD),
      textField: String(variables.TEXT_FIELD),
    }),
};
