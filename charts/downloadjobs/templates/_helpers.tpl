{{/*
Names, labels and the pieces every pod shares. Everything the three roles (api,
operator, worker) have in common is defined once here.
*/}}

{{/* The chart's name, or nameOverride. */}}
{{- define "downloadjobs.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The fully qualified app name: the release name, with the chart name unless the
release name contains it already. Truncated to 63 characters (DNS names).
*/}}
{{- define "downloadjobs.fullname" -}}
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

{{/* chart-version, for the helm.sh/chart label. */}}
{{- define "downloadjobs.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object the chart renders. */}}
{{- define "downloadjobs.labels" -}}
helm.sh/chart: {{ include "downloadjobs.chart" . }}
{{ include "downloadjobs.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: downloadjobs
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Selector labels of the release; add app.kubernetes.io/component per role. */}}
{{- define "downloadjobs.selectorLabels" -}}
app.kubernetes.io/name: {{ include "downloadjobs.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Names of the three service accounts. */}}
{{- define "downloadjobs.serviceAccountName" -}}
{{- $sa := index .root.Values.serviceAccounts .role }}
{{- if $sa.create }}
{{- default (printf "%s-%s" (include "downloadjobs.fullname" .root) .role | trunc 63 | trimSuffix "-") $sa.name }}
{{- else }}
{{- required (printf "serviceAccounts.%s.name is required when serviceAccounts.%s.create is false" .role .role) $sa.name }}
{{- end }}
{{- end }}

{{/*
The image reference: repository:tag, or repository:tag@digest when a digest is set
(a digest pins the exact image; the tag then only documents it).
*/}}
{{- define "downloadjobs.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
checkov skip annotations for one workload, each per check with its reason.
Call with (dict "root" $ "token" true "secret" true):
  token:  the pod talks to the Kubernetes API, so it keeps its service-account token;
  secret: the pod takes S3 credentials from a Secret as environment variables.
The two image checks are skipped only while the image is pinned by tag alone.
*/}}
{{- define "downloadjobs.checkovSkips" -}}
{{- $skips := list }}
{{- if .token }}
{{- $skips = append $skips "CKV_K8S_38=The process reads and writes DownloadJobs through the Kubernetes API with the token of its own least-privilege ServiceAccount" }}
{{- end }}
{{- if and .secret .root.Values.s3.existingSecret }}
{{- $skips = append $skips "CKV_K8S_35=boto3 reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the environment; they come from the existing Secret by reference and never appear in the chart" }}
{{- end }}
{{- if not .root.Values.image.digest }}
{{- $skips = append $skips "CKV_K8S_43=image.digest is empty, so the image is pinned by its version tag; set image.digest to pin it by digest and this check passes" }}
{{- $skips = append $skips "CKV_K8S_15=image.digest is empty; IfNotPresent with a version tag is deliberate (kind and air-gapped nodes load images locally); set image.digest and this check passes" }}
{{- end }}
{{- range $i, $skip := $skips }}
checkov.io/skip{{ add1 $i }}: {{ $skip | quote }}
{{- end }}
{{- end }}

{{/*
The environment every process shares: its namespace and the S3 settings.
Credentials are never values: they come from s3.existingSecret (see
downloadjobs.s3EnvFrom) or from the pod's identity.
*/}}
{{- define "downloadjobs.s3Env" -}}
{{- range $name, $value := (include "downloadjobs.s3Settings" . | fromYaml) }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/*
The S3 settings as a map of DOWNLOADJOBS_S3_* variables to strings: the same
variables, spelled the same way, that the operator passes to the worker pods.
*/}}
{{- define "downloadjobs.s3Settings" -}}
{{- with .Values.s3 }}
{{- if .endpointUrl }}
DOWNLOADJOBS_S3_ENDPOINT_URL: {{ .endpointUrl | quote }}
{{- end }}
{{- if .publicEndpointUrl }}
DOWNLOADJOBS_S3_PUBLIC_ENDPOINT_URL: {{ .publicEndpointUrl | quote }}
{{- end }}
DOWNLOADJOBS_S3_REGION: {{ .region | quote }}
DOWNLOADJOBS_S3_PATH_STYLE: {{ .pathStyle | toString | quote }}
DOWNLOADJOBS_S3_SOURCE_BUCKET: {{ .sourceBucket | quote }}
DOWNLOADJOBS_S3_SOURCE_PREFIX: {{ .sourcePrefix | quote }}
DOWNLOADJOBS_S3_BUNDLE_BUCKET: {{ .bundleBucket | quote }}
DOWNLOADJOBS_S3_BUNDLE_PREFIX: {{ .bundlePrefix | quote }}
DOWNLOADJOBS_S3_PRESIGN_EXPIRY_SECONDS: {{ .presignExpirySeconds | int | toString | quote }}
DOWNLOADJOBS_S3_MAX_ATTEMPTS: {{ .maxAttempts | int | toString | quote }}
{{- end }}
{{- end }}

{{/* envFrom for the S3 credentials Secret, when there is one. */}}
{{- define "downloadjobs.s3EnvFrom" -}}
{{- if .Values.s3.existingSecret }}
envFrom:
  - secretRef:
      name: {{ .Values.s3.existingSecret | quote }}
{{- end }}
{{- end }}

{{/*
The worker's own settings (DOWNLOADJOBS_WORKER_*) plus worker.extraEnv, as one
map of strings: the operator passes it to every Job pod
(DOWNLOADJOBS_OPERATOR_WORKER_ENV).
*/}}
{{- define "downloadjobs.workerEnv" -}}
{{- $env := dict }}
{{- $_ := set $env "DOWNLOADJOBS_WORKER_COMPRESSION" .Values.worker.compression }}
{{- $_ := set $env "DOWNLOADJOBS_WORKER_PART_SIZE" (.Values.worker.partSizeBytes | int64 | toString) }}
{{- $_ := set $env "DOWNLOADJOBS_WORKER_PROGRESS_INTERVAL" (.Values.worker.progressIntervalSeconds | toString) }}
{{- range $name, $value := .Values.worker.extraEnv }}
{{- $_ := set $env $name ($value | toString) }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/* The securityContext of every pod: the restricted Pod Security Standard. */}}
{{- define "downloadjobs.podSecurityContext" -}}
{{- toYaml .Values.podSecurityContext }}
{{- end }}

{{/* The securityContext of every container: the restricted Pod Security Standard. */}}
{{- define "downloadjobs.containerSecurityContext" -}}
{{- toYaml .Values.containerSecurityContext }}
{{- end }}

{{/* The worker pods' securityContext: worker.podSecurityContext over podSecurityContext. */}}
{{- define "downloadjobs.workerPodSecurityContext" -}}
{{- toYaml (mergeOverwrite (deepCopy .Values.podSecurityContext) .Values.worker.podSecurityContext) }}
{{- end }}

{{/* The worker container's: worker.containerSecurityContext over containerSecurityContext. */}}
{{- define "downloadjobs.workerContainerSecurityContext" -}}
{{- toYaml (mergeOverwrite (deepCopy .Values.containerSecurityContext) .Values.worker.containerSecurityContext) }}
{{- end }}

{{/* Scheduling fields of a pod, from one role's values (api, operator). */}}
{{- define "downloadjobs.scheduling" -}}
{{- with .values.priorityClassName }}
priorityClassName: {{ . | quote }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Egress rules of every NetworkPolicy, when egress is restricted: DNS plus networkPolicy.egress.rules. */}}
{{- define "downloadjobs.networkPolicyEgress" -}}
{{- if .Values.networkPolicy.egress.enabled }}
egress:
  # DNS, in the cluster.
  - to:
      - namespaceSelector: {}
        podSelector:
          matchLabels:
            k8s-app: kube-dns
    ports:
      - port: 53
        protocol: UDP
      - port: 53
        protocol: TCP
  {{- with .Values.networkPolicy.egress.rules }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end }}
{{- end }}
