import {
  type CallScope,
  InternalError,
  ResourceExhaustedError,
  stoppedError,
  type ToolplaneError,
  UnauthenticatedError,
  UnavailableError,
} from "../../runtime/src/index.js";
import { backoffMs, CircuitBreaker, parseRetryAfter, sleep, TokenBucket } from "./resilience.js";

/** How one remote provider is reached and how hard we try. */
export interface HttpProviderSettings {
  name: string;
  baseUrl: string;
  /** Environment variable holding the key, named in auth error messages. */
  keyVariable: string;
  timeoutMs: number;
  maxRetries: number;
  backoffBaseMs: number;
  backoffCapMs: number;
  ratePerSecond: number;
  burst: number;
  breakerThreshold: number;
  breakerCooldownMs: number;
  /** Largest response body accepted. */
  maxResponseBytes: number;
}

export interface ProviderRequest {
  method: "GET" | "POST";
  path: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: unknown;
}

export interface JsonAnswer {
  body: unknown;
  queueMs: number;
}

/** Outcome of one HTTP attempt. */
type Attempt =
  | { ok: true; body: unknown }
  | {
      ok: false;
      error: ToolplaneError;
      /** Worth repeating (429, 5xx, timeout, connection failure). */
      retryable: boolean;
      /** Says the provider is unhealthy (feeds the circuit breaker). */
      unhealthy: boolean;
      retryAfterMs?: number;
    };

const fail = (error: ToolplaneError, retryable: boolean, unhealthy: boolean, retryAfterMs?: number): Attempt => ({
  ok: false,
  error,
  retryable,
  unhealthy,
  retryAfterMs,
});

/**
 * Pulls the provider's own explanation out of an error body. Providers disagree
 * on the shape: SerpAPI `{error}`, Brave `{error: {detail}}`, Tavily
 * `{detail: {error}}`, Serper `{message}`, Elasticsearch/OpenSearch `{error: {reason}}`.
 */
export function providerMessage(text: string): string {
  let message = text;
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    const error = body.error as Record<string, unknown> | string | undefined;
    const detail = body.detail as Record<string, unknown> | string | undefined;
    const candidates = [
      typeof error === "string" ? error : (error?.detail ?? error?.reason),
      typeof detail === "string" ? detail : detail?.error,
      body.message,
    ];
    const found = candidates.find((value): value is string => typeof value === "string" && value.length > 0);
    if (found !== undefined) message = found;
  } catch {
    // Not JSON (an HTML error page from a proxy, say): the raw text is the best we have.
  }
  const flat = message.replace(/\s+/g, " ").trim();
  return flat.length > 200 ? `${flat.slice(0, 200)}…` : flat;
}

/**
 * The HTTP side shared by every remote adapter: rate limit, per-attempt
 * timeout tied to the caller's deadline, retries with backoff and jitter that
 * honour Retry-After, a circuit breaker, and status codes mapped to toolplane
 * errors (always INFRASTRUCTURE: a provider problem is never the model's fault).
 */
export class ProviderHttpClient {
  readonly breaker: CircuitBreaker;
  private readonly bucket: TokenBucket;

  constructor(
    readonly settings: HttpProviderSettings,
    /** Statuses that mean "quota or plan limit", answered without retrying (e.g. Tavily 432/433). */
    private readonly quotaStatuses: readonly number[] = [],
  ) {
    this.breaker = new CircuitBreaker(settings.name, settings.breakerThreshold, settings.breakerCooldownMs);
    this.bucket = new TokenBucket(settings.name, settings.ratePerSecond, settings.burst);
  }

  async requestJson(request: ProviderRequest, scope: CallScope): Promise<JsonAnswer> {
    this.breaker.admit();
    let queueMs = 0;
    try {
      for (let attempt = 0; ; attempt += 1) {
        queueMs += await this.bucket.acquire(scope.signal, scope.deadlineMs);
        const outcome = await this.attempt(request, scope.signal);
        if (outcome.ok) {
          this.breaker.onSuccess();
          return { body: outcome.body, queueMs };
        }
        if (!outcome.retryable) {
          if (outcome.unhealthy) this.breaker.onFailure();
          throw outcome.error;
        }
        const delay = backoffMs(
          attempt + 1,
          this.settings.backoffBaseMs,
          this.settings.backoffCapMs,
          outcome.retryAfterMs,
        );
        const pastDeadline = scope.deadlineMs !== undefined && Date.now() + delay >= scope.deadlineMs;
        // A provider asking for a long pause: hand its hint to the caller instead of holding the call.
        const waitTooLong = (outcome.retryAfterMs ?? 0) > this.settings.backoffCapMs;
        if (attempt >= this.settings.maxRetries || pastDeadline || waitTooLong) {
          this.breaker.onFailure();
          throw outcome.error;
        }
        await sleep(delay, scope.signal);
      }
    } catch (error) {
      // Releases a half-open probe slot when the call ended without a verdict on
      // the provider (cancelled, bad key); harmless after onFailure.
      this.breaker.onNeutral();
      throw error;
    }
  }

  /** One HTTP exchange. Throws only when the caller gave up. */
  private async attempt(request: ProviderRequest, callerSignal: AbortSignal): Promise<Attempt> {
    const { name } = this.settings;
    const url = new URL(`${this.settings.baseUrl.replace(/\/+$/, "")}${request.path}`);
    for (const [key, value] of Object.entries(request.query ?? {})) url.searchParams.set(key, value);
    const headers: Record<string, string> = { accept: "application/json", ...request.headers };
    if (request.body !== undefined) headers["content-type"] = "application/json";
    const signal = AbortSignal.any([callerSignal, AbortSignal.timeout(this.settings.timeoutMs)]);

    let status: number;
    let text: string;
    let retryAfter: string | null;
    try {
      const response = await fetch(url, {
        method: request.method,
        headers,
        body: request.body === undefined ? undefined : JSON.stringify(request.body),
        signal,
      });
      status = response.status;
      retryAfter = response.headers.get("retry-after");
      text = await readCapped(response, this.settings.maxResponseBytes, name);
    } catch (error) {
      if (callerSignal.aborted)
        throw stoppedError(callerSignal, `search on ${name} stopped before the provider answered`);
      if (error instanceof UnavailableError) return fail(error, false, true);
      if (signal.aborted)
        return fail(
          new UnavailableError(
            `provider ${name} did not answer within ${this.settings.timeoutMs} ms (per-attempt timeout)`,
          ),
          true,
          true,
        );
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      return fail(
        new UnavailableError(
          `provider ${name} could not be reached: ${cause?.code ?? cause?.message ?? String(error)}`,
        ),
        true,
        true,
      );
    }

    if (status >= 200 && status < 300) {
      try {
        return { ok: true, body: JSON.parse(text) as unknown };
      } catch {
        return fail(
          new UnavailableError(`provider ${name} answered HTTP ${status} with a body that is not JSON`),
          false,
          true,
        );
      }
    }
    const message = providerMessage(text);
    if (status === 401 || status === 403)
      return fail(
        new UnauthenticatedError(
          `provider ${name} rejected the credentials (HTTP ${status}: ${message}); check ${this.settings.keyVariable}`,
        ),
        false,
        false,
      );
    const retryAfterMs = parseRetryAfter(retryAfter);
    if (status === 429)
      return fail(
        new ResourceExhaustedError(`provider ${name} is rate limiting or out of quota (HTTP 429: ${message})`, {
          // "Retry-After: 0" still means "not right now": hint at least one backoff step.
          retryAfterMs: Math.max(retryAfterMs ?? this.settings.backoffCapMs, this.settings.backoffBaseMs),
        }),
        true,
        true,
        retryAfterMs,
      );
    // 408: the provider gave up waiting for us, as transient as a 5xx.
    if (status >= 500 || status === 408)
      return fail(
        new UnavailableError(`provider ${name} failed (HTTP ${status}: ${message})`, { retryAfterMs }),
        true,
        true,
        retryAfterMs,
      );
    if (this.quotaStatuses.includes(status))
      return fail(
        new ResourceExhaustedError(`provider ${name} refused: plan or usage limit (HTTP ${status}: ${message})`),
        false,
        false,
      );
    // Any other 4xx means the request we built is wrong: our bug, or the provider changed its API.
    return fail(new InternalError(`provider ${name} rejected the request (HTTP ${status}: ${message})`), false, false);
  }
}

/**
 * Reads a body but stops (and cancels the transfer) past maxBytes, whether or
 * not the server declared a length: undefined means "too big".
 */
export async function readBodyCapped(response: Response, maxBytes: number): Promise<Uint8Array | undefined> {
  if (Number(response.headers.get("content-length") ?? "0") > maxBytes) {
    await response.body?.cancel();
    return undefined;
  }
  if (!response.body) return new Uint8Array();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of response.body) {
    total += chunk.byteLength;
    if (total > maxBytes) {
      await response.body.cancel().catch(() => {});
      return undefined;
    }
    chunks.push(chunk);
  }
  return new Uint8Array(Buffer.concat(chunks));
}

async function readCapped(response: Response, maxBytes: number, name: string): Promise<string> {
  const body = await readBodyCapped(response, maxBytes);
  if (body === undefined) throw new UnavailableError(`provider ${name} sent more than ${maxBytes} bytes (the limit)`);
  return new TextDecoder().decode(body);
}
