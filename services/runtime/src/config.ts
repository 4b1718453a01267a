import { z } from "zod";
import { ADDRESS_FORMS, addressProblem } from "./address.js";

/** Raised when the environment does not satisfy a service's config schema. */
export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(problems.join("\n"));
    this.name = "ConfigError";
  }
}

/** A TCP port from the environment: 0 means "pick a free one" (tests). */
export const port = (fallback: number) => z.coerce.number().int().min(0).max(65535).default(fallback);

/**
 * A service address (gRPC target), validated by the one address validator.
 * With `optional`, the empty string (the default) means "not configured".
 */
export const address = (fallback: string, options: { optional?: boolean } = {}) =>
  z
    .string()
    .superRefine((value, context) => {
      if (options.optional && value === "") return;
      const problem = addressProblem(value);
      if (problem) context.addIssue({ code: "custom", message: `expected ${ADDRESS_FORMS}: ${problem}` });
    })
    .default(fallback);

/** A positive integer with a default, for limits and sizes. */
export const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);

/** "true"/"false"/"1"/"0" from the environment. */
export const boolean = (fallback: boolean) =>
  z
    .enum(["true", "false", "1", "0", "yes", "no"])
    .default(fallback ? "true" : "false")
    .transform((value) => value === "true" || value === "1" || value === "yes");

/** Settings every service has. */
export const baseConfigShape = {
  TOOLPLANE_HOST: z.string().min(1).default("127.0.0.1"),
  TOOLPLANE_LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  TOOLPLANE_SHUTDOWN_GRACE_MS: positiveInt(10_000),
  /**
   * Prometheus /metrics port: unset (the default) serves no metrics, so `make run` starts four services
   * without port clashes; 0 binds an ephemeral port (logged as "metrics listening", used by tests).
   */
  TOOLPLANE_METRICS_PORT: z.coerce.number().int().min(0).max(65535).optional(),
  /** Where proto/ is, for reflection; unset: found by walking up from the runtime's own files. */
  TOOLPLANE_PROTO_DIR: z.string().min(1).optional(),
};

/**
 * Reads the environment once and validates it. Every bad variable is named on
 * its own line so a failed start-up says exactly what to fix.
 */
export function loadConfig<Shape extends z.ZodRawShape>(
  shape: Shape,
  env: NodeJS.ProcessEnv = process.env,
): z.infer<z.ZodObject<Shape>> {
  const schema = z.object(shape);
  const present: Record<string, string> = {};
  for (const key of Object.keys(shape)) {
    const value = env[key];
    if (value !== undefined && value !== "") present[key] = value;
  }
  const parsed = schema.safeParse(present);
  if (parsed.success) return parsed.data;
  const problems = parsed.error.issues.map((issue) => {
    const name = issue.path.join(".");
    // Secrets are named, never echoed.
    const value = /TOKEN|KEY|SECRET|PASSWORD/.test(name) ? undefined : present[name];
    return `invalid environment variable ${name}${value === undefined ? "" : `=${JSON.stringify(value)}`}: ${issue.message}`;
  });
  throw new ConfigError(problems);
}
