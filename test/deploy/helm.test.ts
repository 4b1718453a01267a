import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { IDeployment } from "kubernetes-models/apps/v1";
import type { IHorizontalPodAutoscaler } from "kubernetes-models/autoscaling/v2";
import type { IIngress } from "kubernetes-models/networking.k8s.io/v1";
import type { IPod, IService } from "kubernetes-models/v1";
import { parse } from "yaml";
import {
  chartDir,
  codeEgressProblems,
  containerEnv,
  deploymentOf,
  helm,
  type Manifest,
  ofKind,
  render,
  renderNotes,
  repoRoot,
  SERVICE_NAMES,
  SERVICES,
  schemaProblems,
  securityProblems,
  serviceProblems,
} from "./chart.js";

/** Default values, every ci/*.yaml values file, and one render that creates the provider-key Secret. */
const valuesFiles = readdirSync(join(chartDir, "ci"))
  .filter((name) => name.endsWith(".yaml"))
  .sort();
const renderCases: { name: string; args: string[] }[] = [
  { name: "default values", args: [] },
  ...valuesFiles.map((file) => ({ name: `ci/${file}`, args: ["-f", join(chartDir, "ci", file)] })),
  {
    name: "default values with an Ingress and a provider key",
    args: ["--set", "ingress.enabled=true", "--set", "searchProviders.braveKey=test-key"],
  },
];

function gatewayEnv(manifests: Manifest[]): Record<string, string> {
  const container = deploymentOf(manifests, "gateway").spec?.template.spec?.containers[0];
  assert.ok(container, "the gateway Deployment has a container");
  return containerEnv(manifests, container);
}

describe("helm chart helm/toolplane", () => {
  it("passes helm lint --strict with the default values and every ci values file", () => {
    helm(["lint", "--strict", chartDir]);
    for (const file of valuesFiles) helm(["lint", "--strict", chartDir, "-f", join(chartDir, "ci", file)]);
  });

  for (const renderCase of renderCases) {
    describe(renderCase.name, () => {
      const manifests = render(renderCase.args);

      it("renders only manifests that validate against the Kubernetes 1.27 schemas", () => {
        assert.ok(manifests.length > 0);
        assert.deepEqual(schemaProblems(manifests), []);
      });

      it("runs every container non-root, read-only, without capabilities, under seccomp RuntimeDefault", () => {
        assert.deepEqual(securityProblems(manifests), []);
      });

      it("gives each service gRPC health probes, a drain-aligned shutdown, a Service, an HPA and a PDB", () => {
        for (const service of SERVICE_NAMES) assert.deepEqual(serviceProblems(manifests, service), [], service);
      });

      it("denies all egress from the code service", () => {
        assert.deepEqual(codeEgressProblems(manifests), []);
      });

      it("points the gateway at every backend Service by name and port, and at every code pod through DNS", () => {
        const env = gatewayEnv(manifests);
        const services = ofKind<IService>(manifests, "Service");
        for (const backend of ["image", "search"] as const) {
          const address = env[`TOOLPLANE_${backend.toUpperCase()}_ADDR`];
          const service = services.find(
            (candidate) => candidate.metadata.labels?.["app.kubernetes.io/component"] === backend,
          );
          assert.ok(service, `a Service for ${backend}`);
          assert.equal(address, `${service.metadata.name}:${SERVICES[backend].port}`);
        }
        // The code tier is one pool: a headless Service (one DNS record per code pod) selecting the code pods.
        const headless = services.find(
          (candidate) => candidate.metadata.labels?.["app.kubernetes.io/component"] === "code-replicas",
        );
        assert.ok(headless, "a headless Service for the code pods");
        assert.equal(headless.spec?.clusterIP, "None");
        assert.equal(headless.spec?.selector?.["app.kubernetes.io/component"], "code");
        assert.equal(env.TOOLPLANE_CODE_ADDR, `dns:///${headless.metadata.name}:${SERVICES.code.port}`);
      });

      it("every Deployment's selector matches its pod labels", () => {
        for (const deployment of ofKind<IDeployment>(manifests, "Deployment")) {
          const labels = deployment.spec?.template.metadata?.labels ?? {};
          for (const [key, value] of Object.entries(deployment.spec?.selector.matchLabels ?? {})) {
            assert.equal(labels[key], value, `${deployment.metadata.name} ${key}`);
          }
        }
      });
    });
  }

  describe("values that change the deployment", () => {
    it("puts only the code pods under the runtime class (gVisor in the production values)", () => {
      const manifests = render(["-f", join(chartDir, "ci", "production-values.yaml")]);
      for (const service of SERVICE_NAMES) {
        const runtimeClass = deploymentOf(manifests, service).spec?.template.spec?.runtimeClassName;
        assert.equal(runtimeClass, service === "code" ? "gvisor" : undefined, service);
      }
    });

    it("exposes /metrics of every service to its ServiceMonitor and keeps the stateful tiers from scaling in", () => {
      const manifests = render(["-f", join(chartDir, "ci", "production-values.yaml")]);
      const monitors = ofKind<Manifest>(manifests, "ServiceMonitor");
      assert.equal(monitors.length, SERVICE_NAMES.length);
      for (const service of SERVICE_NAMES) {
        const container = deploymentOf(manifests, service).spec?.template.spec?.containers[0];
        assert.ok(container);
        assert.equal(containerEnv(manifests, container).TOOLPLANE_METRICS_PORT, "9464", service);
        assert.ok(
          container.ports?.some((port) => port.name === "metrics" && port.containerPort === 9464),
          service,
        );
      }
      const scaleDownPolicies = Object.fromEntries(
        ofKind<IHorizontalPodAutoscaler>(manifests, "HorizontalPodAutoscaler").map((hpa) => [
          hpa.metadata.labels?.["app.kubernetes.io/component"],
          hpa.spec?.behavior?.scaleDown?.selectPolicy,
        ]),
      );
      assert.deepEqual(scaleDownPolicies, {
        gateway: "Disabled",
        image: undefined,
        code: "Disabled",
        search: undefined,
      });
    });

    it("serves the search service's /retrieve port only when set: container port, env and Service port", () => {
      const searchOf = (manifests: Manifest[]) => {
        const container = deploymentOf(manifests, "search").spec?.template.spec?.containers[0];
        assert.ok(container);
        const service = ofKind<IService>(manifests, "Service").find(
          (item) => item.metadata?.labels?.["app.kubernetes.io/component"] === "search",
        );
        assert.ok(service);
        return { container, env: containerEnv(manifests, container), ports: service.spec?.ports ?? [] };
      };
      const off = searchOf(render([]));
      assert.equal(off.env.TOOLPLANE_SEARCH_RETRIEVE_PORT, undefined);
      assert.ok(!off.ports.some((port) => port.name === "retrieve"));
      const on = searchOf(render(["--set", "services.search.retrievePort=8000"]));
      assert.equal(on.env.TOOLPLANE_SEARCH_RETRIEVE_PORT, "8000");
      assert.ok(on.container.ports?.some((port) => port.name === "retrieve" && port.containerPort === 8000));
      assert.ok(
        on.ports.some((port) => port.name === "retrieve" && port.port === 8000 && port.targetPort === "retrieve"),
      );
      assert.throws(
        () => render(["--set", "services.search.retrievePort=50054"]),
        /retrievePort 50054 must differ from services.search.port/,
      );
      assert.throws(
        () => render(["--set", "services.search.retrievePort=http"]),
        /services\.search\.retrievePort: Invalid type/,
      );
    });

    it("routes the Ingress to the gateway's gRPC port", () => {
      const manifests = render(["--set", "ingress.enabled=true"]);
      const [ingress] = ofKind<IIngress>(manifests, "Ingress");
      const backend = ingress?.spec?.rules?.[0]?.http?.paths[0]?.backend.service;
      assert.equal(backend?.name, deploymentOf(manifests, "gateway").metadata.name);
      assert.equal(backend?.port?.name, "grpc");
      assert.equal(ingress?.metadata?.annotations?.["nginx.ingress.kubernetes.io/backend-protocol"], "GRPC");
    });

    it("wires the in-chart NATS and Jaeger into the services' environment", () => {
      const manifests = render(["-f", join(chartDir, "ci", "quickstart-values.yaml")]);
      const env = gatewayEnv(manifests);
      const services = ofKind<IService>(manifests, "Service").map((service) => service.metadata.name);
      const nats = new URL(env.TOOLPLANE_NATS_URL ?? "");
      assert.ok(services.includes(nats.hostname), `NATS URL ${nats} names a rendered Service`);
      const otlp = new URL(env.OTEL_EXPORTER_OTLP_ENDPOINT ?? "");
      assert.ok(services.includes(otlp.hostname), `OTLP endpoint ${otlp} names a rendered Service`);
      assert.equal(otlp.port, "4317");
      assert.equal(env.OTEL_SERVICE_NAME, "toolplane-gateway");
      assert.equal(env.OTEL_SDK_DISABLED, undefined);
    });

    it("turns the OpenTelemetry SDK off where spans have nowhere to go", () => {
      const defaults = render([]);
      assert.equal(gatewayEnv(defaults).OTEL_SDK_DISABLED, "true", "no collector configured");
      const withCollector = render(["--set", "telemetry.otlpEndpoint=http://collector:4317"]);
      assert.equal(gatewayEnv(withCollector).OTEL_SDK_DISABLED, undefined);
      const isolatedCode = deploymentOf(withCollector, "code").spec?.template.spec?.containers[0];
      assert.ok(isolatedCode);
      assert.equal(containerEnv(withCollector, isolatedCode).OTEL_SDK_DISABLED, "true", "code egress is denied");
    });

    it("reads provider keys from an existing Secret without rendering one", () => {
      const manifests = render(["--set", "searchProviders.existingSecret=my-keys"]);
      assert.equal(ofKind(manifests, "Secret").length, 0);
      const search = deploymentOf(manifests, "search").spec?.template.spec?.containers[0];
      const keyRefs = (search?.env ?? []).filter((variable) => variable.valueFrom?.secretKeyRef?.name === "my-keys");
      assert.deepEqual(keyRefs.map((variable) => variable.name).sort(), [
        "TOOLPLANE_SEARCH_BRAVE_KEY",
        "TOOLPLANE_SEARCH_SERPAPI_KEY",
        "TOOLPLANE_SEARCH_SERPER_KEY",
        "TOOLPLANE_SEARCH_TAVILY_KEY",
      ]);
    });

    it("stretches the termination grace period with the drain time", () => {
      const manifests = render(["--set", "shutdown.graceMs=45500", "--set", "shutdown.preStopSleepSeconds=3"]);
      const pod = deploymentOf(manifests, "image").spec?.template.spec;
      assert.equal(pod?.terminationGracePeriodSeconds, 3 + 46 + 5);
      assert.deepEqual(serviceProblems(manifests, "image"), []);
    });
  });

  describe("what an operator adds (ci/extensions-values.yaml)", () => {
    const manifests = render(["-f", join(chartDir, "ci", "extensions-values.yaml")]);
    const podSpec = (service: "gateway" | "search" | "code") => {
      const spec = deploymentOf(manifests, service).spec?.template.spec;
      assert.ok(spec, `${service} has a pod spec`);
      return spec;
    };

    it("puts commonLabels and commonAnnotations on every resource, the chart's own labels untouched", () => {
      for (const manifest of manifests) {
        const where = `${manifest.kind} ${manifest.metadata.name}`;
        assert.equal(manifest.metadata.labels?.team, "ml-infra", where);
        assert.equal(manifest.metadata.labels?.["app.kubernetes.io/name"], "toolplane", where);
        const annotations = (manifest.metadata as { annotations?: Record<string, string> }).annotations;
        assert.equal(annotations?.["example.com/owner"], "ml-infra@example.com", where);
      }
      const clash = render(["--set", "commonLabels.app\\.kubernetes\\.io/component=other"]);
      assert.equal(deploymentOf(clash, "code").metadata.labels?.["app.kubernetes.io/component"], "code");
    });

    it("labels the pods with podLabels, outside the selector", () => {
      const search = deploymentOf(manifests, "search");
      assert.equal(search.spec?.template.metadata?.labels?.["example.com/corpus"], "wiki-2026-11");
      assert.equal(search.spec?.selector.matchLabels?.["example.com/corpus"], undefined);
      assert.equal(
        deploymentOf(manifests, "gateway").spec?.template.metadata?.labels?.["example.com/corpus"],
        undefined,
      );
    });

    it("mounts the search corpus volume filled by the init container, where TOOLPLANE_SEARCH_CORPUS points", () => {
      const spec = podSpec("search");
      assert.deepEqual(
        spec.initContainers?.map((container) => container.name),
        ["fetch-corpus"],
      );
      assert.ok(spec.volumes?.some((volume) => volume.name === "corpus" && volume.emptyDir));
      assert.ok(
        spec.volumes?.some((volume) => volume.name === "tmp"),
        "the chart's own /tmp volume stays",
      );
      const [search] = spec.containers;
      assert.ok(search);
      assert.ok(search.volumeMounts?.some((mount) => mount.name === "corpus" && mount.mountPath === "/corpus"));
      assert.ok(search.volumeMounts?.some((mount) => mount.mountPath === "/tmp"));
      assert.equal(containerEnv(manifests, search).TOOLPLANE_SEARCH_CORPUS, "/corpus/docs.jsonl");
    });

    it("runs sidecars beside the service, and the code pods under their PriorityClass", () => {
      assert.deepEqual(
        podSpec("gateway").containers.map((container) => container.name),
        ["gateway", "log-shipper"],
      );
      assert.equal(podSpec("code").priorityClassName, "toolplane-stateful");
      assert.equal(podSpec("gateway").priorityClassName, undefined);
    });

    it("refuses an extension value of the wrong form (values.schema.json)", () => {
      assert.throws(
        () => render(["--set", "services.search.extraVolumeMounts[0].name=corpus"]),
        /mountPath is required/,
      );
      assert.throws(() => render(["--set-json", "commonLabels.replicas=1"]), /Invalid type/);
    });
  });

  describe("helm test and what an install prints", () => {
    const manifests = render([]);
    const hookPods = ofKind<IPod>(manifests, "Pod");
    const chart = parse(readFileSync(join(chartDir, "Chart.yaml"), "utf8")) as Record<string, unknown>;

    it("has a test hook pod that runs the gateway image's smoke client against the gateway Service", () => {
      assert.equal(hookPods.length, 1);
      const [pod] = hookPods;
      assert.ok(pod);
      const annotations = (pod.metadata as { annotations?: Record<string, string> }).annotations;
      assert.equal(annotations?.["helm.sh/hook"], "test");
      assert.equal(pod.spec?.restartPolicy, "Never");
      const [container] = pod.spec?.containers ?? [];
      assert.ok(container);
      assert.equal(container.image, deploymentOf(manifests, "gateway").spec?.template.spec?.containers[0]?.image);
      assert.deepEqual(container.command, ["node", "deploy/smoke-test.mjs"]);
      const env = containerEnv(manifests, container);
      const gatewayService = ofKind<IService>(manifests, "Service").find(
        (service) => service.metadata.labels?.["app.kubernetes.io/component"] === "gateway",
      );
      assert.equal(
        env.TOOLPLANE_GATEWAY_ADDR,
        `${gatewayService?.metadata.name}:${gatewayService?.spec?.ports?.[0]?.port}`,
      );
      assert.equal(env.TOOLPLANE_SMOKE_CODE, "true");
      const withoutCode = ofKind<IPod>(render(["--set", "services.code.enabled=false"]), "Pod")[0];
      assert.equal(
        containerEnv(manifests, withoutCode?.spec?.containers[0] ?? { name: "" }).TOOLPLANE_SMOKE_CODE,
        "false",
      );
      assert.equal(ofKind<IPod>(render(["--set", "tests.enabled=false"]), "Pod").length, 0);
    });

    it("tags every image with the chart's appVersion, under the registry value when set", () => {
      for (const service of SERVICE_NAMES) {
        const image = deploymentOf(manifests, service).spec?.template.spec?.containers[0]?.image;
        assert.equal(image, `toolplane-${service}:${chart.appVersion}`);
      }
      const pushed = render(["--set", "image.registry=registry.example.com/ml/"]);
      assert.equal(
        deploymentOf(pushed, "code").spec?.template.spec?.containers[0]?.image,
        `registry.example.com/ml/toolplane-code:${chart.appVersion}`,
      );
    });

    it("names its home, sources and an icon that ships with it", () => {
      for (const url of [chart.home, ...(chart.sources as unknown[]), chart.icon]) {
        assert.match(String(url), /^https:\/\/\S+$/);
      }
      const iconPath = /\/main\/(helm\/toolplane\/.+)$/.exec(String(chart.icon))?.[1];
      assert.ok(iconPath && existsSync(join(repoRoot, iconPath)), `${chart.icon} names a file of the repository`);
    });

    it("prints how to reach the gateway, run helm test, and where the images come from", () => {
      const notes = renderNotes([]);
      assert.match(notes, /helm test tp -n toolplane --logs/);
      assert.match(notes, /one Step of a print cell/);
      assert.match(notes, new RegExp(`toolplane-gateway:${String(chart.appVersion).replaceAll(".", "\\.")}`));
      assert.match(notes, /image\.registry is empty/);
      const pushed = renderNotes(["--set", "image.registry=registry.example.com/ml", "--set", "tests.enabled=false"]);
      assert.doesNotMatch(pushed, /image\.registry is empty|helm test/);
      assert.match(pushed, /registry\.example\.com\/ml\/toolplane-gateway/);
    });
  });

  describe("the checks catch a weakened chart", () => {
    it("reports a writable root filesystem and an added capability", () => {
      const manifests = render([
        "--set",
        "containerSecurityContext.readOnlyRootFilesystem=false",
        "--set",
        "services.code.containerSecurityContext.capabilities.add[0]=SYS_ADMIN",
      ]);
      const problems = securityProblems(manifests);
      for (const service of SERVICE_NAMES) {
        assert.ok(
          problems.some((problem) => problem.includes(`-${service} container ${service}: readOnlyRootFilesystem`)),
          `${service} in ${problems.join("\n")}`,
        );
      }
      assert.ok(problems.some((problem) => problem.includes("container code: adds capabilities")));
    });

    it("reports an unconfined seccomp profile on the code container", () => {
      const problems = securityProblems(
        render(["--set", "services.code.containerSecurityContext.seccompProfile.type=Unconfined"]),
      );
      assert.deepEqual(
        problems.filter((problem) => problem.includes("seccompProfile")),
        ["Deployment tp-toolplane-code container code: seccompProfile is Unconfined, not RuntimeDefault"],
      );
    });

    it("reports code egress that is not denied", () => {
      assert.deepEqual(codeEgressProblems(render(["--set", "services.code.networkPolicy.enabled=false"])), [
        "code: no NetworkPolicy denies all egress from the code pods",
      ]);
    });

    it("reports a termination grace period shorter than the drain", () => {
      const manifests = render([]);
      const pod = deploymentOf(manifests, "search").spec?.template.spec;
      assert.ok(pod);
      pod.terminationGracePeriodSeconds = 12;
      assert.deepEqual(serviceProblems(manifests, "search"), [
        "search: terminationGracePeriodSeconds 12 s does not cover preStop 5 s + drain 10000 ms",
      ]);
    });

    it("reports a manifest that breaks the Kubernetes schema", () => {
      const manifests = render([]);
      const container = deploymentOf(manifests, "gateway").spec?.template.spec?.containers[0];
      assert.ok(container?.readinessProbe?.grpc);
      // A named port is valid for httpGet probes but not for gRPC ones (GRPCAction.port is an integer).
      (container.readinessProbe.grpc as { port: unknown }).port = "grpc";
      assert.deepEqual(schemaProblems(manifests), [
        "Deployment tp-toolplane-gateway: data/spec/template/spec/containers/0/readinessProbe/grpc/port must be integer",
      ]);
    });

    it("refuses an unknown key or a value of the wrong type or form (values.schema.json)", () => {
      assert.throws(() => render(["--set", "services.gateway.prot=50051"]), /Additional property prot is not allowed/);
      assert.throws(() => render(["--set", "services.gateway.port=grpc"]), /services\.gateway\.port: Invalid type/);
      assert.throws(
        () => render(["--set", "telemetry.otlpEndpoint=jaeger:4317"]),
        /telemetry\.otlpEndpoint: Does not match pattern/,
      );
    });
  });
});
