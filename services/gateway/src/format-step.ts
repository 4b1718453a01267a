/**
 * The model-format half of Step: picking the format, parsing the turn, and turning
 * the calls' results into the StepResponse the format's model expects. The gateway
 * runs the calls in between; nothing here does I/O.
 */
import { ErrorClass } from "../../../generated/toolplane/common/v1/common.js";
import {
  EpisodeEndReason,
  modelFormatToJSON,
  ResultStatus,
  StepOutcome,
  type StepRequest,
  type StepResponse,
  type ToolResult,
} from "../../../generated/toolplane/gateway/v1/gateway.js";
import { InvalidArgumentError } from "../../runtime/src/index.js";
import {
  type EpisodeEndReason as EpisodeEndReasonName,
  fidelityOf,
  formatByProto,
  formatEnumNames,
  type ModelFormat,
  type ParsedTurn,
  type ParseOptions,
  parseWith,
  type RenderedCall,
} from "./formats/index.js";

export interface ParsedStep {
  format: ModelFormat;
  options: ParseOptions;
  turn: ParsedTurn;
}

/** One call's result as the gateway produced it. */
export interface StepCallResult {
  result: ToolResult;
  /** The text is an error message, not the tool's output. */
  textIsError: boolean;
}

const EPISODE_END_REASONS: Record<EpisodeEndReasonName, EpisodeEndReason> = {
  no_code: EpisodeEndReason.EPISODE_END_REASON_NO_CODE,
  no_tool_call: EpisodeEndReason.EPISODE_END_REASON_NO_TOOL_CALL,
  code_failed: EpisodeEndReason.EPISODE_END_REASON_CODE_FAILED,
  search_failed: EpisodeEndReason.EPISODE_END_REASON_SEARCH_FAILED,
};

/** Why, in words, for StepResponse.error.message. */
const EPISODE_END_MESSAGES: Record<EpisodeEndReasonName, string> = {
  no_code: "the turn holds <code> but no complete <code> block with a non-empty ```python fence",
  no_tool_call: "the turn holds <tool_call> but no complete, non-empty <tool_call> block",
  code_failed: "the code backend failed",
  search_failed: "the search failed",
};

const EMPTY: StepResponse = {
  outcome: StepOutcome.STEP_OUTCOME_UNSPECIFIED,
  observation: "",
  images: [],
  results: [],
  answer: "",
  error: undefined,
  status: ResultStatus.RESULT_STATUS_OK,
  episodeEndReason: EpisodeEndReason.EPISODE_END_REASON_UNSPECIFIED,
};

/** The request's format (INVALID_ARGUMENT naming the known ones when unknown) and its parsed turn. */
export function parseStep(request: StepRequest): ParsedStep {
  const format = formatByProto(request.format);
  if (format === undefined) {
    throw new InvalidArgumentError(`format must be one of ${formatEnumNames(modelFormatToJSON)}`, {
      errorClass: "INFRASTRUCTURE",
    });
  }
  const options: ParseOptions = {
    fidelity: fidelityOf(format, request.fidelity),
    sampleIndex: request.sampleIndex ?? "",
  };
  const turn = parseWith(format, request.text, options);
  return { format, options, turn };
}

function modelError(message: string) {
  return {
    errorClass: ErrorClass.ERROR_CLASS_MODEL,
    code: "INVALID_ARGUMENT",
    message,
    retryable: false,
    retryAfterMs: 0,
  };
}

/** The response of a turn that runs no call: an answer, a parse error, an episode end, or nothing. */
export function responseWithoutCalls(turn: Exclude<ParsedTurn, { kind: "calls" }>): StepResponse {
  switch (turn.kind) {
    case "answer":
      return { ...EMPTY, outcome: StepOutcome.STEP_OUTCOME_ANSWER, answer: turn.answer };
    case "no_call":
      return { ...EMPTY, outcome: StepOutcome.STEP_OUTCOME_NO_CALL };
    case "parse_error":
      return {
        ...EMPTY,
        outcome: StepOutcome.STEP_OUTCOME_PARSE_ERROR,
        observation: turn.message,
        status: ResultStatus.RESULT_STATUS_MODEL_ERROR,
        error: modelError(turn.message),
      };
    case "episode_end":
      return {
        ...EMPTY,
        outcome: StepOutcome.STEP_OUTCOME_EPISODE_END,
        observation: turn.observation,
        episodeEndReason: EPISODE_END_REASONS[turn.reason],
        status: ResultStatus.RESULT_STATUS_MODEL_ERROR,
        error: modelError(`${EPISODE_END_MESSAGES[turn.reason]}: the reference environment ends the episode`),
      };
  }
}

const STATUS: Partial<Record<ResultStatus, RenderedCall["status"]>> = {
  [ResultStatus.RESULT_STATUS_OK]: "ok",
  [ResultStatus.RESULT_STATUS_MODEL_ERROR]: "model_error",
  [ResultStatus.RESULT_STATUS_INFRA_ERROR]: "infra_error",
};

/** The response once the calls ran: the format renders the observation or ends the episode. */
export function responseAfterCalls(step: ParsedStep, outcomes: StepCallResult[]): StepResponse {
  const results = outcomes.map((outcome) => outcome.result);
  const called: StepResponse = { ...EMPTY, outcome: StepOutcome.STEP_OUTCOME_TOOL_CALLED, results };
  const infra = results.find((result) => result.status === ResultStatus.RESULT_STATUS_INFRA_ERROR);
  const modelFailure = results.find((result) => result.status === ResultStatus.RESULT_STATUS_MODEL_ERROR);
  const worst = infra ?? modelFailure;
  const rendered = step.format.render(
    outcomes.map(({ result, textIsError }) => ({
      callId: result.callId,
      name: result.name,
      text: result.text,
      isError: textIsError,
      status: STATUS[result.status] ?? "infra_error",
    })),
    step.options,
  );
  switch (rendered.kind) {
    case "infrastructure":
      // Nothing is shown: the trainer masks or retries the sample.
      return { ...called, status: ResultStatus.RESULT_STATUS_INFRA_ERROR, error: infra?.error };
    case "episode_end":
      return {
        ...called,
        outcome: StepOutcome.STEP_OUTCOME_EPISODE_END,
        observation: rendered.observation,
        episodeEndReason: EPISODE_END_REASONS[rendered.reason],
        status: worst?.status ?? ResultStatus.RESULT_STATUS_OK,
        error: worst?.error,
      };
    case "observation":
      return {
        ...called,
        observation: rendered.text,
        images: rendered.showImages ? results.flatMap((result) => result.images) : [],
        status: infra
          ? ResultStatus.RESULT_STATUS_INFRA_ERROR
          : (modelFailure?.status ?? ResultStatus.RESULT_STATUS_OK),
        error: worst?.error,
      };
  }
}
