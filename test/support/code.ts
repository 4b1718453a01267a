import assert from "node:assert/strict";
import {
  CodeServiceClient,
  type CreateSessionRequest,
  type ExecuteResponse,
  type Language,
  type Limits,
} from "../../generated/toolplane/code/v1/code.js";
import { ErrorClass } from "../../generated/toolplane/common/v1/common.js";
import { createClient, invoke } from "../../services/runtime/src/index.js";

/** A CodeService client with the calls tests make, defaulting sessions to one language and set of limits. */
export function codeClient(address: string, language: Language, defaults: { limits?: Limits; label: string }) {
  const client = createClient(CodeServiceClient, address);
  return {
    client,
    create: (request: Partial<CreateSessionRequest> = {}) =>
      invoke(client, client.createSession, {
        language,
        images: [],
        limits: defaults.limits,
        idleTtlSeconds: 0,
        label: defaults.label,
        ...request,
      }),
    execute: (sessionId: string, code: string, timeoutMs = 0, fixIndentation = false) =>
      invoke(client, client.execute, { sessionId, code, timeoutMs, fixIndentation }),
    reset: (sessionId: string) => invoke(client, client.resetSession, { sessionId }),
    close: (sessionId: string) => invoke(client, client.closeSession, { sessionId }),
  };
}

/** Asserts a cell failed as the model's fault, with the given canonical code and exception type. */
export function assertModelFailure(response: ExecuteResponse, code: string, type?: RegExp): void {
  assert.ok(response.error, `expected a failure, got stdout=${response.stdout} stderr=${response.stderr}`);
  assert.equal(response.error.errorClass, ErrorClass.ERROR_CLASS_MODEL);
  assert.equal(response.error.code, code, response.stderr);
  if (type) assert.match(response.error.type, type);
  assert.ok(response.stderr.includes(response.error.traceback), "the traceback is also in stderr");
}

export { assertRpcError } from "./rpc.js";
