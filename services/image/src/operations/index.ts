import type { Operation } from "../../../../generated/toolplane/image/v1/image.js";
import { InvalidArgumentError, OPERATION_KINDS, type OperationKind } from "../../../runtime/src/index.js";
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

/** Validates one operation's arguments (`field` names it in errors) and returns its step. */
type Compiler<K extends OperationKind> = (op: NonNullable<Operation[K]>, field: string, limits: ImageLimits) => Step;

/**
 * The registry of operations, one entry per kind of the proto's `oneof op`
 * (OPERATION_KINDS, the list the gateway and the JavaScript host read too).
 * Typed over every kind: an operation added to the proto does not compile
 * until it is registered here, so none can be listed yet unreachable.
 */
const COMPILERS: { [K in OperationKind]: Compiler<K> } = {
  crop: compileCrop,
  zoom: compileZoom,
  rotate: compileRotate,
  flip: compileFlip,
  resize: compileResize,
  adjust: compileAdjust,
  sharpen: compileSharpen,
  blur: compileBlur,
  normalize: compileNormalize,
  grayscale: (_op, field) => compileGrayscale(field),
  threshold: compileThreshold,
  invert: (_op, field) => compileInvert(field),
  annotate: compileAnnotate,
};

function compileKind<K extends OperationKind>(
  kind: K,
  op: NonNullable<Operation[K]>,
  field: string,
  limits: ImageLimits,
) {
  return COMPILERS[kind](op, `${field}.${kind}`, limits);
}

/** Validates one operation of the pipeline (field prefix `operations[i]`) and returns its step. */
export function compileOperation(operation: Operation, index: number, limits: ImageLimits): Step {
  const field = `operations[${index}]`;
  for (const kind of OPERATION_KINDS) {
    const op = operation[kind];
    if (op) return compileKind(kind, op, field, limits);
  }
  throw new InvalidArgumentError(`${field} has no operation set`);
}
