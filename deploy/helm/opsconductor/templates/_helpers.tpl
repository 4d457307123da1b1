{{/*
Names. fullname is "<release>-opsconductor" unless the release name
already contains the chart name. 52 characters, because the StatefulSet's
controller-revision-hash label adds "-" and a 10-character hash to its name
and a label value holds at most 63.
*/}}
{{- define "opsconductor.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "opsconductor.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/* The headless Service that gives each controller a stable DNS name for Raft. */}}
{{- define "opsconductor.peersService" -}}
{{- printf "%s-peers" (include "opsconductor.fullname" .) }}
{{- end }}

{{- define "opsconductor.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "opsconductor.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "opsconductor.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "opsconductor.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: opsconductor
{{- end }}

{{/* Selector labels; component is controller or agent. */}}
{{- define "opsconductor.selectorLabels" -}}
app.kubernetes.io/name: {{ include "opsconductor.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "opsconductor.controllerImage" -}}
{{- printf "%s:%s" .Values.image.controller.repository (default .Chart.AppVersion .Values.image.controller.tag) }}
{{- end }}

{{- define "opsconductor.agentImage" -}}
{{- printf "%s:%s" .Values.image.agent.repository (default .Chart.AppVersion .Values.image.agent.tag) }}
{{- end }}

{{/* Secret names: the user's existing Secret or the one the chart generates. */}}
{{- define "opsconductor.tlsSecret" -}}
{{- default (printf "%s-cluster-ca" (include "opsconductor.fullname" .)) .Values.tls.existingSecret }}
{{- end }}

{{- define "opsconductor.keyringSecret" -}}
{{- default (printf "%s-keyring" (include "opsconductor.fullname" .)) .Values.keyring.existingSecret }}
{{- end }}

{{- define "opsconductor.adminSecret" -}}
{{- default (printf "%s-admin" (include "opsconductor.fullname" .)) .Values.admin.existingSecret }}
{{- end }}

{{- define "opsconductor.historySecret" -}}
{{- default (printf "%s-history" (include "opsconductor.fullname" .)) .Values.history.existingSecret }}
{{- end }}

{{/*
The Raft address of every controller, by its name under the headless
Service. The short form <pod>.<service>.<namespace>.svc resolves through
the pod's DNS search path whatever the cluster domain is. A controller
skips its own entry: it is the very string it advertises.
*/}}
{{- define "opsconductor.raftPeers" -}}
{{- $full := include "opsconductor.fullname" . }}
{{- $peers := include "opsconductor.peersService" . }}
{{- $out := list }}
{{- range $i := until (int .Values.replicas) }}
{{- $out = append $out (printf "%s-%d.%s.%s.svc:%d" $full $i $peers $.Release.Namespace (int $.Values.ports.raft)) }}
{{- end }}
{{- join "," $out }}
{{- end }}

{{/* The address agents enrol with and connect to: the Service's agent port. */}}
{{- define "opsconductor.agentController" -}}
{{- printf "%s.%s.svc:%d" (include "opsconductor.fullname" .) .Release.Namespace (int .Values.ports.agent) }}
{{- end }}

{{/*
Checks across fields that values.schema.json cannot state with a clear
message. statefulset.yaml includes it: a render that fails here fails
as a whole.
*/}}
{{- define "opsconductor.validate" -}}
{{- if and .Values.history.dsn .Values.history.existingSecret }}
{{- fail "history.dsn and history.existingSecret are both set: give the history store's URL one way" }}
{{- end }}
{{- if not (or .Values.history.dsn .Values.history.existingSecret) }}
{{- fail "history.dsn or history.existingSecret is required: controllers share a PostgreSQL history store (a postgres:// URL)" }}
{{- end }}
{{- if and .Values.history.passwordKey (not .Values.history.existingSecret) }}
{{- fail "history.passwordKey names a key of history.existingSecret, which is not set" }}
{{- end }}
{{- if and .Values.agent.enabled (not .Values.agent.joinSecret) }}
{{- fail "agent.joinSecret is required when agent.enabled is true: a Secret with \"token\" and \"ca-pin\" from `opsconductor agent join-token create`" }}
{{- end }}
{{- $ports := list (int .Values.ports.http) (int .Values.ports.agent) (int .Values.ports.raft) }}
{{- if ne (len (uniq $ports)) 3 }}
{{- fail (printf "ports.http, ports.agent and ports.raft must differ (got %v)" $ports) }}
{{- end }}
{{- end }}

{{/* The agent containers' security context; see agent-daemonset.yaml for why. */}}
{{- define "opsconductor.agentSecurityContext" -}}
runAsUser: 0
runAsGroup: 0
{{- if .Values.agent.hostAccess }}
privileged: true
{{- else }}
allowPrivilegeEscalation: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end }}
{{- end }}
