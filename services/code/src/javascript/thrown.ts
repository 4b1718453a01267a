import type { CodeFailure } from "../backend.js";

const MAX_TRACEBACK_CHARS = 8192;

/** Frames past the isolate boundary are the host's; prelude frames (console, display) are noise to the model. */
const isBoundary = (line: string) => line.includes("<isolated-vm boundary>");
const isPreludeFrame = (line: string) => line.includes("(<isolated-vm>:");

/** The model-facing form of an exception the cell let escape. */
export function describeThrown(thrown: unknown): CodeFailure {
  if (thrown instanceof Error) {
    const stack = typeof thrown.stack === "string" ? thrown.stack : `${thrown.name}: ${thrown.message}`;
    const lines = stack.split("\n");
    const cut = lines.findIndex(isBoundary);
    const traceback = (cut === -1 ? lines : lines.slice(0, cut))
      .filter((line) => !isPreludeFrame(line))
      .join("\n")
      .slice(0, MAX_TRACEBACK_CHARS);
    // A subclass (class MyError extends Error) arrives as a plain Error; its stack still names it.
    const named = /^([A-Za-z_$][\w$]*):/.exec(lines[0] ?? "")?.[1];
    return { code: "ABORTED", type: named ?? thrown.name, message: thrown.message, traceback };
  }
  let rendered: string;
  try {
    rendered = JSON.stringify(thrown) ?? String(thrown);
  } catch {
    rendered = String(thrown);
  }
  return { code: "ABORTED", type: "Uncaught", message: rendered, traceback: `Uncaught ${rendered}` };
}
