import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { Metadata, type ServiceError, status } from "@grpc/grpc-js";
import { ErrorClass } from "../../../generated/toolplane/common/v1/common.js";
import { limitError } from "./arguments.js";
import {
  CancelledError,
  DeadlineExceededError,
  ERROR_CLASS_KEY,
  errorClassOf,
  errorMessage,
  errorOfStatus,
  fromServiceError,
  InvalidArgumentError,
  ResourceExhaustedError,
  stoppedError,
  toServiceError,
  toToolError,
  UnavailableError,
} from "./errors.js";

function remote(error: Parameters<typeof toServiceError>[0]): ServiceError {
  const mapped = toServiceError(error);
  return Object.assign(new Error(mapped.details), { ...mapped, metadata: mapped.metadata ?? new Metadata() }) as never;
}

describe("errors", () => {
  it("errorMessage reads any thrown value", () => {
    assert.equal(errorMessage(new Error("boom")), "boom");
    assert.equal(errorMessage("text"), "text");
    assert.equal(errorMessage(42), "42");
  });

  it("a remote error comes back as the class its status names, keeping its error class", () => {
    const back = fromServiceError(remote(new InvalidArgumentError("x is wrong", { errorClass: "INFRASTRUCTURE" })));
    assert.ok(back instanceof InvalidArgumentError);
    assert.equal(back.errorClass, "INFRASTRUCTURE");
    assert.ok(fromServiceError(remote(new CancelledError("gone"))) instanceof CancelledError);
    assert.ok(fromServiceError(remote(new UnavailableError("down"))) instanceof UnavailableError);
    const model = remote(new InvalidArgumentError("bad"));
    assert.equal(model.metadata.get(ERROR_CLASS_KEY)[0], "MODEL");
  });

  it("cancellation is CANCELLED, a deadline DEADLINE_EXCEEDED, told apart by the signal's reason", () => {
    const cancelled = new AbortController();
    cancelled.abort(new CancelledError("caller left"));
    const expired = new AbortController();
    expired.abort(new DeadlineExceededError("deadline"));
    assert.equal(stoppedError(cancelled.signal, "stopped").code, status.CANCELLED);
    assert.equal(stoppedError(expired.signal, "stopped").code, status.DEADLINE_EXCEEDED);
  });

  it("AbortSignal.timeout is a deadline; an abort without a reason is the caller leaving", async () => {
    const timedOut = AbortSignal.timeout(1);
    await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(stoppedError(timedOut, "stopped").code, status.DEADLINE_EXCEEDED);
    const bare = new AbortController();
    bare.abort();
    const error = stoppedError(bare.signal, "stopped", "why");
    assert.ok(error instanceof CancelledError);
    assert.equal(error.cause, "why");
  });

  it("errorOfStatus is the status table's type for an error that crossed a process boundary", () => {
    const cancelled = errorOfStatus(status.CANCELLED, "gone", { errorClass: "INFRASTRUCTURE" });
    assert.ok(cancelled instanceof CancelledError);
    const model = errorOfStatus(status.RESOURCE_EXHAUSTED, "heap", { errorClass: "MODEL" });
    assert.ok(model instanceof ResourceExhaustedError);
    assert.equal(model.errorClass, "MODEL");
    assert.equal(errorOfStatus(status.ABORTED, "other").code, status.ABORTED);
  });

  it("toToolError builds every in-band error, thrown or not", () => {
    assert.deepEqual(toToolError({ errorClass: "MODEL", code: "INVALID_ARGUMENT", message: "bad box" }), {
      errorClass: ErrorClass.ERROR_CLASS_MODEL,
      code: "INVALID_ARGUMENT",
      message: "bad box",
      retryable: false,
      retryAfterMs: 0,
    });
    const thrown = toToolError(new UnavailableError("down", { retryAfterMs: 20 }));
    assert.equal(thrown.errorClass, ErrorClass.ERROR_CLASS_INFRASTRUCTURE);
    assert.equal(thrown.retryable, true);
    assert.equal(errorClassOf(thrown), "INFRASTRUCTURE");
    assert.equal(errorClassOf(undefined), undefined);
  });

  it("limits read the same everywhere: field, value and limit", () => {
    assert.equal(limitError("calls", 1025, 1024, "items").message, "calls has 1025 items, over the limit of 1024");
    assert.equal(
      limitError("image.data", 4_000_000, 1_000, "pixels", "2000x2000", { variable: "MAX" }).message,
      "image.data is 2000x2000 = 4000000 pixels, over the limit of 1000 (MAX)",
    );
  });
});
