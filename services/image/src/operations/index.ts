import type { Operation } from "../../../../generated/toolplane/image/v1/image.js";
import { InvalidArgumentError } from "../../../runtime/src/index.js";
import type { ImageLimits } from "../limits.js";
import { compileAnnotate } from "./annotate.js";
import { compileCrop, compileFlip, compileResize, compileRotate, compileZoom } from "./geometric.js";
import type { Step } from "./step.js";
import {
  compileAdjust,
  compileBlur,
  compileGrayscale,
  compileInvert,
  compileNormalize,
  compileSharpen,
  compileThreshold,
} from "./tone.js";

export type { Step } from "./step.js";

/** Validates one operation of the pipeline (field prefix `operations[i]`) and returns its step. */
export function compileOperation(operation: Operation, index: number, limits: ImageLimits): Step {
  const field = `operations[${index}]`;
  if (operation.crop) return compileCrop(operation.crop, `${field}.crop`);
  if (operation.zoom) return compileZoom(operation.zoom, `${field}.zoom`);
  if (operation.rotate) return compileRotate(operation.rotate, `${field}.rotate`);
  if (operation.flip) return compileFlip(operation.flip, `${field}.flip`);
  if (operation.resize) return compileResize(operation.resize, `${field}.resize`);
  if (operation.adjust) return compileAdjust(operation.adjust, `${field}.adjust`);
  if (operation.sharpen) return compileSharpen(operation.sharpen, `${field}.sharpen`);
  if (operation.blur) return compileBlur(operation.blur, `${field}.blur`);
  if (operation.normalize) return compileNormalize(operation.normalize, `${field}.normalize`);
  if (operation.grayscale) return compileGrayscale(`${field}.grayscale`);
  if (operation.threshold) return compileThreshold(operation.threshold, `${field}.threshold`);
  if (operation.invert) return compileInvert(`${field}.invert`);
  if (operation.annotate) return compileAnnotate(operation.annotate, `${field}.annotate`, limits);
  throw new InvalidArgumentError(`${field} has no operation set`);
}
