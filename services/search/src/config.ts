import { z } from "zod";
import { baseConfigShape, boolean, port, positiveInt } from "../../runtime/src/index.js";
import { REMOTE_PROVIDERS, variablePrefix } from "./providers/registry.js";

const nonNegativeInt = (fallback: number) => z.coerce.number().int().min(0).default(fallback);
const optionalString = z.string().min(1).optional();
const optionalUrl = z.url().optional();

/** Every remote provider's variables, from its registry entry: _URL, _RATE_PER_SEC, its key, its own. */
const providerShape = Object.fromEntries(
  REMOTE_PROVIDERS.flatMap((entry) => {
    const prefix = variablePrefix(entry.name);
    return [
      [`${prefix}_URL`, optionalUrl],
      [
        `${prefix}_RATE_PER_SEC`,
        z.coerce
          .number()
          .positive()
          .default(entry.defaultRatePerSecond ?? 5),
      ],
      ...(entry.keyVariable ? [[entry.keyVariable, optionalString]] : []),
      ...Object.entries(entry.variables ?? {}).map(([suffix, schema]) => [`${prefix}_${suffix}`, schema]),
    ];
  }),
) as Record<string, z.ZodType<string | number | undefined>>;

const optionalPort = z.coerce.number().int().min(0).max(65_535).optional();

export const searchConfigShape = {
  ...baseConfigShape,
  TOOLPLANE_GRPC_PORT: port(50054),
  TOOLPLANE_SEARCH_DEFAULT_PROVIDER: z.enum(["local", ...REMOTE_PROVIDERS.map((entry) => entry.name)]).default("local"),
  TOOLPLANE_SEARCH_MAX_TOP_K: z.coerce.number().int().min(1).max(50).default(10),
  TOOLPLANE_SEARCH_MAX_QUERY_CHARS: positiveInt(512),
  TOOLPLANE_SEARCH_MAX_IMAGE_BYTES: positiveInt(20 * 1024 * 1024),
  TOOLPLANE_SEARCH_CACHE_POLICY: z.enum(["use", "frozen"]).default("use"),
  TOOLPLANE_SEARCH_CACHE_TTL_MS: positiveInt(24 * 60 * 60 * 1000),
  TOOLPLANE_SEARCH_CACHE_MAX_ENTRIES: positiveInt(10_000),
  TOOLPLANE_SEARCH_CACHE_RETENTION_MS: positiveInt(30 * 24 * 60 * 60 * 1000),
  TOOLPLANE_SEARCH_CACHE_BUCKET: z
    .string()
    .regex(/^[-\w]+$/, "letters, digits, '-' and '_' only")
    .default("toolplane-search-cache"),
  TOOLPLANE_NATS_URL: optionalString,
  TOOLPLANE_SEARCH_CORPUS: optionalString,
  TOOLPLANE_SEARCH_INDEX: optionalString,
  /** Reader threads querying the disk index (each with its own connection and 32 MiB page cache). */
  TOOLPLANE_SEARCH_INDEX_THREADS: z.coerce.number().int().min(1).max(16).default(2),
  /** The Search-R1 retrieval protocol over HTTP (POST /retrieve); unset = not served, 0 = any free port. */
  TOOLPLANE_SEARCH_RETRIEVE_PORT: optionalPort,
  TOOLPLANE_SEARCH_RETRIEVE_DEFAULT_TOP_K: z.coerce.number().int().min(1).max(50).default(3),
  TOOLPLANE_SEARCH_IMAGE_DIR: optionalString,
  TOOLPLANE_SEARCH_IMAGE_MAX_DISTANCE: z.coerce.number().int().min(0).max(128).default(20),
  TOOLPLANE_SEARCH_IMAGE_PUBLIC_URL: optionalUrl,
  TOOLPLANE_SEARCH_IMAGE_PORT: port(50064),
  TOOLPLANE_SEARCH_FETCH_THUMBNAILS: boolean(true),
  TOOLPLANE_SEARCH_THUMBNAIL_MAX_BYTES: positiveInt(2 * 1024 * 1024),
  TOOLPLANE_SEARCH_PROVIDER_TIMEOUT_MS: positiveInt(10_000),
  TOOLPLANE_SEARCH_MAX_RETRIES: nonNegativeInt(2),
  TOOLPLANE_SEARCH_BACKOFF_BASE_MS: positiveInt(250),
  TOOLPLANE_SEARCH_BACKOFF_CAP_MS: positiveInt(8_000),
  TOOLPLANE_SEARCH_RATE_BURST: positiveInt(10),
  TOOLPLANE_SEARCH_BREAKER_THRESHOLD: positiveInt(5),
  TOOLPLANE_SEARCH_BREAKER_COOLDOWN_MS: positiveInt(30_000),
  TOOLPLANE_SEARCH_MAX_RESPONSE_BYTES: positiveInt(5 * 1024 * 1024),
  ...providerShape,
};

export type SearchConfig = z.infer<z.ZodObject<typeof searchConfigShape>>;
