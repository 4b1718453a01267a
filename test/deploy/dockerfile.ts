import { cpSync, existsSync, mkdirSync, realpathSync, statSync, symlinkSync } from "node:fs";
import { basename, dirname, join, relative } from "node:path";

/**
 * A reader for the subset of Dockerfile syntax deploy/Dockerfile uses (ARG, FROM ... AS, ENV, WORKDIR, USER, COPY,
 * CMD, ENTRYPOINT, HEALTHCHECK), resolving what each stage inherits from the stage it is built FROM. Enough to check
 * the targets against the compiled code without a Docker engine.
 */

export interface Copy {
  /** The --from stage, or undefined for the build context. */
  from: string | undefined;
  sources: string[];
  destination: string;
}

export interface Stage {
  name: string;
  /** Base image (after ARG substitution), or the name of an earlier stage. */
  base: string;
  env: Record<string, string>;
  workdir: string;
  user: string | undefined;
  cmd: string[] | undefined;
  entrypoint: string[] | undefined;
  healthcheck: string[] | undefined;
  /** COPYs of this stage and the stages it is built from. */
  copies: Copy[];
}

function logicalLines(text: string): string[] {
  const lines: string[] = [];
  let current = "";
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (current === "" && (line === "" || line.startsWith("#"))) continue;
    if (line.startsWith("#")) continue;
    if (line.endsWith("\\")) {
      current += `${line.slice(0, -1).trim()} `;
      continue;
    }
    lines.push((current + line).trim());
    current = "";
  }
  if (current !== "") lines.push(current.trim());
  return lines;
}

/** CMD/ENTRYPOINT/HEALTHCHECK CMD in exec form (a JSON array); shell form is refused: it breaks signal delivery. */
function execForm(instruction: string, argument: string): string[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(argument);
  } catch {
    throw new Error(`${instruction} ${argument}: not in exec form (JSON array); the shell form would not pass SIGTERM`);
  }
  if (!Array.isArray(parsed) || !parsed.every((item) => typeof item === "string")) {
    throw new Error(`${instruction} ${argument}: exec form must be an array of strings`);
  }
  return parsed;
}

function parseEnv(argument: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const match of argument.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("(?:[^"\\]|\\.)*"|\S*)/g)) {
    const [, key, value] = match;
    if (key === undefined || value === undefined) continue;
    env[key] = value.startsWith('"') ? (JSON.parse(value) as string) : value;
  }
  return env;
}

function substitute(value: string, args: Record<string, string>): string {
  return value.replace(/\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)/g, (_, braced, bare) => {
    const name = (braced ?? bare) as string;
    return args[name] ?? "";
  });
}

export function parseDockerfile(text: string): Map<string, Stage> {
  const stages = new Map<string, Stage>();
  const globalArgs: Record<string, string> = {};
  let stage: Stage | undefined;
  for (const line of logicalLines(text)) {
    const space = line.indexOf(" ");
    const instruction = (space < 0 ? line : line.slice(0, space)).toUpperCase();
    const argument = space < 0 ? "" : line.slice(space + 1).trim();
    if (instruction === "FROM") {
      const match = /^(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?$/i.exec(argument);
      if (!match?.[1]) throw new Error(`cannot read FROM ${argument}`);
      const base = substitute(match[1], globalArgs);
      const name = match[2] ?? String(stages.size);
      const parent = stages.get(base);
      stage = {
        name,
        base,
        env: { ...(parent?.env ?? {}) },
        workdir: parent?.workdir ?? "/",
        user: parent?.user,
        cmd: parent?.cmd,
        entrypoint: parent?.entrypoint,
        healthcheck: parent?.healthcheck,
        copies: [...(parent?.copies ?? [])],
      };
      stages.set(name, stage);
      continue;
    }
    if (!stage) {
      if (instruction === "ARG") {
        const [key, value] = argument.split("=", 2);
        if (key) globalArgs[key] = value ?? "";
        continue;
      }
      throw new Error(`${instruction} before the first FROM`);
    }
    switch (instruction) {
      case "ENV":
        Object.assign(stage.env, parseEnv(argument));
        break;
      case "WORKDIR":
        stage.workdir = argument.startsWith("/") ? argument : `${stage.workdir.replace(/\/$/, "")}/${argument}`;
        break;
      case "USER":
        stage.user = argument;
        break;
      case "CMD":
        stage.cmd = execForm("CMD", argument);
        break;
      case "ENTRYPOINT":
        stage.entrypoint = execForm("ENTRYPOINT", argument);
        break;
      case "HEALTHCHECK": {
        const cmd = /\bCMD\s+(\[.*\])$/.exec(argument);
        stage.healthcheck = cmd?.[1] ? execForm("HEALTHCHECK CMD", cmd[1]) : undefined;
        break;
      }
      case "COPY": {
        const words = argument.split(/\s+/);
        const from = words.find((word) => word.startsWith("--from="))?.slice("--from=".length);
        const paths = words.filter((word) => !word.startsWith("--"));
        const destination = paths.pop();
        if (!destination || paths.length === 0) throw new Error(`cannot read COPY ${argument}`);
        const absolute = destination.startsWith("/")
          ? destination
          : `${stage.workdir.replace(/\/$/, "")}/${destination === "./" ? "" : destination}`.replace(/\/$/, "");
        stage.copies.push({ from, sources: paths, destination: absolute });
        break;
      }
      default:
        break;
    }
  }
  return stages;
}

/**
 * Lays out a target's files the way its COPY instructions would, under `root` (standing for the stage's WORKDIR),
 * so the target's command can run against exactly what the image holds. `sourceOf` maps a COPY source (a context
 * path, or an absolute path inside an earlier stage) to a path on this machine. node_modules is linked, not copied.
 */
export function materializeStage(
  stage: Stage,
  root: string,
  sourceOf: (from: string | undefined, source: string) => string,
): void {
  for (const copy of stage.copies) {
    if (!copy.destination.startsWith(stage.workdir)) {
      throw new Error(`COPY to ${copy.destination} is outside WORKDIR ${stage.workdir}`);
    }
    const destination = join(root, relative(stage.workdir, copy.destination));
    for (const source of copy.sources) {
      const local = sourceOf(copy.from, source);
      if (!existsSync(local)) throw new Error(`COPY source ${source} (${local}) does not exist`);
      const isDirectory = statSync(local).isDirectory();
      const target =
        !isDirectory && copy.destination === stage.workdir ? join(destination, basename(local)) : destination;
      mkdirSync(dirname(target), { recursive: true });
      if (basename(local) === "node_modules") symlinkSync(realpathSync(local), target, "dir");
      else cpSync(local, target, { recursive: true });
    }
  }
}
