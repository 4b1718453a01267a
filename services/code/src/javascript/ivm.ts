import { createRequire } from "node:module";
import type IsolatedVM from "isolated-vm";

/** isolated-vm is a CommonJS native addon: loaded once, for every module of the engine. */
export const ivm = createRequire(import.meta.url)("isolated-vm") as typeof IsolatedVM;
