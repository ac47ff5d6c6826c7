{{/*
Names and labels. With the release name "hearth" every object is named exactly as `hearth install` names it
(hearth-operator, hearth-metrics-reader, ...); another release name prefixes them, as Helm charts do.
*/}}

{{- define "hearth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The reference chart's fullname: the release name when it contains the chart name, else <release>-<name>. */}}
{{- define "hearth.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The operator's Deployment, ClusterRole and binding: hearth-operator for release "hearth". */}}
{{- define "hearth.operatorName" -}}
{{- printf "%s-operator" (include "hearth.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hearth.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "hearth.operatorName" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "hearth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* What Helm adds to every object (the parity test ignores exactly these). */}}
{{- define "hearth.helmLabels" -}}
helm.sh/chart: {{ include "hearth.chart" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{/* Every object but the CRDs, which carry their own labels from the bundle. */}}
{{- define "hearth.labels" -}}
app.kubernetes.io/part-of: hearth
{{ include "hearth.helmLabels" . }}
{{- end }}

{{/* The operator's pods; also the Deployment's (immutable) selector and the metrics Service's. */}}
{{- define "hearth.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "hearth.name" . }}-operator
app.kubernetes.io/component: operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "hearth.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.registry }}
{{- printf "%s/%s:%s" .Values.image.registry .Values.image.operator $tag }}
{{- else }}
{{- printf "%s:%s" .Values.image.operator $tag }}
{{- end }}
{{- end }}

{{/* One image runs every role, so the gateways use the operator's image unless image.gateway names another. */}}
{{- define "hearth.gatewayImage" -}}
{{- if .Values.image.gateway }}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.registry }}
{{- printf "%s/%s:%s" .Values.image.registry .Values.image.gateway $tag }}
{{- else }}
{{- printf "%s:%s" .Values.image.gateway $tag }}
{{- end }}
{{- else }}
{{- include "hearth.image" . }}
{{- end }}
{{- end }}

{{/*
The reference chart's guards, widened to Hearth's scaler modes (the schema lists the same choices, so the
unknown-mode guard only fires when the schema is skipped, e.g. helm template --skip-schema-validation).
*/}}
{{- define "hearth.validate" -}}
{{- include "hearth.validateScalerMode" . }}
{{- if and (gt (int .Values.operator.replicas) 1) (not .Values.operator.leaderElect) }}
{{- fail "operator.replicas > 1 requires operator.leaderElect=true (otherwise every replica reconciles at once)" }}
{{- end }}
{{- end }}

{{/*
The scaler modes, as the registry hearth/api/scalermodes.py declares them: the block below is written by
`python -m hearth.install.generate` (edit the registry, then run it; a test fails while they differ).
*/}}
{{- /* BEGIN generated scaler modes */}}
{{- define "hearth.validateScalerMode" -}}
{{- $modes := list "auto" "metrics-api" "external-push" "builtin" }}
{{- if not (has .Values.gateway.scalerMode $modes) }}
{{- fail (printf "gateway.scalerMode must be one of %s, got %q" (join ", " $modes) (toString .Values.gateway.scalerMode)) }}
{{- end }}
{{- end }}

{{/* "true" when gateway.scalerMode always needs KEDA (auto only uses it when it is there). */}}
{{- define "hearth.scalerModeNeedsKeda" -}}
{{- has .Values.gateway.scalerMode (list "metrics-api" "external-push") }}
{{- end }}
{{- /* END generated scaler modes */}}

{{/*
The operator's health port (/healthz, /readyz: its probes), as hearth/api/operatorsettings.py declares it:
written by `python -m hearth.install.generate`.
*/}}
{{- /* BEGIN generated health port */}}
{{- define "hearth.healthPort" -}}8081{{- end }}
{{- /* END generated health port */}}
