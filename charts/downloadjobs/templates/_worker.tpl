{{/*
The Job the operator creates for each DownloadJob, as the chart configures it: the
same fields that operator/downloadjobs_operator/manifests.py build_job() writes, from
the same values (the chart passes them to the operator as DOWNLOADJOBS_OPERATOR_*).
The operator fills in the per-job parts: metadata.name, ownerReferences, the
downloadjobs.dev/job-name label and DOWNLOADJOBS_JOB_NAME/DOWNLOADJOBS_JOB_NAMESPACE.

It is rendered into the ConfigMap "<fullname>-worker-job" (worker-job-configmap.yaml),
which the operator can read, and which the chart tests feed to kubernetes-validate and
checkov so the scanners see the worker pods too.
*/}}
{{- define "downloadjobs.workerJob" -}}
{{- $env := merge (include "downloadjobs.s3Settings" . | fromYaml) (include "downloadjobs.workerEnv" . | fromYaml) -}}
apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "downloadjobs.fullname" . }}-worker-template
  namespace: {{ .Release.Namespace }}
  labels:
    app.kubernetes.io/managed-by: downloadjobs
    app.kubernetes.io/component: worker
  {{- with include "downloadjobs.checkovSkips" (dict "root" . "token" true "secret" true) | trim }}
  annotations:
    {{- . | nindent 4 }}
  {{- end }}
spec:
  suspend: true
  backoffLimit: {{ .Values.worker.backoffLimit | int }}
  podReplacementPolicy: Failed
  activeDeadlineSeconds: {{ .Values.worker.activeDeadlineSeconds | int }}
  ttlSecondsAfterFinished: {{ .Values.worker.ttlSecondsAfterFinished | int }}
  podFailurePolicy:
    rules:
      - action: FailJob
        onExitCodes:
          containerName: worker
          operator: In
          values:
            - 42
      - action: Ignore
        onPodConditions:
          - type: DisruptionTarget
            status: "True"
  completions: 1
  parallelism: 1
  template:
    metadata:
      labels:
        app.kubernetes.io/managed-by: downloadjobs
        app.kubernetes.io/component: worker
    spec:
      restartPolicy: Never
      serviceAccountName: {{ include "downloadjobs.serviceAccountName" (dict "root" . "role" "worker") }}
      automountServiceAccountToken: true
      securityContext:
        {{- include "downloadjobs.workerPodSecurityContext" . | nindent 8 }}
      {{- with .Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: worker
          image: {{ include "downloadjobs.image" . | quote }}
          imagePullPolicy: {{ .Values.image.pullPolicy }}
          command:
            - downloadjobs
            - worker
          env:
            {{- range $name, $value := $env }}
            - name: {{ $name }}
              value: {{ $value | toString | quote }}
            {{- end }}
          {{- with include "downloadjobs.s3EnvFrom" . | trim }}
          {{- . | nindent 10 }}
          {{- end }}
          securityContext:
            {{- include "downloadjobs.workerContainerSecurityContext" . | nindent 12 }}
          resources:
            {{- toYaml .Values.worker.resources | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: 64Mi
{{- end }}
