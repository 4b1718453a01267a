import type { SearchServiceServer } from "../../../generated/toolplane/search/v1/search.js";
import type { Logger } from "../../runtime/src/index.js";

export function createSearchServiceImplementation(_logger: Logger): Partial<SearchServiceServer> {
  return {};
}
