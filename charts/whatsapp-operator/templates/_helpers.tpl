{{/* Names, labels and shared pieces of the whatsapp-operator chart. */}}

{{- define "wa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* <release>-<chart>, or the release name when it already holds the chart name. Kept short
enough that "<fullname>-worker-<pool>" and friends stay DNS labels for short pool names. */}}
{{- define "wa.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "wa.operatorName" -}}
{{- printf "%s-operator" (include "wa.fullname" .) -}}
{{- end -}}

{{- define "wa.webhookName" -}}
{{- printf "%s-webhook" (include "wa.fullname" .) -}}
{{- end -}}

{{/* The Secret the operator (--webhook-receiver) writes in its namespace for the receiver
(whatsapp_contract.webhook.CONFIG_SECRET, key CONFIG_KEY). */}}
{{- define "wa.webhookConfigSecret" -}}
whatsapp-webhook-config
{{- end -}}

{{/* Whether the receiver's NetworkPolicy is rendered: webhook.networkPolicy.enabled, or
networkPolicy.enabled when that is null. */}}
{{- define "wa.webhookNetworkPolicy" -}}
{{- $on := .Values.webhook.networkPolicy.enabled -}}
{{- if kindIs "invalid" $on -}}
{{- $on = .Values.networkPolicy.enabled -}}
{{- end -}}
{{- if and .Values.webhook.enabled $on -}}true{{- end -}}
{{- end -}}

{{/* The processor's Deployment, Services' and monitors' name (webhook.processor.mode separate). */}}
{{- define "wa.webhookProcessorName" -}}
{{- printf "%s-processor" (include "wa.webhookName" .) -}}
{{- end -}}

{{/* The pod template (metadata and spec) of the receiver's Deployments: the receiver's own and,
with webhook.processor.mode separate, the processor's: (dict "root" $ "component" "webhook"
"runProcessor" ("" | "true" | "false") "shutdownDelay" seconds "resources" {...} "affinity"
{...} "topologySpreadConstraints" [...]). runProcessor "": the program's default (processor
on), no flag. */}}
{{- define "wa.webhookPod" -}}
{{- $root := .root -}}
{{- $wh := $root.Values.webhook -}}
metadata:
  labels:
    {{- include "wa.labels" (dict "root" $root "component" .component) | nindent 4 }}
    {{- with $wh.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $wh.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ include "wa.webhookName" $root }}
  # The receiver calls no Kubernetes API: no token in its pods.
  automountServiceAccountToken: false
  enableServiceLinks: false
  terminationGracePeriodSeconds: {{ $wh.terminationGracePeriodSeconds }}
  {{- with $wh.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- include "wa.podSecurityContext" $root | nindent 4 }}
  containers:
    - name: webhook
      image: {{ include "wa.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      command:
        - whatsapp-webhook
      args:
        - --config=/etc/whatsapp-webhook/config.json
        - {{ printf "--listen-host=%s" $root.Values.metrics.listenAddress | quote }}
        - --listen-port=8080
        - {{ printf "--metrics-host=%s" $root.Values.metrics.listenAddress | quote }}
        - --metrics-port=9090
        - --ingress-shards={{ $wh.ingressShards }}
        - --max-body-bytes={{ int64 $wh.maxBodyBytes }}
        - --log-level={{ $wh.logLevel }}
        - --log-format={{ $wh.logFormat }}
        - --shutdown-delay={{ .shutdownDelay }}
        {{- with .runProcessor }}
        - --run-processor={{ . }}
        {{- end }}
      env:
        # from the Secret, never in the arguments (a URL holds the password)
        - name: WHATSAPP_WEBHOOK_AMQP_URL
          valueFrom:
            secretKeyRef:
              name: {{ $root.Values.amqp.existingSecret }}
              key: {{ $root.Values.amqp.key }}
        - name: PYTHONDONTWRITEBYTECODE
          value: "1"
        {{- with $wh.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: 8080
          protocol: TCP
        - name: metrics
          containerPort: 9090
          protocol: TCP
      startupProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 2
        failureThreshold: 30
      livenessProbe:
        httpGet:
          path: /healthz
          port: http
        periodSeconds: 10
        timeoutSeconds: 5
        failureThreshold: 3
      # Ready: config loaded and RabbitMQ connected (a receiver that cannot publish answers
      # 503, and the Service sends Meta's retries to one that can).
      readinessProbe:
        httpGet:
          path: /readyz
          port: http
        periodSeconds: 5
        timeoutSeconds: 3
        failureThreshold: 2
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- include "wa.containerSecurityContext" $root | nindent 8 }}
      volumeMounts:
        # a directory (not subPath), so the kubelet's updates of the Secret reach the file
        - name: config
          mountPath: /etc/whatsapp-webhook
          readOnly: true
        - name: tmp
          mountPath: /tmp
  volumes:
    # Written by the operator once an app is Ready. Optional: until it exists the receiver
    # runs unready (/readyz 503) and the kubelet adds the file when it appears.
    - name: config
      secret:
        secretName: {{ include "wa.webhookConfigSecret" $root }}
        optional: true
        defaultMode: 0440
        items:
          - key: config.json
            path: config.json
    - name: tmp
      emptyDir:
        sizeLimit: 64Mi
  {{- with $wh.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $wh.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{- define "wa.workerSA" -}}
{{- printf "%s-worker" (include "wa.fullname" .) -}}
{{- end -}}

{{/* The Deployment (and Service, PDB, HPA) name of one pool: (dict "root" $ "pool" $pool). */}}
{{- define "wa.poolName" -}}
{{- printf "%s-worker-%s" (include "wa.fullname" .root) .pool.name -}}
{{- end -}}

{{- define "wa.workersNamespace" -}}
{{- default .Release.Namespace .Values.workersNamespace -}}
{{- end -}}

{{- define "wa.peeringName" -}}
{{- default (include "wa.fullname" .) .Values.operator.peering.name -}}
{{- end -}}

{{- define "wa.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* The Graph API's port: 443, or the one graphApi.url names (a simulator, a proxy). */}}
{{- define "wa.graphPort" -}}
{{- $port := "443" -}}
{{- with .Values.graphApi.url -}}
{{- $u := urlParse . -}}
{{- $hostPort := splitList ":" $u.host -}}
{{- if gt (len $hostPort) 1 -}}
{{- $port = last $hostPort -}}
{{- else if eq $u.scheme "http" -}}
{{- $port = "80" -}}
{{- end -}}
{{- end -}}
{{- $port -}}
{{- end -}}

{{- define "wa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wa.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Labels of every object: (dict "root" $ "component" "operator"). */}}
{{- define "wa.labels" -}}
{{ include "wa.selectorLabels" . }}
app.kubernetes.io/part-of: whatsapp-operator
app.kubernetes.io/version: {{ default .root.Chart.AppVersion .root.Values.image.tag | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Pod and container security: Pod Security Standards "restricted". */}}
{{- define "wa.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "wa.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop:
    - ALL
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* Every name the operator may give a pool's shard Secrets, for layouts 1, 2, 4, ...
maxShards: whatsapp-pool-<pool>-<i>-of-<n> (whatsapp_graph/resolved.py), as projected
volume sources, all optional (kubelet mounts whichever exist). (dict "root" $ "pool" $pool) */}}
{{- define "wa.shardSources" -}}
{{- $max := int .root.Values.workers.maxShards -}}
{{- $n := 1 -}}
{{- range $_ := until 11 -}}
{{- if le $n $max }}
{{- range $i := until (int $n) }}
- secret:
    name: {{ printf "whatsapp-pool-%s-%d-of-%d" $.pool.name $i $n }}
    optional: true
{{- end }}
{{- end }}
{{- $n = mul $n 2 -}}
{{- end -}}
{{- end -}}

{{/* "true" when the address is a loopback one (127.0.0.0/8, ::1, localhost), else empty. */}}
{{- define "wa.loopback" -}}
{{- $a := lower (trimAll "[]" .) -}}
{{- if or (hasPrefix "127." $a) (eq $a "::1") (eq $a "localhost") (eq $a "0:0:0:0:0:0:0:1") -}}true{{- end -}}
{{- end -}}

{{/* Checks that the schema cannot express; rendered first by the operator's template. */}}
{{- define "wa.validate" -}}
{{- $v := .Values -}}
{{- if and $v.allNamespaces $v.watchNamespaces -}}
{{- fail "set watchNamespaces or allNamespaces: true, not both" -}}
{{- end -}}
{{- if not (or $v.allNamespaces $v.watchNamespaces) -}}
{{- fail "watchNamespaces is empty: list the namespaces the operator serves (watchNamespaces: [shop]), or set allNamespaces: true to give it a ClusterRole over every Secret in the cluster" -}}
{{- end -}}
{{- if and (gt (int $v.operator.replicas) 1) (not $v.operator.peering.enabled) -}}
{{- fail "operator.replicas > 1 needs operator.peering.enabled: without kopf peering every replica would reconcile every tenant" -}}
{{- end -}}
{{- if and $v.workers.pools (not $v.amqp.existingSecret) -}}
{{- fail "workers.pools needs amqp.existingSecret: the name of a Secret holding the RabbitMQ URL" -}}
{{- end -}}
{{- if and $v.database.existingSecret (eq $v.database.tokenStorage "encrypted") (not $v.encryptionKeys.existingSecret) -}}
{{- fail "database.tokenStorage encrypted needs encryptionKeys.existingSecret (or choose tokenStorage plaintext or none)" -}}
{{- end -}}
{{- if and $v.database.existingSecret (not $v.auditKey.existingSecret) -}}
{{- fail "database.existingSecret needs auditKey.existingSecret: the audit trail is chained with an HMAC key (a Secret holding at least 32 random bytes, e.g. openssl rand -base64 48)" -}}
{{- end -}}
{{- $seen := dict -}}
{{- range $v.workers.pools -}}
{{- if hasKey $seen .name -}}
{{- fail (printf "workers.pools: pool %q is listed twice" .name) -}}
{{- end -}}
{{- $_ := set $seen .name true -}}
{{- $full := printf "%s-worker-%s" (include "wa.fullname" $) .name -}}
{{- if gt (len $full) 63 -}}
{{- fail (printf "workers.pools: %q (the pool's Deployment and Service name) is longer than 63 characters: shorten the pool name or fullnameOverride" $full) -}}
{{- end -}}
{{- end -}}
{{- with $v.operator.signupCallback -}}
{{- if .enabled -}}
{{- if not (and .namespace .appCredentialsSecret .hmacSecret.name) -}}
{{- fail "operator.signupCallback.enabled needs namespace, appCredentialsSecret and hmacSecret.name" -}}
{{- end -}}
{{- if and $v.watchNamespaces (not (has .namespace $v.watchNamespaces)) -}}
{{- fail (printf "operator.signupCallback.namespace %q must be one of watchNamespaces: the operator serves the signups it creates there" .namespace) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $v.metrics.serviceMonitor.enabled $v.metrics.podMonitor.enabled -}}
{{- fail "metrics.serviceMonitor.enabled and metrics.podMonitor.enabled: choose one, with both every pod would be scraped twice" -}}
{{- end -}}
{{- if and $v.tests.enabled (include "wa.loopback" $v.metrics.listenAddress) -}}
{{- fail (printf "tests.enabled with metrics.listenAddress %s: the helm test reaches the operator's health port from another pod, which a loopback address refuses (set tests.enabled: false)" $v.metrics.listenAddress) -}}
{{- end -}}
{{- with $v.webhook -}}
{{- if .enabled -}}
{{- if not $v.amqp.existingSecret -}}
{{- fail "webhook.enabled needs amqp.existingSecret: the receiver publishes every webhook to RabbitMQ (the Secret in the release namespace)" -}}
{{- end -}}
{{- if and .ingress.enabled (not .ingress.hosts) -}}
{{- fail "webhook.ingress.enabled needs webhook.ingress.hosts: the host names of Meta's Callback URLs" -}}
{{- end -}}
{{- if and .hpa.enabled (gt (int .hpa.minReplicas) (int .hpa.maxReplicas)) -}}
{{- fail "webhook.hpa.minReplicas must not exceed webhook.hpa.maxReplicas" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "wa.testImage" -}}
{{- $i := .Values.tests.image -}}
{{- if $i.digest -}}
{{- printf "%s@%s" $i.repository $i.digest -}}
{{- else -}}
{{- printf "%s:%s" $i.repository $i.tag -}}
{{- end -}}
{{- end -}}

{{/* The helm test's check (POSIX sh, wget, grep: busybox's applets or GNU's): the operator's
/healthz answers 200 and, unless FAIL_ON_DEPENDENCY_DOWN is false, reports no dependency
"down" (runtime/probes.py); tried every 2 s for TIMEOUT_SECONDS. */}}
{{- define "wa.healthTestScript" -}}
deadline=$(( $(date +%s) + TIMEOUT_SECONDS ))
while :; do
  if body=$(wget -q -T 5 -O - "$HEALTH_URL"); then
    if [ "$FAIL_ON_DEPENDENCY_DOWN" = true ] && printf '%s' "$body" | grep -Eq '"state": *"down"'; then
      last="the operator reports a dependency down: $body"
    else
      echo "the operator's health endpoint answered: $body"
      exit 0
    fi
  else
    last="no 200 from $HEALTH_URL (the operator down or not ready, or a NetworkPolicy in the way)"
  fi
  if [ "$(date +%s)" -ge "$deadline" ]; then
    echo "FAIL: $last" >&2
    exit 1
  fi
  sleep 2
done
{{- end -}}
