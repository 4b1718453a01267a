/**
 * Observation text of single tool results (ToolResult.text), as DeepEyesV2's
 * environment writes them (`prompt.py` RETURN_CODE_PROMPT, `request_search`).
 */

/** DeepEyesV2's code observation; `imageCount` placeholders, the Images line absent when 0. */
export function codeObservation(stdout: string, stderr: string, imageCount: number): string {
  const text = `Code execution result:\nstdout:\n\`\`\`\n${stdout}\n\`\`\`\n\nstderr:\n\`\`\`\n${stderr}\n\`\`\``;
  return imageCount > 0 ? `${text}\n\nImages:\n${"<image>".repeat(imageCount)}` : text;
}

export interface SearchHit {
  title: string;
  url: string;
  snippet: string;
  date: string;
}

/** Scraped video pages carry this line; the reference client drops it from every entry. */
const PLAYER_NOTICE = "Your browser can't play this video.";

function withoutPlayerNotice(entry: string): string {
  return entry.includes(PLAYER_NOTICE) ? entry.replaceAll(PLAYER_NOTICE, "") : entry;
}

/** DeepEyesV2's web search observation body (without the tool_response wrapper). */
export function searchObservation(query: string, hits: SearchHit[]): string {
  const entries = hits.map((hit, index) => {
    const date = hit.date !== "" ? `\nDate published: ${hit.date}` : "";
    const snippet = hit.snippet !== "" ? `\n${hit.snippet}` : "";
    return withoutPlayerNotice(`${index + 1}. [${hit.title}](${hit.url})${date}\n${snippet}`);
  });
  return `A Google search for '${query}' found ${hits.length} results:\n\n## Web Results\n${entries.join("\n\n")}`;
}

/** DeepEyesV2's reverse image search observation body: one `<image>` per thumbnail shown. */
export function imageSearchObservation(titles: string[]): string {
  const entries = titles.map((title, index) => withoutPlayerNotice(`${index + 1}. <image>\n[${title}] \n`));
  return `A Google image search for the image found ${titles.length} results:\n\n## Web Results\n${entries.join("\n\n")}`;
}

/** The text a model sees for a failed call whose tool has no own error text. */
export function modelErrorText(message: string): string {
  return `Error: ${message}`;
}

export const ZOOM_TOOL = "image_zoom_in_tool";
export const ZOOM_INVALID = "Error: ZOOM IN ARGUMENTS ARE INVALID";
