{{/* The chart name, overridable. */}}
{{- define "berth-provisioner.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: the release name, with the chart name unless it contains it. */}}
{{- define "berth-provisioner.fullname" -}}
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

{{- define "berth-provisioner.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth-provisioner.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "berth-provisioner.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "berth-provisioner.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "berth-provisioner.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "berth-provisioner.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "berth-provisioner.runnerServiceAccountName" -}}
{{- if .Values.runner.serviceAccount.create }}
{{- default (printf "%s-runner" (include "berth-provisioner.fullname" .) | trunc 63 | trimSuffix "-") .Values.runner.serviceAccount.name }}
{{- else }}
{{- required "runner.serviceAccount.name is required when runner.serviceAccount.create is false" .Values.runner.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "berth-provisioner.configMap" -}}
{{- printf "%s-config" (include "berth-provisioner.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The server configuration (docs/provisioner.md), from the values. */}}
{{- define "berth-provisioner.config" -}}
{{- $runner := dict
  "image" (printf "%s:%s" (required "runner.image.repository is required: the runner image (examples/provisioner/Containerfile)" .Values.runner.image.repository) (required "runner.image.tag is required" .Values.runner.image.tag))
  "command" .Values.runner.command
  "service_account" (include "berth-provisioner.runnerServiceAccountName" .)
  "active_deadline_seconds" (int64 .Values.runner.activeDeadlineSeconds)
  "plan_ttl_seconds" (int64 .Values.runner.planTtlSeconds)
  "termination_grace_seconds" (int64 .Values.runner.terminationGraceSeconds)
  "cancel_grace_seconds" (int64 .Values.runner.cancelGraceSeconds)
}}
{{- with .Values.runner.envFromSecret }}
{{- $_ := set $runner "env_from_secret" . }}
{{- end }}
{{- with .Values.runner.env }}
{{- $_ := set $runner "env" . }}
{{- end }}
{{- if not .Values.kubernetesVersions }}
{{- fail "kubernetesVersions is required: the Kubernetes versions requests may ask for" }}
{{- end }}
{{- $config := dict
  "kubernetes_versions" .Values.kubernetesVersions
  "ip_families" .Values.ipFamilies
  "region" (required "region is required" .Values.region)
  "terraform_vars" .Values.terraformVars
  "runner" $runner
}}
{{- toYaml $config }}
{{- end }}
