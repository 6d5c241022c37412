{{/* The release's name prefix for every object. */}}
{{- define "wxpush.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* The four services, in start-up order of their dependencies. */}}
{{- define "wxpush.components" -}}
token template delivery logquery
{{- end -}}

{{/* Every component that runs pods: the four gRPC services, and the callback
service (WeChat's pushes, an HTTP endpoint; one track) with callback.enabled. */}}
{{- define "wxpush.allComponents" -}}
{{ include "wxpush.components" . }}{{ if .Values.callback.enabled }} callback{{ end }}
{{- end -}}

{{/* The tracks a component runs (dict "root" $ "component" "token"): the
callback service only the stable one. */}}
{{- define "wxpush.componentTracks" -}}
{{- if eq .component "callback" -}}
stable
{{- else -}}
{{- include "wxpush.tracks" .root -}}
{{- end -}}
{{- end -}}

{{/* The services that keep data in PostgreSQL with backend.kind postgres
(logquery's delivery log today; template's registry and delivery's dead
letters to follow): they get the PostgreSQL URL, the token service never. */}}
{{- define "wxpush.postgresComponents" -}}
template delivery logquery
{{- end -}}

{{/* The tracks deployed: stable, and canary while a canary runs. */}}
{{- define "wxpush.tracks" -}}
stable{{ if .Values.canary.enabled }} canary{{ end }}
{{- end -}}

{{/* A component's object name: dict "root" $ "component" "token". */}}
{{- define "wxpush.name" -}}
{{- printf "%s-%s" (include "wxpush.fullname" .root) .component -}}
{{- end -}}

{{/* Labels on everything of the release. */}}
{{- define "wxpush.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: wxpush
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* What selects one component's pods, both tracks (Services, policies). */}}
{{- define "wxpush.selector" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The canary header's name, fixed: the services forward exactly this header
(and W3C baggage) from each incoming gRPC call to every call they make, so a
request pinned to the canary stays there on every hop. */}}
{{- define "wxpush.canaryHeader" -}}
x-wxpush-canary
{{- end -}}

{{/* Where a component's pods run (dict "root" $ "component" "token" "track"
"stable"): nodeSelector, tolerations, affinity and topologySpreadConstraints,
each the component's own when it sets it, else the global one. A spread
constraint without a labelSelector selects the component's pods of the track. */}}
{{- define "wxpush.scheduling" -}}
{{- $c := index .root.Values .component -}}
{{- $pod := dict -}}
{{- range $key := list "nodeSelector" "tolerations" "affinity" "topologySpreadConstraints" -}}
{{- $v := ternary (index $c $key) (index $.root.Values $key) (hasKey $c $key) -}}
{{- if $v -}}
{{- $_ := set $pod $key $v -}}
{{- end -}}
{{- end -}}
{{- if $pod.topologySpreadConstraints -}}
{{- $own := merge (fromYaml (include "wxpush.selector" .)) (dict "track" .track) -}}
{{- $spread := list -}}
{{- range $pod.topologySpreadConstraints -}}
{{- $t := deepCopy . -}}
{{- if not $t.labelSelector -}}
{{- $_ := set $t "labelSelector" (dict "matchLabels" $own) -}}
{{- end -}}
{{- $spread = append $spread $t -}}
{{- end -}}
{{- $_ := set $pod "topologySpreadConstraints" $spread -}}
{{- end -}}
{{- if $pod -}}
{{- toYaml $pod -}}
{{- end -}}
{{- end -}}

{{/* The image tag of a track. */}}
{{- define "wxpush.tag" -}}
{{- if and (eq .track "canary") .root.Values.canary.image.tag -}}
{{- .root.Values.canary.image.tag -}}
{{- else -}}
{{- .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- end -}}
{{- end -}}

{{/* A component's in-cluster gRPC address, for the services that call it. */}}
{{- define "wxpush.endpoint" -}}
{{- $c := index .root.Values .component -}}
{{- printf "http://%s.%s.svc:%v" (include "wxpush.name" .) .root.Release.Namespace $c.grpcPort -}}
{{- end -}}

{{/* The environment-variable prefix of a component's settings. */}}
{{- define "wxpush.envPrefix" -}}
{{- printf "WXPUSH_%s" (upper .) -}}
{{- end -}}

{{/* Fails unless Redis is configured. */}}
{{- define "wxpush.requireRedis" -}}
{{- if not (or .Values.redis.url .Values.redis.existingSecret .Values.redis.perServiceSecret) -}}
{{- fail "redis.url or redis.existingSecret is required (or redis.perServiceSecret): every wxpush service keeps its hot path in Redis in a cluster, with backend.kind postgres too" -}}
{{- end -}}
{{- include "wxpush.requireRedisCluster" . -}}
{{- end -}}

{{/* Fails when redis.cluster and the rest disagree: a literal redis.url of
the other scheme; a cluster without backend.kind postgres (the Redis stores
of template and logquery use multi-key scripts, refused by a cluster);
delivery and logquery on different backend.stream_partitions. */}}
{{- define "wxpush.requireRedisCluster" -}}
{{- $scheme := hasPrefix "redis-cluster://" .Values.redis.url -}}
{{- if and .Values.redis.cluster .Values.redis.url (not $scheme) -}}
{{- fail "redis.cluster is true but redis.url is not a redis-cluster:// URL: name the cluster as redis-cluster://host:port[,host:port...]" -}}
{{- end -}}
{{- if and (not .Values.redis.cluster) $scheme -}}
{{- fail "redis.url is a redis-cluster:// URL but redis.cluster is false: set redis.cluster true (with backend.kind postgres) for a Redis Cluster" -}}
{{- end -}}
{{- if .Values.redis.cluster -}}
{{- if ne .Values.backend.kind "postgres" -}}
{{- fail (printf "redis.cluster needs backend.kind postgres, not %s: on a Redis Cluster the log, templates and dead letters live in PostgreSQL (the Redis stores of template and logquery use multi-key scripts a cluster refuses)" .Values.backend.kind) -}}
{{- end -}}
{{- range $component := list "template" "logquery" -}}
{{- $kind := include "wxpush.backendKind" (dict "root" $ "component" $component) -}}
{{- if ne $kind "postgres" -}}
{{- fail (printf "redis.cluster needs backend.kind postgres, but %s.config.backend.kind is %s: its Redis store uses multi-key scripts a cluster refuses" $component $kind) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $partitions := dict -}}
{{- range $component := list "delivery" "logquery" -}}
{{- $backend := (fromYaml (include "wxpush.config" (dict "root" $ "component" $component))).backend -}}
{{- $_ := set $partitions $component (toString $backend.stream_partitions) -}}
{{- end -}}
{{- if ne $partitions.delivery $partitions.logquery -}}
{{- fail (printf "delivery and logquery need the same backend.stream_partitions (delivery %s, logquery %s): logquery reads the event stream partitions delivery writes; set redis.streamPartitions, not <service>.config.backend.stream_partitions" $partitions.delivery $partitions.logquery) -}}
{{- end -}}
{{- end -}}

{{/* The ports Redis answers on, for the NetworkPolicies' egress, one each:
networkPolicy.egress.redis.port and extraPorts, and the port of every node
a literal redis-cluster:// url names (6379 where it names none). */}}
{{- define "wxpush.redisPorts" -}}
{{- $redis := .Values.networkPolicy.egress.redis -}}
{{- $ports := list (toString $redis.port) -}}
{{- range $redis.extraPorts -}}
{{- $ports = append $ports (toString .) -}}
{{- end -}}
{{- if hasPrefix "redis-cluster://" .Values.redis.url -}}
{{- $hosts := regexReplaceAll "^redis-cluster://([^@]*@)?" .Values.redis.url "" | trimSuffix "/" -}}
{{- range splitList "," $hosts -}}
{{- $host := trim . -}}
{{- if $host -}}
{{- $ports = append $ports ((regexFind ":[0-9]+$" $host | trimPrefix ":") | default "6379") -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $ports | uniq | join " " -}}
{{- end -}}

{{/* A component's backend.kind as its config file has it (dict "root" $
"component" "token"): backend.kind, or its own `<component>.config`. */}}
{{- define "wxpush.backendKind" -}}
{{- (fromYaml (include "wxpush.config" .)).backend.kind -}}
{{- end -}}

{{/* Fails unless the PostgreSQL URL comes from a Secret wherever a service
keeps data there, and when a config sets the URL itself (it may hold a
password: never in a ConfigMap). */}}
{{- define "wxpush.requirePostgres" -}}
{{- range $component := splitList " " (include "wxpush.components" .) -}}
{{- $ctx := dict "root" $ "component" $component -}}
{{- $own := (index $.Values $component).config | default dict -}}
{{- if hasKey ($own.backend | default dict) "postgres_url" -}}
{{- fail (printf "%s.config.backend.postgres_url: the PostgreSQL URL may hold a password; put it in a Secret named by postgres.existingSecret" $component) -}}
{{- end -}}
{{- if and (eq (include "wxpush.backendKind" $ctx) "postgres") (has $component (splitList " " (include "wxpush.postgresComponents" $))) (not $.Values.postgres.existingSecret) -}}
{{- fail (printf "postgres.existingSecret is required with backend.kind postgres (%s keeps its data in PostgreSQL): a Secret holding the postgres:// URL under postgres.existingSecretKey" $component) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Fails when the callback service cannot serve as configured: no app, no
Secret for their Token and EncodingAESKey, an app listed twice, or (behind
Istio) no host for the Gateway. */}}
{{- define "wxpush.requireCallback" -}}
{{- $cb := .Values.callback -}}
{{- if $cb.enabled -}}
{{- if not $cb.apps -}}
{{- fail "callback.apps is required with callback.enabled: the apps (appId) whose pushes WeChat sends to https://<callback.gateway.host>/wechat/callback/<appId>" -}}
{{- end -}}
{{- if not $cb.secretName -}}
{{- fail "callback.secretName is required with callback.enabled: a Secret holding each app's Token (<appId>-token) and EncodingAESKey (<appId>-aes-key), mounted as files" -}}
{{- end -}}
{{- $seen := dict -}}
{{- range $cb.apps -}}
{{- if hasKey $seen .appId -}}
{{- fail (printf "callback.apps: appId %s is listed twice" .appId) -}}
{{- end -}}
{{- $_ := set $seen .appId true -}}
{{- end -}}
{{- if .Values.istio.enabled -}}
{{- if not $cb.gateway.host -}}
{{- fail "callback.gateway.host is required with callback.enabled and istio.enabled: the name WeChat calls, https://<host>/wechat/callback/<appId>" -}}
{{- end -}}
{{- if not $cb.gateway.principals -}}
{{- fail "callback.gateway.principals is required with callback.enabled and istio.enabled: the ingress gateway's identities, the only callers of the public port" -}}
{{- end -}}
{{- if not $cb.gateway.selector -}}
{{- fail "callback.gateway.selector is required with callback.enabled and istio.enabled: the labels of the ingress gateway pods" -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The Istio principal of a component's service account. */}}
{{- define "wxpush.principal" -}}
{{- printf "%s/ns/%s/sa/%s" .root.Values.istio.trustDomain .root.Release.Namespace (include "wxpush.name" .) -}}
{{- end -}}

{{/* A component's config file (dict "root" $ "component" "token"): what the
chart sets, with `<component>.config` over it. */}}
{{- define "wxpush.config" -}}
{{- $ := .root }}
{{- $component := .component }}
{{- $c := index $.Values $component }}
{{- $config := dict
      "listen" (printf "0.0.0.0:%v" $c.grpcPort)
      "admin_listen" (printf "0.0.0.0:%v" $c.adminPort)
      "backend" (dict "kind" $.Values.backend.kind "key_prefix" $.Values.redis.keyPrefix
                      "stream_partitions" (int $.Values.redis.streamPartitions)) }}
{{- if eq $component "callback" }}
{{- /* gRPC health only, not exposed (no wxpush API); WeChat reaches
public_listen; the pushes go to Redis, whatever backend.kind. Each app's
Token and EncodingAESKey are files mounted from callback.secretName. */}}
{{- $_ := set $config "listen" "127.0.0.1:50055" }}
{{- $_ := set $config "public_listen" (printf "0.0.0.0:%v" $c.publicPort) }}
{{- $_ := set $config.backend "kind" "redis" }}
{{- $apps := list }}
{{- range $c.apps }}
{{- $app := dict "app_id" .appId "token_file" (printf "/var/run/secrets/wxpush/callback/%s/token" .appId) }}
{{- if not .plaintext }}
{{- $_ := set $app "aes_key_file" (printf "/var/run/secrets/wxpush/callback/%s/aes-key" .appId) }}
{{- end }}
{{- $apps = append $apps $app }}
{{- end }}
{{- $_ := set $config "apps" $apps }}
{{- else if ne $component "logquery" }}
{{- $_ := set $config "wechat" (dict "base_url" $.Values.wechat.baseUrl) }}
{{- end }}
{{- if eq $component "token" }}
{{- $apps := list }}
{{- range $.Values.apps }}
{{- $apps = append $apps (dict
      "app_id" .appId
      "kind" (.kind | default "official_account")
      "token_mode" (.tokenMode | default "stable_token")
      "secret_file" (printf "/var/run/secrets/wxpush/apps/%s/secret" .appId)) }}
{{- end }}
{{- $_ := set $config "apps" $apps }}
{{- end }}
{{- if eq $component "template" }}
{{- $_ := set $config "token_endpoint" (include "wxpush.endpoint" (dict "root" $ "component" "token")) }}
{{- if $c.templates }}
{{- $_ := set $config "templates_file" "/etc/wxpush/templates.yaml" }}
{{- end }}
{{- end }}
{{- if eq $component "delivery" }}
{{- $_ := set $config "token_endpoint" (include "wxpush.endpoint" (dict "root" $ "component" "token")) }}
{{- $_ := set $config "template_endpoint" (include "wxpush.endpoint" (dict "root" $ "component" "template")) }}
{{- end }}
{{- mustMergeOverwrite $config (deepCopy ($c.config | default dict)) | toYaml }}
{{- end -}}

{{/*
The Redis ACL rules of one service: its own keys and channels only, no
dangerous or admin commands. The same rules as `wxpush redis-acl` prints
(shared/redis/src/acl.rs); scripts/check-chart.py compares the two. The
callback service (reachable from the internet) gets no command category,
only what its hand-off needs: the script (EVALSHA, EVAL, SCRIPT LOAD) and
what it runs (SET, XADD) on its own keys, PING and INFO (the start-up
check), and on a Redis Cluster CLUSTER SLOTS and ASKING (the client
learning and following slots).
*/}}
{{- define "wxpush.redisAcl" -}}
{{- $p := .prefix -}}
{{- $patterns := dict
      "token" (list "~%stoken:*")
      "template" (list "~%stemplate:*" "~%stemplates:*" "~%swechat_templates:*")
      "delivery" (list "~%squeue" "~%squeue:*" "~%smsg:*" "~%sdlq" "~%sdlq:*" "~%sidem:*" "~%srate:*" "%%W~%sevents:*" "~%sevents:partitions" "~%sconsent:*" "~%scallbacks:{callbacks}" "~%scallbacks:{callbacks}:rejected")
      "logquery" (list "~%slog:*" "~%sevents" "~%sevents:*" "~%scallbacks:*" "&%slog:tail")
      "callback" (list "~%scallbacks:*") -}}
{{- $commands := dict
      "callback" (list "-@all" "+ping" "+info" "+evalsha" "+eval" "+script|load" "+set" "+xadd" "+cluster|slots" "+asking") -}}
{{- $rules := list "on" "resetkeys" "resetchannels" -}}
{{- range index $patterns .component -}}
{{- $rules = append $rules (printf . $p) -}}
{{- end -}}
{{- $rules = concat $rules (get $commands .component | default (list "-@all" "+@all" "-@dangerous" "-@admin" "+info")) -}}
{{- printf "ACL SETUSER wxpush-%s %s >PASSWORD" .component (join " " $rules) -}}
{{- end -}}
