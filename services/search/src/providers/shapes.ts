import { z } from "zod";
import type { ProviderResult } from "../types.js";

export const text = z.string().nullish();

/** A result with the fields a provider left out filled in. */
export const result = (fields: Partial<ProviderResult> & Pick<ProviderResult, "title" | "url">): ProviderResult => ({
  snippet: "",
  date: "",
  score: 0,
  ...fields,
});
