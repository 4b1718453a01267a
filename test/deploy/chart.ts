import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Deployment, type IDeployment, type IStatefulSet, StatefulSet } from "kubernetes-models/apps/v1";
import { HorizontalPodAutoscaler, type IHorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import { type INetworkPolicy, Ingress, NetworkPolicy } from "kubernetes-models/networking.k8s.io/v1";
import { type IPodDisruptionBudget, PodDisruptionBudget } from "kubernetes-models/policy/v1";
import {
  ConfigMap,
  type IConfigMap,
  type IContainer,
  type IPod,
  type IPodSpec,
  type IService,
  Pod,
  Secret,
  Service,
  ServiceAccount,
} from "kubernetes-models/v1";
import { parseAllDocuments } from "yaml";
import { distRoot } from "../support/processes.js";
import { helmBinary } from "./kube-tools.js";

/**
 * Renders the chart with the real helm binary and checks the result. The check functions return a list of
 * problems (empty = fine) instead of asserting, so a test can also prove that a weakened chart is caught.
 */

export const repoRoot = join(distRoot, "..");
export const chartDir = join(repoRoot, "helm", "toolplane");
/** Kubernetes version of the kubernetes-models schemas (4.5.1 = 1.27), also the chart's minimum. */
export const KUBE_VERSION = "1.27.0";
export const RELEASE = "tp";
export const NAMESPACE = "toolplane";

export const SERVICES = {
  gateway: { port: 50051, grpcService: "toolplane.gateway.v1.ToolGateway" },
  image: { port: 50052, grpcService: "toolplane.image.v1.ImageService" },
  code: { port: 50053, grpcService: "toolplane.code.v1.CodeService" },
  search: { port: 50054, grpcService: "toolplane.search.v1.SearchService" },
} as const;
export type ServiceName = keyof typeof SERVICES;
export const SERVICE_NAMES = Object.keys(SERVICES) as ServiceName[];

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

export function helm(args: string[]): string {
  try {
    return execFileSync(helmBinary(), args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
  } catch (error) {
    const failure = error as { stdout?: string; stderr?: string; message: string };
    throw new Error(`helm ${args.join(" ")} failed:\n${failure.stdout ?? ""}${failure.stderr ?? failure.message}`);
  }
}

/** `helm template` with the given extra arguments (-f FILE, --set K=V), parsed into manifests. */
export function render(extraArgs: string[]): Manifest[] {
  const output = helm([
    "template",
    RELEASE,
    chartDir,
    "--namespace",
    NAMESPACE,
    "--kube-version",
    KUBE_VERSION,
    ...extraArgs,
  ]);
  const manifests: Manifest[] = [];
  for (const document of parseAllDocuments(output)) {
    if (document.errors.length > 0) throw new Error(`helm rendered invalid YAML: ${document.errors[0]?.message}`);
    const value = document.toJS() as Manifest | null;
    if (value !== null) manifests.push(value);
  }
  return manifests;
}

/**
 * templates/NOTES.txt as `helm install` would print it. `helm template` skips NOTES.txt, so a copy of the chart
 * renders it through a probe template that reads it as a file and expands it with tpl.
 */
export function renderNotes(extraArgs: string[]): string {
  const copy = mkdtempSync(join(tmpdir(), "toolplane-chart-"));
  try {
    cpSync(chartDir, copy, { recursive: true });
    cpSync(join(copy, "templates", "NOTES.txt"), join(copy, "notes-source.txt"));
    writeFileSync(
      join(copy, "templates", "notes-probe.yaml"),
      'notes: {{ tpl (.Files.Get "notes-source.txt") . | toJson }}\n',
    );
    const output = helm([
      "template",
      RELEASE,
      copy,
      "--namespace",
      NAMESPACE,
      "--kube-version",
      KUBE_VERSION,
      "--show-only",
      "templates/notes-probe.yaml",
      ...extraArgs,
    ]);
    const probe = parseAllDocuments(output)
      .map((document) => document.toJS() as { notes?: string } | null)
      .find((value) => value?.notes !== undefined);
    if (!probe?.notes) throw new Error(`NOTES.txt rendered nothing:\n${output}`);
    return probe.notes;
  } finally {
    rmSync(copy, { recursive: true, force: true });
  }
}

export function ofKind<T>(manifests: Manifest[], kind: string): (T & Manifest)[] {
  return manifests.filter((manifest) => manifest.kind === kind) as (T & Manifest)[];
}

/** Every kind the chart may render, with its kubernetes-models class (JSON schema of Kubernetes 1.27). */
const MODELS: Record<string, new (data: never) => { validate(): void }> = {
  "v1/ConfigMap": ConfigMap,
  "v1/Secret": Secret,
  "v1/Service": Service,
  "v1/ServiceAccount": ServiceAccount,
  "v1/Pod": Pod,
  "apps/v1/Deployment": Deployment,
  "apps/v1/StatefulSet": StatefulSet,
  "autoscaling/v2/HorizontalPodAutoscaler": HorizontalPodAutoscaler,
  "policy/v1/PodDisruptionBudget": PodDisruptionBudget,
  "networking.k8s.io/v1/NetworkPolicy": NetworkPolicy,
  "networking.k8s.io/v1/Ingress": Ingress,
};

interface ServiceMonitorSpec {
  selector?: { matchLabels?: Record<string, string> };
  endpoints?: { port?: string; path?: string }[];
}

/**
 * Validates every manifest against its Kubernetes schema. ServiceMonitor is a prometheus-operator CRD without a
 * schema here: it must select a rendered Service that has the named port.
 */
export function schemaProblems(manifests: Manifest[]): string[] {
  const problems: string[] = [];
  for (const manifest of manifests) {
    const where = `${manifest.kind} ${manifest.metadata?.name}`;
    if (manifest.apiVersion === "monitoring.coreos.com/v1" && manifest.kind === "ServiceMonitor") {
      const spec = manifest.spec as ServiceMonitorSpec | undefined;
      const services = ofKind<IService>(manifests, "Service").filter((service) =>
        labelsMatch(spec?.selector?.matchLabels, service.metadata.labels),
      );
      if (services.length === 0) problems.push(`${where}: selects no rendered Service`);
      if (!spec?.endpoints?.length) problems.push(`${where}: has no endpoints`);
      for (const endpoint of spec?.endpoints ?? []) {
        if (!services.every((service) => service.spec?.ports?.some((port) => port.name === endpoint.port))) {
          problems.push(`${where}: a selected Service has no port named ${endpoint.port}`);
        }
      }
      continue;
    }
    const Model = MODELS[`${manifest.apiVersion}/${manifest.kind}`];
    if (!Model) {
      problems.push(`${where}: ${manifest.apiVersion} ${manifest.kind} is not a kind this check knows`);
      continue;
    }
    try {
      new Model(manifest as never).validate();
    } catch (error) {
      problems.push(`${where}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  return problems;
}

function labelsMatch(
  selector: Record<string, string> | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([key, value]) => labels?.[key] === value);
}

function componentOf(manifest: Manifest): string | undefined {
  return manifest.metadata.labels?.["app.kubernetes.io/component"];
}

export function deploymentOf(manifests: Manifest[], service: ServiceName): IDeployment & Manifest {
  const found = ofKind<IDeployment>(manifests, "Deployment").find((deployment) => componentOf(deployment) === service);
  if (!found) throw new Error(`no Deployment for ${service}`);
  return found;
}

function podSpecOf(workload: IDeployment | IStatefulSet | IPod): IPodSpec {
  const spec =
    workload.kind === "Pod" ? (workload as IPod).spec : (workload as IDeployment | IStatefulSet).spec?.template.spec;
  if (!spec) throw new Error(`workload ${workload.metadata?.name} has no pod spec`);
  return spec;
}

function configMapEnv(manifests: Manifest[], container: IContainer): Record<string, string> {
  const env: Record<string, string> = {};
  for (const source of container.envFrom ?? []) {
    const name = source.configMapRef?.name;
    const configMap = ofKind<IConfigMap>(manifests, "ConfigMap").find((candidate) => candidate.metadata.name === name);
    Object.assign(env, configMap?.data ?? {});
  }
  return env;
}

/** The environment a container sees: its ConfigMaps, then its literal env (which wins, as in Kubernetes). */
export function containerEnv(manifests: Manifest[], container: IContainer): Record<string, string> {
  const env = configMapEnv(manifests, container);
  for (const variable of container.env ?? []) if (variable.value !== undefined) env[variable.name] = variable.value;
  return env;
}

/**
 * Non-root, read-only root filesystem, every capability dropped, no privilege escalation, seccomp RuntimeDefault,
 * a writable /tmp from an emptyDir, no service-account token, and requests and limits, for every container of every
 * workload.
 */
export function securityProblems(manifests: Manifest[]): string[] {
  const problems: string[] = [];
  const workloads = [
    ...ofKind<IDeployment>(manifests, "Deployment"),
    ...ofKind<IStatefulSet>(manifests, "StatefulSet"),
    // The helm test hook's pod runs in the release too.
    ...ofKind<IPod>(manifests, "Pod"),
  ];
  if (workloads.length === 0) problems.push("no workload rendered");
  for (const workload of workloads) {
    const where = `${workload.kind} ${workload.metadata.name}`;
    const pod = podSpecOf(workload);
    if (pod.automountServiceAccountToken !== false)
      problems.push(`${where}: automountServiceAccountToken is not false`);
    if (pod.hostNetwork || pod.hostPID || pod.hostIPC) problems.push(`${where}: shares a host namespace`);
    const podContext = pod.securityContext ?? {};
    const containers = [...(pod.initContainers ?? []), ...pod.containers];
    for (const container of containers) {
      const at = `${where} container ${container.name}`;
      const context = container.securityContext ?? {};
      if ((context.runAsNonRoot ?? podContext.runAsNonRoot) !== true) problems.push(`${at}: runAsNonRoot is not true`);
      if ((context.runAsUser ?? podContext.runAsUser) === 0) problems.push(`${at}: runs as user 0`);
      if (context.readOnlyRootFilesystem !== true) problems.push(`${at}: readOnlyRootFilesystem is not true`);
      if (context.allowPrivilegeEscalation !== false) problems.push(`${at}: allowPrivilegeEscalation is not false`);
      if (context.privileged === true) problems.push(`${at}: privileged`);
      if (!(context.capabilities?.drop ?? []).includes("ALL")) problems.push(`${at}: capabilities.drop lacks ALL`);
      if ((context.capabilities?.add ?? []).length > 0) problems.push(`${at}: adds capabilities`);
      const seccomp = context.seccompProfile?.type ?? podContext.seccompProfile?.type;
      if (seccomp !== "RuntimeDefault")
        problems.push(`${at}: seccompProfile is ${seccomp ?? "unset"}, not RuntimeDefault`);
      const tmp = container.volumeMounts?.find((mount) => mount.mountPath === "/tmp");
      const tmpVolume = pod.volumes?.find((volume) => volume.name === tmp?.name);
      if (!tmpVolume?.emptyDir) problems.push(`${at}: /tmp is not an emptyDir`);
      for (const kind of ["requests", "limits"] as const) {
        const resources = container.resources?.[kind];
        if (!resources?.cpu || !resources.memory) problems.push(`${at}: resources.${kind} lacks cpu or memory`);
      }
    }
  }
  return problems;
}

/**
 * Every enabled toolplane service: native gRPC probes against grpc.health.v1 on its port (readiness asks for the
 * service by name), TOOLPLANE_HOST 0.0.0.0, TOOLPLANE_GRPC_PORT equal to the container port, a preStop pause and a
 * termination grace period longer than preStop + TOOLPLANE_SHUTDOWN_GRACE_MS, a Service, an HPA and a PDB.
 */
export function serviceProblems(manifests: Manifest[], service: ServiceName): string[] {
  const problems: string[] = [];
  const deployment = deploymentOf(manifests, service);
  const pod = podSpecOf(deployment);
  const podLabels = deployment.spec?.template.metadata?.labels;
  const container = pod.containers.find((candidate) => candidate.name === service);
  if (!container) return [`${service}: no container named ${service}`];
  const grpcPort = container.ports?.find((port) => port.name === "grpc")?.containerPort;
  const env = containerEnv(manifests, container);
  const at = `${service}`;

  if (grpcPort !== SERVICES[service].port) problems.push(`${at}: grpc containerPort ${grpcPort}`);
  if (env.TOOLPLANE_GRPC_PORT !== String(grpcPort))
    problems.push(`${at}: TOOLPLANE_GRPC_PORT ${env.TOOLPLANE_GRPC_PORT}`);
  if (env.TOOLPLANE_HOST !== "0.0.0.0") problems.push(`${at}: TOOLPLANE_HOST ${env.TOOLPLANE_HOST}, not 0.0.0.0`);

  for (const kind of ["startupProbe", "readinessProbe", "livenessProbe"] as const) {
    const probe = container[kind];
    if (!probe?.grpc) problems.push(`${at}: ${kind} is not a gRPC probe`);
    else if (probe.grpc.port !== grpcPort) problems.push(`${at}: ${kind} probes port ${probe.grpc.port}`);
  }
  const readinessService = container.readinessProbe?.grpc?.service;
  if (readinessService !== SERVICES[service].grpcService)
    problems.push(`${at}: readiness asks for "${readinessService}"`);

  const preStop = container.lifecycle?.preStop?.exec?.command ?? [];
  const preStopSeconds = preStop[0] === "sleep" ? Number(preStop[1]) : Number.NaN;
  if (!Number.isFinite(preStopSeconds)) problems.push(`${at}: preStop is not a sleep (${preStop.join(" ")})`);
  const graceMs = Number(env.TOOLPLANE_SHUTDOWN_GRACE_MS);
  if (!Number.isFinite(graceMs)) problems.push(`${at}: TOOLPLANE_SHUTDOWN_GRACE_MS is not set`);
  const terminationMs = (pod.terminationGracePeriodSeconds ?? 30) * 1000;
  if (!(terminationMs > preStopSeconds * 1000 + graceMs)) {
    problems.push(
      `${at}: terminationGracePeriodSeconds ${terminationMs / 1000} s does not cover preStop ${preStopSeconds} s + drain ${graceMs} ms`,
    );
  }

  const serviceObject = ofKind<IService>(manifests, "Service").find((candidate) => componentOf(candidate) === service);
  if (!serviceObject || !labelsMatch(serviceObject.spec?.selector, podLabels))
    problems.push(`${at}: no Service selects the pods`);
  else if (!serviceObject.spec?.ports?.some((port) => port.port === grpcPort && port.targetPort === "grpc")) {
    problems.push(`${at}: the Service does not expose the grpc port`);
  }

  const hpa = ofKind<IHorizontalPodAutoscaler>(manifests, "HorizontalPodAutoscaler").find(
    (candidate) => candidate.spec?.scaleTargetRef.name === deployment.metadata.name,
  );
  if (!hpa?.spec) problems.push(`${at}: no HorizontalPodAutoscaler targets ${deployment.metadata.name}`);
  else {
    if (hpa.spec.scaleTargetRef.kind !== "Deployment")
      problems.push(`${at}: the HPA targets a ${hpa.spec.scaleTargetRef.kind}`);
    if ((hpa.spec.minReplicas ?? 1) > hpa.spec.maxReplicas) problems.push(`${at}: HPA minReplicas > maxReplicas`);
    if (deployment.spec?.replicas !== undefined) problems.push(`${at}: replicas is set although an HPA scales it`);
    if (!hpa.spec.metrics?.length) problems.push(`${at}: the HPA has no metric`);
  }

  const pdb = ofKind<IPodDisruptionBudget>(manifests, "PodDisruptionBudget").find((candidate) =>
    labelsMatch(candidate.spec?.selector?.matchLabels, podLabels),
  );
  if (!pdb?.spec) problems.push(`${at}: no PodDisruptionBudget selects the pods`);
  else if (pdb.spec.maxUnavailable === undefined && pdb.spec.minAvailable === undefined) {
    problems.push(`${at}: the PodDisruptionBudget sets neither maxUnavailable nor minAvailable`);
  }
  return problems;
}

/**
 * The code pods may open no connection: a NetworkPolicy selecting them has policy type Egress and no egress rule,
 * and no NetworkPolicy in the release allows them any egress (policies add up).
 */
export function codeEgressProblems(manifests: Manifest[]): string[] {
  const podLabels = deploymentOf(manifests, "code").spec?.template.metadata?.labels;
  const policies = ofKind<INetworkPolicy>(manifests, "NetworkPolicy").filter((policy) =>
    labelsMatch(policy.spec?.podSelector.matchLabels, podLabels),
  );
  const denying = policies.filter(
    (policy) => policy.spec?.policyTypes?.includes("Egress") && (policy.spec.egress ?? []).length === 0,
  );
  const problems: string[] = [];
  if (denying.length === 0) problems.push("code: no NetworkPolicy denies all egress from the code pods");
  for (const policy of policies) {
    if ((policy.spec?.egress ?? []).length > 0)
      problems.push(`code: NetworkPolicy ${policy.metadata.name} allows egress`);
  }
  return problems;
}
