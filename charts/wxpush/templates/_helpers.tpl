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

{{/* auth.mode as the services read it: "on" or "off" (YAML's on/off may
arrive as a boolean). */}}
{{- define "wxpush.authMode" -}}
{{- $mode := .Values.auth.mode -}}
{{- if kindIs "bool" $mode -}}
{{- ternary "on" "off" $mode -}}
{{- else -}}
{{- $mode | toString -}}
{{- end -}}
{{- end -}}

{{/* Whether the services take the caller's SPIFFE id from the sidecar's
x-forwarded-client-cert: behind Istio only (anyone can write the header
elsewhere). */}}
{{- define "wxpush.trustMesh" -}}
{{- if and .Values.istio.enabled .Values.auth.trustMesh }}true{{ end -}}
{{- end -}}

{{/* Where the JWT key (auth.jwt.existingSecret) is mounted, by keyType. */}}
{{- define "wxpush.jwtKeyFile" -}}
{{- printf "/var/run/secrets/wxpush/jwt/%s" (get (dict "hs256" "hs256-secret" "public" "public-key.pem" "jwks" "jwks.json") .Values.auth.jwt.keyType) -}}
{{- end -}}

{{/* The components presenting an identity on the suite's own hops
(delivery -> template, delivery -> token, template -> token). */}}
{{- define "wxpush.ownCallers" -}}
template delivery
{{- end -}}

{{/* The helm test Pods' service account (templates/tests.yaml). */}}
{{- define "wxpush.testAccount" -}}
{{- printf "%s-test" (include "wxpush.fullname" .) -}}
{{- end -}}

{{/* The template helm test reads with GetTemplate (none: no such test):
tests.templateKey, else the first of template.templates; with auth.mode on
only where the services trust the mesh (the test Pod's identity is its
mesh one). */}}
{{- define "wxpush.testTemplateKey" -}}
{{- if and .Values.tests.enabled (or (include "wxpush.trustMesh" .) (eq (include "wxpush.authMode" .) "off")) -}}
{{- $key := .Values.tests.templateKey | default (first (.Values.template.templates | default (list (dict)))).key -}}
{{- if $key }}{{ $key }}{{ end -}}
{{- end -}}
{{- end -}}

{{/* Every caller the services know (auth.mode on), as a YAML list: the
suite's own (wxpush-delivery and wxpush-template: operation token, every
app; their mesh identity, and their service-account token's subject with
auth.callAs.serviceAccountToken), the helm test Pods' behind Istio (no
operation: it reads a template), then auth.callers. */}}
{{- define "wxpush.callers" -}}
{{- $ := . -}}
{{- $callers := list -}}
{{- range $component := splitList " " (include "wxpush.ownCallers" .) -}}
{{- $ctx := dict "root" $ "component" $component -}}
{{- $subjects := list -}}
{{- if include "wxpush.trustMesh" $ -}}
{{- $subjects = append $subjects (printf "spiffe://%s" (include "wxpush.principal" $ctx)) -}}
{{- end -}}
{{- if $.Values.auth.callAs.serviceAccountToken -}}
{{- $subjects = append $subjects (printf "system:serviceaccount:%s:%s" $.Release.Namespace (include "wxpush.name" $ctx)) -}}
{{- end -}}
{{- $callers = append $callers (dict "name" (printf "wxpush-%s" $component) "subjects" $subjects "apps" (list "*") "operations" (list "token")) -}}
{{- end -}}
{{- if and (include "wxpush.trustMesh" .) (include "wxpush.testTemplateKey" .) -}}
{{- $test := printf "spiffe://%s/ns/%s/sa/%s" .Values.istio.trustDomain .Release.Namespace (include "wxpush.testAccount" .) -}}
{{- $callers = append $callers (dict "name" "wxpush-test" "subjects" (list $test) "apps" (list "*") "operations" (list)) -}}
{{- end -}}
{{- concat $callers .Values.auth.callers | toYaml -}}
{{- end -}}

{{/* Fails when auth cannot work as configured: an unknown mode; with mode
on no way to recognise a caller, or none for the suite's own hops; a JWT
setting without its Secret or a Secret without issuer and audience; a
caller with a reserved name or a subject of the chart's own callers; a
token.extraCallers principal without a caller holding `token`. */}}
{{- define "wxpush.requireAuth" -}}
{{- $auth := .Values.auth -}}
{{- $jwt := $auth.jwt -}}
{{- $mode := include "wxpush.authMode" . -}}
{{- if not (has $mode (list "on" "off")) -}}
{{- fail (printf "auth.mode must be on or off, not %s" $mode) -}}
{{- end -}}
{{- if $jwt.existingSecret -}}
{{- range $field := list "key" "issuer" "audience" -}}
{{- if not (index $jwt $field) -}}
{{- fail (printf "auth.jwt.%s is required with auth.jwt.existingSecret" $field) -}}
{{- end -}}
{{- end -}}
{{- if and $jwt.jwksUri $jwt.jwks -}}
{{- fail "auth.jwt: set jwksUri or jwks, not both (the keys Istio's RequestAuthentication checks tokens with)" -}}
{{- end -}}
{{- else -}}
{{- range $field := list "key" "issuer" "audience" "jwksUri" "jwks" -}}
{{- if index $jwt $field -}}
{{- fail (printf "auth.jwt.existingSecret is required with auth.jwt.%s: the Secret holding the HS256 secret or the public key the services verify tokens with" $field) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if and $auth.callAs.serviceAccountToken (not $jwt.existingSecret) -}}
{{- fail "auth.callAs.serviceAccountToken needs auth.jwt (the cluster's service-account token issuer and its public key): the services must verify the tokens their peers present" -}}
{{- end -}}
{{- if and $auth.callAs.serviceAccountToken (eq $jwt.keyType "hs256") -}}
{{- fail "auth.callAs.serviceAccountToken needs auth.jwt.keyType public or jwks: service-account tokens are signed with the cluster's key (RS256 or ES256), never HS256" -}}
{{- end -}}
{{- if eq $mode "on" -}}
{{- if not (or (include "wxpush.trustMesh" .) $jwt.existingSecret) -}}
{{- fail "auth.mode is on but no caller can be recognised: set auth.trustMesh (behind Istio, istio.enabled) or auth.jwt, or auth.mode off to let anyone call" -}}
{{- end -}}
{{- if not (or (include "wxpush.trustMesh" .) $auth.callAs.serviceAccountToken) -}}
{{- fail "auth.mode is on but the suite's own calls (delivery -> template, delivery -> token, template -> token) carry no identity: set auth.trustMesh (behind Istio, istio.enabled) or auth.callAs.serviceAccountToken, or auth.mode off" -}}
{{- end -}}
{{- end -}}
{{- $own := dict -}}
{{- range (fromYamlArray (include "wxpush.callers" .)) -}}
{{- if hasPrefix "wxpush-" .name -}}
{{- range .subjects -}}
{{- $_ := set $own . true -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $names := dict -}}
{{- range $i, $c := $auth.callers -}}
{{- if hasPrefix "wxpush-" $c.name -}}
{{- fail (printf "auth.callers[%d]: the name %s is reserved (wxpush-* are the chart's own callers)" $i $c.name) -}}
{{- end -}}
{{- if hasKey $names $c.name -}}
{{- fail (printf "auth.callers: two callers are named %s" $c.name) -}}
{{- end -}}
{{- $_ := set $names $c.name true -}}
{{- range $c.subjects -}}
{{- if hasKey $own . -}}
{{- fail (printf "auth.callers[%d] (%s): subject %s is the chart's own caller (delivery's, template's or helm test's)" $i $c.name .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- if eq $mode "on" -}}
{{- $tokenHolders := dict -}}
{{- range $auth.callers -}}
{{- if has "token" .operations -}}
{{- range .subjects -}}
{{- $_ := set $tokenHolders (trimPrefix "spiffe://" .) true -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- range .Values.token.extraCallers -}}
{{- if not (hasKey $tokenHolders .) -}}
{{- fail (printf "token.extraCallers: %s may reach the token service but no caller in auth.callers holds operation token with subject spiffe://%s: add one, or auth.mode off" . .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's `auth:` section (dict "root" $ "component" "token"): the
same callers everywhere; the JWT key where the Deployment mounts it; the
service-account token delivery and template present on their own calls. */}}
{{- define "wxpush.authConfig" -}}
{{- $ := .root -}}
{{- $auth := $.Values.auth -}}
{{- if eq (include "wxpush.authMode" $) "off" -}}
{{- dict "mode" "off" | toYaml -}}
{{- else -}}
{{- $config := dict "mode" "on" "trust_mesh" (not (not (include "wxpush.trustMesh" $))) "callers" (fromYamlArray (include "wxpush.callers" $)) -}}
{{- with $auth.jwt.existingSecret -}}
{{- $jwt := dict "issuer" $auth.jwt.issuer "audience" $auth.jwt.audience "leeway_secs" (int $auth.jwt.leewaySecs) -}}
{{- $_ := set $jwt (get (dict "hs256" "hs256_secret_file" "public" "public_key_file" "jwks" "jwks_file") $auth.jwt.keyType) (include "wxpush.jwtKeyFile" $) -}}
{{- $_ := set $config "jwt" $jwt -}}
{{- end -}}
{{- if and $auth.callAs.serviceAccountToken (has .component (splitList " " (include "wxpush.ownCallers" $))) -}}
{{- $_ := set $config "call_as" (dict "token_file" "/var/run/secrets/wxpush/call-as/token") -}}
{{- end -}}
{{- toYaml $config -}}
{{- end -}}
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
{{- $_ := set $config "auth" (fromYaml (include "wxpush.authConfig" .)) }}
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
