import { ModelFormat } from "../../../generated/toolplane/gateway/v1/gateway.js";
import type { ModelFormatName } from "./formats.js";

/**
 * What Step needs to know about model formats beyond parsing and rendering:
 * the name of a proto enum value, the formats to name in an error, and
 * whether a failed round still shows its images. Kept here, apart from the
 * gateway, so the format registry can answer these from each format's module.
 */

const FORMAT_NAMES: Partial<Record<ModelFormat, ModelFormatName>> = {
  [ModelFormat.MODEL_FORMAT_DEEPEYES_V2]: "deepeyes-v2",
  [ModelFormat.MODEL_FORMAT_DEEPEYES_V1]: "deepeyes-v1",
  [ModelFormat.MODEL_FORMAT_HERMES]: "hermes",
  [ModelFormat.MODEL_FORMAT_OPENAI]: "openai",
};

/** The format a StepRequest names, or undefined when it names none the gateway knows. */
export function formatOf(format: ModelFormat): ModelFormatName | undefined {
  return FORMAT_NAMES[format];
}

/** The proto names of the known formats, for the error of an unknown one ("DEEPEYES_V2, ..."). */
export function formatChoices(): string {
  return Object.keys(FORMAT_NAMES)
    .map((value) => ModelFormat[Number(value)]?.replace(/^MODEL_FORMAT_/, ""))
    .join(", ");
}

/** Whether a round with a MODEL error still shows the images of its other calls. */
export function showsImagesWithModelError(format: ModelFormatName): boolean {
  // DeepEyes v1 shows only the error when a zoom fails, so no image goes with it.
  return format !== "deepeyes-v1";
}
