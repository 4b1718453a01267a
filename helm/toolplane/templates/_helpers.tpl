{{/* The four services, in the order they are rendered. */}}
{{- define "toolplane.serviceNames" -}}
gateway image code search
{{- end -}}

{{/* Fully qualified gRPC service each process serves (what readiness asks grpc.health.v1 about). */}}
{{- define "toolplane.grpcService" -}}
{{- $names := dict "gateway" "toolplane.gateway.v1.ToolGateway" "image" "toolplane.image.v1.ImageService" "code" "toolplane.code.v1.CodeService" "search" "toolplane.search.v1.SearchService" -}}
{{- index $names . -}}
{{- end -}}

{{- define "toolplane.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "toolplane.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "toolplane.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of one component's resources: <fullname>-<component>. Call with (list $ "gateway"). */}}
{{- define "toolplane.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "toolplane.fullname" $root | trunc 50 | trimSuffix "-") (index . 1) -}}
{{- end -}}

{{/* The headless Service listing every code pod (one DNS record each), which the gateway places sessions over. */}}
{{- define "toolplane.codeReplicasName" -}}
{{- printf "%s-replicas" (include "toolplane.componentName" (list . "code")) -}}
{{- end -}}

{{- define "toolplane.selectorLabels" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ include "toolplane.name" $root }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Labels of every resource: the chart's own, then commonLabels (which never override them). */}}
{{- define "toolplane.labels" -}}
{{- $root := index . 0 -}}
{{- $labels := include "toolplane.selectorLabels" . | fromYaml -}}
{{- $_ := set $labels "helm.sh/chart" (include "toolplane.chart" $root) -}}
{{- $_ = set $labels "app.kubernetes.io/version" ($root.Chart.AppVersion | toString) -}}
{{- $_ = set $labels "app.kubernetes.io/managed-by" $root.Release.Service -}}
{{- $_ = set $labels "app.kubernetes.io/part-of" "toolplane" -}}
{{- toYaml (merge $labels $root.Values.commonLabels) -}}
{{- end -}}

{{/* An "annotations:" block of a resource's metadata: its own annotations over commonAnnotations; nothing when both
are empty. Call with (list $ $own) and nindent 2. */}}
{{- define "toolplane.annotations" -}}
{{- $root := index . 0 -}}
{{- $merged := merge (deepCopy (index . 1 | default dict)) $root.Values.commonAnnotations -}}
{{- with $merged -}}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end -}}
{{- end -}}

{{- define "toolplane.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "toolplane.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Image of one service. Call with (list $ "gateway"). */}}
{{- define "toolplane.image" -}}
{{- $root := index . 0 -}}
{{- $registry := trimSuffix "/" $root.Values.image.registry -}}
{{- $repository := printf "%s%s" $root.Values.image.repositoryPrefix (index . 1) -}}
{{- $tag := default $root.Chart.AppVersion $root.Values.image.tag -}}
{{- if $registry -}}
{{- printf "%s/%s:%s" $registry $repository $tag -}}
{{- else -}}
{{- printf "%s:%s" $repository $tag -}}
{{- end -}}
{{- end -}}

{{/* NATS URL the services use: the in-chart server, the external URL, or "" (no NATS). */}}
{{- define "toolplane.natsUrl" -}}
{{- if .Values.nats.deploy.enabled -}}
{{- printf "nats://%s:4222" (include "toolplane.componentName" (list . "nats")) -}}
{{- else -}}
{{- .Values.nats.url -}}
{{- end -}}
{{- end -}}

{{/* OTLP gRPC endpoint: the in-chart Jaeger, the configured collector, or "" (tracing off). */}}
{{- define "toolplane.otlpEndpoint" -}}
{{- if .Values.jaeger.deploy.enabled -}}
{{- printf "http://%s:4317" (include "toolplane.componentName" (list . "jaeger")) -}}
{{- else -}}
{{- .Values.telemetry.otlpEndpoint -}}
{{- end -}}
{{- end -}}

{{/* Name of the Secret holding the search provider keys, or "" when there is none. */}}
{{- define "toolplane.searchSecretName" -}}
{{- $p := .Values.searchProviders -}}
{{- if $p.existingSecret -}}
{{- $p.existingSecret -}}
{{- else if or $p.serpapiKey $p.serperKey $p.braveKey $p.tavilyKey -}}
{{- include "toolplane.componentName" (list . "search-providers") -}}
{{- end -}}
{{- end -}}

{{/* The search service's /retrieve port, or "" when it is not served; a clash with another port of the pod fails. */}}
{{- define "toolplane.searchRetrievePort" -}}
{{- $search := .Values.services.search -}}
{{- with $search.retrievePort -}}
{{- if eq (int .) (int $search.port) -}}
{{- fail (printf "services.search.retrievePort %v must differ from services.search.port" .) -}}
{{- end -}}
{{- if and $.Values.metrics.enabled (eq (int .) (int $.Values.metrics.port)) -}}
{{- fail (printf "services.search.retrievePort %v must differ from metrics.port" .) -}}
{{- end -}}
{{- int . -}}
{{- end -}}
{{- end -}}

{{/* Seconds the kubelet waits after starting termination: preStop sleep + the services' drain + a margin. */}}
{{- define "toolplane.terminationGracePeriodSeconds" -}}
{{- $s := .Values.shutdown -}}
{{- add (int $s.preStopSleepSeconds) (div (add (int $s.graceMs) 999) 1000) (int $s.extraSeconds) -}}
{{- end -}}
