import type { CodeServiceServer } from "../../../generated/toolplane/code/v1/code.js";
import type { Logger } from "../../runtime/src/index.js";

export function createCodeServiceImplementation(_logger: Logger): Partial<CodeServiceServer> {
  return {};
}
