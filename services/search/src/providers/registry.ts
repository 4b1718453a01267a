import type { z } from "zod";
import { brave } from "./brave.js";
import { elasticsearch } from "./elasticsearch.js";
import type { RemoteAdapter } from "./remote.js";
import { retrieval } from "./retrieval.js";
import { searxng } from "./searxng.js";
import { serpapi } from "./serpapi.js";
import { serper } from "./serper.js";
import { tavily } from "./tavily.js";

/**
 * One remote provider: how it is configured and how its adapter is made. Every provider reads
 * TOOLPLANE_SEARCH_<NAME>_URL and _RATE_PER_SEC; a keyed one also its key variable; `variables` adds its own.
 */
export interface RemoteProviderEntry {
  name: string;
  /** Base URL when TOOLPLANE_SEARCH_<NAME>_URL is unset; undefined for self-hosted services (the URL enables them). */
  defaultBaseUrl: string | undefined;
  /** The variable holding the API key, named in auth errors; undefined when the API takes none. */
  keyVariable: string | undefined;
  /** The key may be left unset (self-hosted services with optional auth). */
  keyOptional?: boolean;
  /** Requests per second when _RATE_PER_SEC is unset (paid APIs: a few; self-hosted servers: many). */
  defaultRatePerSecond?: number;
  /** Further variables, by suffix: TOOLPLANE_SEARCH_<NAME>_<SUFFIX>, each with its schema and default. */
  variables?: Record<string, z.ZodType<string | number | undefined>>;
  create(settings: { key: string | undefined; variables: Record<string, unknown> }): RemoteAdapter;
}

/** Adding a provider: one file exporting its entry, and one line here. */
export const REMOTE_PROVIDERS: readonly RemoteProviderEntry[] = [
  serpapi,
  serper,
  brave,
  tavily,
  searxng,
  retrieval,
  elasticsearch,
];

/** TOOLPLANE_SEARCH_<NAME>: the prefix of every variable of one provider. */
export const variablePrefix = (name: string): string => `TOOLPLANE_SEARCH_${name.toUpperCase()}`;
