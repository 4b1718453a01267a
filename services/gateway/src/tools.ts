import { NotFoundError } from "../../runtime/src/index.js";
import { codeTool } from "./tools/code.js";
import { imageProcessTool, zoomTool } from "./tools/image.js";
import { imageSearchTool, searchTool } from "./tools/search.js";
import type { ToolDefinition } from "./tools/tool.js";

export { codeTimeoutMs } from "./tools/code.js";
export {
  openAiSchema,
  type PreparedCall,
  resolveImageReference,
  type ToolContext,
  type ToolDefinition,
  type ToolOutput,
} from "./tools/tool.js";

/** Every tool, in the order ListTools gives them: adding a tool is one module under tools/ and one line here. */
export const TOOLS: readonly ToolDefinition[] = [
  zoomTool,
  codeTool(
    "code",
    "python",
    "Run Python code in the trajectory's stateful kernel (variables persist between calls). The input images are loaded as PIL images image_1, image_2, ...; plt.show() returns every open matplotlib figure as an image. PIL, numpy, matplotlib, cv2 and math are available; writing files is not allowed.",
  ),
  searchTool,
  imageSearchTool,
  imageProcessTool,
  codeTool(
    "javascript",
    "javascript",
    "Run JavaScript in the trajectory's stateful sandbox (variables persist between calls). The input images are bound as image_1, image_2, ...; no network or file access.",
  ),
];

/** Tools by name. */
export class ToolRegistry {
  private readonly byName: Map<string, ToolDefinition>;

  constructor(tools: readonly ToolDefinition[] = TOOLS) {
    this.byName = new Map(tools.map((tool) => [tool.name, tool]));
  }

  get(name: string): ToolDefinition | undefined {
    return this.byName.get(name);
  }

  /** The named tools (all when `names` is empty); an unknown name is NOT_FOUND. */
  list(names: string[] = []): ToolDefinition[] {
    if (names.length === 0) return [...this.byName.values()];
    return names.map((name) => {
      const tool = this.byName.get(name);
      if (!tool) {
        throw new NotFoundError(`names: unknown tool "${name}"; known: ${[...this.byName.keys()].join(", ")}`);
      }
      return tool;
    });
  }
}
