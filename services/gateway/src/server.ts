import type { ToolGatewayServer } from "../../../generated/toolplane/gateway/v1/gateway.js";
import type { Logger } from "../../runtime/src/index.js";

export function createToolGatewayImplementation(_logger: Logger): Partial<ToolGatewayServer> {
  return {};
}
