{{/* Names and labels. */}}
{{- define "antmedia.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "antmedia.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "exporter"). */}}
{{- define "antmedia.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "antmedia.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{- define "antmedia.amsSecretName" -}}
{{- .Values.secrets.ams.existingSecret | default (printf "%s-ams" (include "antmedia.fullname" .)) -}}
{{- end -}}

{{- define "antmedia.hasAmsSecret" -}}
{{- if or .Values.secrets.ams.existingSecret .Values.secrets.ams.data }}true{{ end -}}
{{- end -}}

{{- define "antmedia.webhookSecretName" -}}
{{- .Values.secrets.webhookToken.existingSecret | default (printf "%s-webhook" (include "antmedia.fullname" .)) -}}
{{- end -}}

{{/* The token: given, else the one already installed, else a new random one. */}}
{{- define "antmedia.webhookToken" -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "antmedia.webhookSecretName" .) -}}
{{- if .Values.secrets.webhookToken.value -}}
{{- .Values.secrets.webhookToken.value -}}
{{- else if and $existing $existing.data (hasKey $existing.data .Values.secrets.webhookToken.key) -}}
{{- index $existing.data .Values.secrets.webhookToken.key | b64dec -}}
{{- else -}}
{{- randAlphaNum 48 -}}
{{- end -}}
{{- end -}}

{{/* Mount points inside the pods; the config file names the secret files by these paths. */}}
{{- define "antmedia.configPath" -}}/etc/antmedia/config/antmedia.yml{{- end -}}
{{- define "antmedia.webhookTokenPath" -}}/etc/antmedia/webhook/{{ .Values.secrets.webhookToken.key }}{{- end -}}

{{/* The config file: the user's `config`, with the token path the chart mounts. */}}
{{- define "antmedia.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- $remediator := deepCopy (default dict $config.remediator) -}}
{{- $_ := set $remediator "webhook_token_file" (include "antmedia.webhookTokenPath" .) -}}
{{- $_ := set $config "remediator" $remediator -}}
{{- toYaml $config -}}
{{- end -}}

{{/* The scrape jobs as the Operator names them: after the Service a ServiceMonitor selects. */}}
{{- define "antmedia.exporterSelector" -}}
{{- .Values.prometheusRule.exporterSelector | default (printf "job=%q,namespace=%q" (printf "%s-exporter" (include "antmedia.fullname" .)) .Release.Namespace) -}}
{{- end -}}
{{- define "antmedia.remediatorSelector" -}}
{{- .Values.prometheusRule.remediatorSelector | default (printf "job=%q,namespace=%q" (printf "%s-remediator" (include "antmedia.fullname" .)) .Release.Namespace) -}}
{{- end -}}

{{/* One service's Deployment and Service: (dict "root" $ "component" "exporter" "values" .Values.exporter "command" "antmedia-exporter"). */}}
{{- define "antmedia.workload" -}}
{{- $root := .root -}}
{{- $name := printf "%s-%s" (include "antmedia.fullname" $root) .component -}}
{{- $selector := include "antmedia.selectorLabels" (dict "root" $root "component" .component) -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "antmedia.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  replicas: {{ .values.replicas }}
  selector:
    matchLabels:
      {{- $selector | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "antmedia.labels" $root | nindent 8 }}
        app.kubernetes.io/component: {{ .component }}
      annotations:
        checksum/config: {{ include "antmedia.config" $root | sha256sum }}
    spec:
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      automountServiceAccountToken: false
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      containers:
        - name: {{ .component }}
          image: {{ include "antmedia.image" $root | quote }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          args:
            - {{ .command }}
            - --config.file={{ include "antmedia.configPath" $root }}
            - --web.listen-address=:{{ .values.port }}
            - --log.level={{ .values.logLevel }}
          ports:
            - name: http
              containerPort: {{ .values.port }}
              protocol: TCP
          livenessProbe:
            httpGet:
              path: /-/healthy
              port: http
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          readinessProbe:
            httpGet:
              path: /-/ready
              port: http
            periodSeconds: 10
            timeoutSeconds: 5
            failureThreshold: 3
          securityContext:
            {{- toYaml $root.Values.securityContext | nindent 12 }}
          resources:
            {{- toYaml .values.resources | nindent 12 }}
          volumeMounts:
            - name: config
              mountPath: /etc/antmedia/config
              readOnly: true
            {{- if include "antmedia.hasAmsSecret" $root }}
            - name: ams-secrets
              mountPath: /etc/antmedia/secrets
              readOnly: true
            {{- end }}
            {{- if eq .component "remediator" }}
            - name: webhook-token
              mountPath: /etc/antmedia/webhook
              readOnly: true
            {{- end }}
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: config
          configMap:
            name: {{ include "antmedia.fullname" $root }}-config
        {{- if include "antmedia.hasAmsSecret" $root }}
        - name: ams-secrets
          secret:
            secretName: {{ include "antmedia.amsSecretName" $root }}
            defaultMode: 0440
        {{- end }}
        {{- if eq .component "remediator" }}
        - name: webhook-token
          secret:
            secretName: {{ include "antmedia.webhookSecretName" $root }}
            defaultMode: 0440
            items:
              - key: {{ $root.Values.secrets.webhookToken.key }}
                path: {{ $root.Values.secrets.webhookToken.key }}
        {{- end }}
        # Waitress spills large request bodies to a temporary file; the root filesystem is read-only.
        - name: tmp
          emptyDir:
            medium: Memory
            sizeLimit: 16Mi
      {{- with .values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .values.affinity }}
      affinity:
        {{- toYaml . | nindent 8 }}
      {{- end }}
---
apiVersion: v1
kind: Service
metadata:
  name: {{ $name }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "antmedia.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ .component }}
spec:
  type: ClusterIP
  selector:
    {{- $selector | nindent 4 }}
  ports:
    - name: http
      port: {{ .values.port }}
      targetPort: http
      protocol: TCP
{{- end -}}
