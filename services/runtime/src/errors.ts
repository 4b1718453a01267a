import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { ErrorClass, type ToolError } from "../../../generated/toolplane/common/v1/common.js";
import { errorMessage } from "./error-message.js";

/** Trailing-metadata keys that carry the error class across process boundaries. */
export const ERROR_CLASS_KEY = "toolplane-error-class";
export const RETRY_AFTER_KEY = "toolplane-retry-after-ms";

export type ErrorClassName = "MODEL" | "INFRASTRUCTURE";

export { errorMessage };

/** Error class <-> wire enum, in one table. */
const ERROR_CLASS_WIRE: Record<ErrorClassName, ErrorClass> = {
  MODEL: ErrorClass.ERROR_CLASS_MODEL,
  INFRASTRUCTURE: ErrorClass.ERROR_CLASS_INFRASTRUCTURE,
};

/** The class name of an in-band error's wire enum; undefined when unset. */
export function errorClassOf(error: Pick<ToolError, "errorClass"> | undefined): ErrorClassName | undefined {
  if (error === undefined) return undefined;
  for (const [name, wire] of Object.entries(ERROR_CLASS_WIRE)) {
    if (wire === error.errorClass) return name as ErrorClassName;
  }
  return undefined;
}

export interface ToolplaneErrorOptions {
  errorClass?: ErrorClassName;
  retryAfterMs?: number;
  cause?: unknown;
}

/**
 * Base of every domain error. Domain code throws these; the gRPC layer maps them
 * to a status in one place (toServiceError) so a caller can always tell the
 * model's fault from the infrastructure's.
 */
export abstract class ToolplaneError extends Error {
  abstract readonly code: status;
  readonly errorClass: ErrorClassName;
  readonly retryAfterMs: number | undefined;

  constructor(message: string, defaultClass: ErrorClassName, options: ToolplaneErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = new.target.name;
    this.errorClass = options.errorClass ?? defaultClass;
    this.retryAfterMs = options.retryAfterMs;
  }

  get retryable(): boolean {
    return this.errorClass === "INFRASTRUCTURE" && RETRYABLE_CODES.has(this.code);
  }
}

const RETRYABLE_CODES = new Set<status>([status.UNAVAILABLE, status.RESOURCE_EXHAUSTED, status.DEADLINE_EXCEEDED]);

/** The caller's arguments are wrong. Model fault unless stated otherwise. */
export class InvalidArgumentError extends ToolplaneError {
  readonly code = status.INVALID_ARGUMENT;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "MODEL", options);
  }
}

export class NotFoundError extends ToolplaneError {
  readonly code = status.NOT_FOUND;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "MODEL", options);
  }
}

/** A precondition of the system state does not hold (e.g. a frozen cache miss). */
export class FailedPreconditionError extends ToolplaneError {
  readonly code = status.FAILED_PRECONDITION;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "INFRASTRUCTURE", options);
  }
}

/** Overloaded or a quota hit. Infrastructure unless the model's own usage caused it. */
export class ResourceExhaustedError extends ToolplaneError {
  readonly code = status.RESOURCE_EXHAUSTED;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "INFRASTRUCTURE", options);
  }
}

export class DeadlineExceededError extends ToolplaneError {
  readonly code = status.DEADLINE_EXCEEDED;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "INFRASTRUCTURE", options);
  }
}

/**
 * The caller went away: INFRASTRUCTURE, nothing the model did. Cancellation is
 * its own error, never a DeadlineExceededError.
 */
export class CancelledError extends ToolplaneError {
  readonly code = status.CANCELLED;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "INFRASTRUCTURE", options);
  }
}

/** A dependency (sandbox, provider, service) is down or died. */
export class UnavailableError extends ToolplaneError {
  readonly code = status.UNAVAILABLE;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "INFRASTRUCTURE", options);
  }
}

export class UnauthenticatedError extends ToolplaneError {
  readonly code = status.UNAUTHENTICATED;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "INFRASTRUCTURE", options);
  }
}

/** A bug of ours. */
export class InternalError extends ToolplaneError {
  readonly code = status.INTERNAL;
  constructor(message: string, options?: ToolplaneErrorOptions) {
    super(message, "INFRASTRUCTURE", options);
  }
}

/**
 * Turns any thrown value into a ServiceError for grpc-js. Unknown errors are
 * INTERNAL/INFRASTRUCTURE: an unexpected exception is never the model's fault.
 */
export function toServiceError(error: unknown): Partial<ServiceError> & { code: status; details: string } {
  const mapped =
    error instanceof ToolplaneError
      ? error
      : isServiceError(error)
        ? fromServiceError(error)
        : new InternalError(errorMessage(error));
  const metadata = new Metadata();
  metadata.set(ERROR_CLASS_KEY, mapped.errorClass);
  if (mapped.retryAfterMs !== undefined) metadata.set(RETRY_AFTER_KEY, String(mapped.retryAfterMs));
  return { code: mapped.code, details: mapped.message, metadata };
}

export function isServiceError(error: unknown): error is ServiceError {
  return (
    typeof error === "object" &&
    error !== null &&
    "code" in error &&
    typeof (error as { code: unknown }).code === "number" &&
    "metadata" in error
  );
}

class RemoteError extends ToolplaneError {
  constructor(
    readonly code: status,
    message: string,
    options: ToolplaneErrorOptions,
  ) {
    super(message, "INFRASTRUCTURE", options);
  }
}

type ErrorConstructor = new (message: string, options?: ToolplaneErrorOptions) => ToolplaneError;

/** gRPC status <-> error class, in one table: a remote error comes back as the same type it left as. */
const ERROR_BY_STATUS: Partial<Record<status, ErrorConstructor>> = {
  [status.INVALID_ARGUMENT]: InvalidArgumentError,
  [status.NOT_FOUND]: NotFoundError,
  [status.FAILED_PRECONDITION]: FailedPreconditionError,
  [status.RESOURCE_EXHAUSTED]: ResourceExhaustedError,
  [status.DEADLINE_EXCEEDED]: DeadlineExceededError,
  [status.CANCELLED]: CancelledError,
  [status.UNAVAILABLE]: UnavailableError,
  [status.UNAUTHENTICATED]: UnauthenticatedError,
  [status.INTERNAL]: InternalError,
};

/**
 * Reads a ServiceError received from another toolplane service back into a
 * ToolplaneError of the class its status names, keeping the remote's error
 * class. Errors without the class metadata come from the transport
 * (connection refused, deadline) and are INFRASTRUCTURE.
 */
export function fromServiceError(error: ServiceError): ToolplaneError {
  const classValue = error.metadata?.get(ERROR_CLASS_KEY)[0];
  const retryValue = error.metadata?.get(RETRY_AFTER_KEY)[0];
  const errorClass: ErrorClassName = classValue === "MODEL" ? "MODEL" : "INFRASTRUCTURE";
  const retryAfterMs = retryValue === undefined ? undefined : Number(retryValue);
  const message = error.details || error.message;
  return errorOfStatus(error.code, message, { errorClass, retryAfterMs, cause: error });
}

/** The ToolplaneError of a status (from the one table above), e.g. for an error that crossed a process boundary. */
export function errorOfStatus(code: status, message: string, options: ToolplaneErrorOptions = {}): ToolplaneError {
  const Typed = ERROR_BY_STATUS[code];
  return Typed ? new Typed(message, options) : new RemoteError(code, message, options);
}

/** Any thrown value as a ToolplaneError (for in-band reporting). */
export function asToolplaneError(error: unknown): ToolplaneError {
  if (error instanceof ToolplaneError) return error;
  if (isServiceError(error)) return fromServiceError(error);
  return new InternalError(errorMessage(error), { cause: error });
}

/** Fields of an in-band error that is not a thrown one (a tool's own failure, a parse error). */
export interface ToolErrorFields {
  errorClass: ErrorClassName;
  /** gRPC status name, e.g. "INVALID_ARGUMENT". */
  code: string;
  message: string;
}

/**
 * The in-band (response body) form of an error: the only way a ToolError is
 * built. Takes a thrown value, or the fields of a failure that was not thrown.
 */
export function toToolError(error: unknown): ToolError {
  if (isToolErrorFields(error)) {
    return {
      errorClass: ERROR_CLASS_WIRE[error.errorClass],
      code: error.code,
      message: error.message,
      retryable: false,
      retryAfterMs: 0,
    };
  }
  const mapped = asToolplaneError(error);
  return {
    errorClass: ERROR_CLASS_WIRE[mapped.errorClass],
    code: status[mapped.code] ?? "UNKNOWN",
    message: mapped.message,
    retryable: mapped.retryable,
    retryAfterMs: mapped.retryAfterMs ?? 0,
  };
}

function isToolErrorFields(value: unknown): value is ToolErrorFields {
  return (
    typeof value === "object" &&
    value !== null &&
    !(value instanceof Error) &&
    typeof (value as ToolErrorFields).code === "string" &&
    typeof (value as ToolErrorFields).message === "string" &&
    ((value as ToolErrorFields).errorClass === "MODEL" || (value as ToolErrorFields).errorClass === "INFRASTRUCTURE")
  );
}

/** Whether a signal was aborted for a deadline: by the gRPC server layer or the gateway, or AbortSignal.timeout. */
export function isDeadlineAbort(signal: AbortSignal | undefined): boolean {
  const reason: unknown = signal?.reason;
  return reason instanceof DeadlineExceededError || (reason instanceof Error && reason.name === "TimeoutError");
}

/**
 * The error for work stopped because its signal aborted, and the one place that tells the two causes apart:
 * DEADLINE_EXCEEDED when the signal was aborted for a deadline (its reason is a DeadlineExceededError, as the
 * gRPC server layer and the gateway set it, or AbortSignal.timeout's TimeoutError), CANCELLED otherwise (the
 * caller went away).
 */
export function stoppedError(signal: AbortSignal | undefined, message: string, cause?: unknown): ToolplaneError {
  const options = cause === undefined ? undefined : { cause };
  return isDeadlineAbort(signal) ? new DeadlineExceededError(message, options) : new CancelledError(message, options);
}
