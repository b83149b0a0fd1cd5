{{/* The chart name, overridable. */}}
{{- define "berth-daemon.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The full name: the release name, with the chart name unless it contains it. */}}
{{- define "berth-daemon.fullname" -}}
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

{{- define "berth-daemon.selectorLabels" -}}
app.kubernetes.io/name: {{ include "berth-daemon.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "berth-daemon.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "berth-daemon.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* The notice DaemonSet's name, labels and selector: a name of their own, so the
Deployment, its PodDisruptionBudget and the metrics Service never select its pods. */}}
{{- define "berth-daemon.noticeFullname" -}}
{{- printf "%s-notice" (include "berth-daemon.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "berth-daemon.noticeSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-notice" (include "berth-daemon.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "berth-daemon.noticeLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "berth-daemon.noticeSelectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "berth-daemon.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "berth-daemon.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "berth-daemon.leaseName" -}}
{{- default (include "berth-daemon.fullname" .) .Values.leaderElection.leaseName }}
{{- end }}

{{- define "berth-daemon.rulesConfigMap" -}}
{{- printf "%s-rules" (include "berth-daemon.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fails on combinations the daemon would refuse at start. */}}
{{- define "berth-daemon.validate" -}}
{{- if not (has .Values.mode (list "node" "cluster")) }}
{{- fail (printf "mode must be node or cluster, not %q" .Values.mode) }}
{{- end }}
{{- if not .Values.clusterName }}
{{- fail "clusterName is required: berth's ownership records are per cluster" }}
{{- end }}
{{- if and .Values.castai.clusterId (not .Values.castai.apiKeySecretName) }}
{{- fail "castai.clusterId needs castai.apiKeySecretName: an existing Secret holding the API key" }}
{{- end }}
{{- if and .Values.castai.apiKeySecretName (not .Values.castai.clusterId) }}
{{- fail "castai.apiKeySecretName is set but castai.clusterId is not" }}
{{- end }}
{{- if and (not .Values.castai.clusterId) (not .Values.rules) }}
{{- fail "no source of target groups: set castai.clusterId (with castai.apiKeySecretName) and/or rules" }}
{{- end }}
{{- end }}

{{/* The pod template, shared by the DaemonSet and the Deployment. */}}
{{- define "berth-daemon.podTemplate" -}}
{{- $cluster := eq .Values.mode "cluster" -}}
metadata:
  labels:
    {{- include "berth-daemon.selectorLabels" . | nindent 4 }}
    {{- with .Values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    {{- if .Values.rules }}
    checksum/rules: {{ include (print $.Template.BasePath "/configmap-rules.yaml") . | sha256sum }}
    {{- end }}
    {{- with .Values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "berth-daemon.serviceAccountName" . }}
  {{- $priority := .Values.priorityClassName | default (ternary "system-cluster-critical" "system-node-critical" $cluster) }}
  priorityClassName: {{ $priority }}
  {{- with .Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml .Values.podSecurityContext | nindent 4 }}
  {{- $tolerations := .Values.tolerations }}
  {{- if kindIs "invalid" $tolerations }}
  {{- $tolerations = ternary (list) (list (dict "operator" "Exists")) $cluster }}
  {{- end }}
  {{- with $tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: berth-daemon
      image: "{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}"
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - --mode={{ .Values.mode }}
        - --cluster-name={{ .Values.clusterName }}
        {{- with .Values.region }}
        - --region={{ . }}
        {{- end }}
        {{- if .Values.castai.clusterId }}
        - --cluster-id={{ .Values.castai.clusterId }}
        {{- with .Values.castai.apiUrl }}
        - --castai-api-url={{ . }}
        {{- end }}
        {{- end }}
        {{- if .Values.rules }}
        - --config=/etc/berth/rules.yaml
        {{- end }}
        {{- if $cluster }}
        - --lease-name={{ include "berth-daemon.leaseName" . }}
        - --lease-duration={{ .Values.leaderElection.leaseDuration }}
        {{- end }}
        - --sleep-interval={{ .Values.sleepInterval }}
        - --deregister-on-cordon={{ .Values.deregisterOnCordon }}
        - --not-ready-grace={{ .Values.notReadyGrace }}
        {{- if and $cluster .Values.gcIpTargets.enabled }}
        - --gc-ip-targets
        - --gc-grace={{ .Values.gcIpTargets.grace }}
        {{- end }}
        - --aws-max-rps={{ .Values.awsMaxRps }}
        - --installation-id={{ .Values.installationId }}
        - --listen=0.0.0.0:{{ .Values.port }}
        - --log-format={{ .Values.logFormat }}
        - --log-level={{ .Values.logLevel }}
        {{- if .Values.dryRun }}
        - --dry-run
        {{- end }}
        {{- with .Values.extraArgs }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      env:
        {{- if not $cluster }}
        - name: NODE_NAME
          valueFrom:
            fieldRef:
              fieldPath: spec.nodeName
        {{- end }}
        - name: POD_NAMESPACE
          valueFrom:
            fieldRef:
              fieldPath: metadata.namespace
        - name: POD_NAME
          valueFrom:
            fieldRef:
              fieldPath: metadata.name
        {{- if .Values.castai.clusterId }}
        # The Cast.ai API key, from the Secret: never a flag, never a ConfigMap.
        - name: CLUSTER_API_KEY
          valueFrom:
            secretKeyRef:
              name: {{ .Values.castai.apiKeySecretName }}
              key: {{ .Values.castai.apiKeySecretKey }}
        {{- end }}
        {{- with .Values.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: {{ .Values.port }}
          protocol: TCP
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
      resources:
        {{- toYaml .Values.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.securityContext | nindent 8 }}
      {{- if .Values.rules }}
      volumeMounts:
        - name: rules
          mountPath: /etc/berth
          readOnly: true
      {{- end }}
  {{- if .Values.rules }}
  volumes:
    - name: rules
      configMap:
        name: {{ include "berth-daemon.rulesConfigMap" . }}
  {{- end }}
{{- end }}

{{/*
The cluster-mode ownership ConfigMap's name, as berth-kube's
ConfigMapOwnership::config_map_name computes it from the daemon's owner id
`berth/<installationId>/daemon`: `berth-owner-<slug>-<FNV-1a 32 of the owner id, hex>`.
RBAC can then name it (a test checks the two agree).
*/}}
{{- define "berth-daemon.ownershipConfigMap" -}}
{{- include "berth-daemon.ownerConfigMap" (printf "berth/%s/daemon" (trim .Values.installationId)) }}
{{- end }}

{{/*
The ConfigMap of the owner id of releases before installation ids,
`berth-daemon/<clusterName>`: the daemon adopts its records (reads them, moves them
into its own ConfigMap, then deletes it).
*/}}
{{- define "berth-daemon.adoptedOwnershipConfigMap" -}}
{{- include "berth-daemon.ownerConfigMap" (printf "berth-daemon/%s" (trim .Values.clusterName)) }}
{{- end }}

{{/* berth-kube's ConfigMap name of an owner id. */}}
{{- define "berth-daemon.ownerConfigMap" -}}
{{- $slug := regexReplaceAll "[^a-z0-9]" (lower .) "-" | trunc 200 | trimAll "-" }}
{{- printf "berth-owner-%s-%s" $slug (include "berth-daemon.fnv1a32" .) }}
{{- end }}

{{/* FNV-1a, 32 bits, of the UTF-8 bytes of a string, as 8 hex digits. */}}
{{- define "berth-daemon.fnv1a32" -}}
{{- $digits := dict "0" 0 "1" 1 "2" 2 "3" 3 "4" 4 "5" 5 "6" 6 "7" 7 "8" 8 "9" 9 "a" 10 "b" 11 "c" 12 "d" 13 "e" 14 "f" 15 }}
{{- $bits := list 1 2 4 8 16 32 64 128 }}
{{- $hex := printf "%x" . }}
{{- $hash := 2166136261 }}
{{- range $i := until (len $hex | int) }}
{{- if eq (mod $i 2) 0 }}
{{- $byte := add (mul (get $digits (substr $i (add $i 1 | int) $hex)) 16) (get $digits (substr (add $i 1 | int) (add $i 2 | int) $hex)) }}
{{- $low := mod $hash 256 }}
{{- $xor := 0 }}
{{- range $bit := $bits }}
{{- if ne (mod (div $low $bit) 2) (mod (div $byte $bit) 2) }}
{{- $xor = add $xor $bit }}
{{- end }}
{{- end }}
{{- $hash = mod (mul (add (sub $hash $low) $xor) 16777619) 4294967296 }}
{{- end }}
{{- end }}
{{- printf "%08x" (int64 $hash) }}
{{- end }}
