#!/usr/bin/env bats
# The Kubernetes manifests: valid against the API schemas, no unknown
# field, dt's policy; and each check shown to fail on a broken copy.

load test_helper/common

setup_file() {
	"$BATS_TEST_DIRNAME/../tools/k8s-validate/install" >&2
}

setup() {
	dt_common_setup
	if [ "${DT_SANITIZED:-0}" = 1 ]; then
		skip "no C program runs here; the plain run covers it"
	fi
	cp -r "$DT_ROOT/k8s" "$BATS_TEST_TMPDIR/k8s"
	cd "$BATS_TEST_TMPDIR"
	VERSION=$(sed -n 's/^VERSION *= *//p' "$DT_ROOT/Makefile")
}

v() {
	node "$DT_ROOT/tools/k8s-validate/validate.js" "$@"
}

# check [DIR]: the validator over DIR (k8s) and the example Secret.
check() {
	v k8s --version "$VERSION" "${1:-k8s}" k8s/secret.example.yaml
}

cron=k8s/base/batch-analyzer-cronjob.yaml
head="k8s-validate: $cron: CronJob/batch-analyzer"
pod="spec.jobTemplate.spec.template.spec"
ctr="$pod.containers[0]"

# edit FILE SED-SCRIPT: edits FILE, failing when nothing changed.
edit() {
	cp "$1" "$1.orig"
	sed -i "$2" "$1"
	! cmp -s "$1" "$1.orig" || fail "edit $1: '$2' changed nothing"
	rm "$1.orig"
}

@test "k8s: the default deployment validates" {
	run -0 --separate-stderr check k8s
	assert_equal "$stderr" "k8s-validate: 6 objects valid: k8s k8s/secret.example.yaml"
}

@test "k8s: the scale-out overlay validates" {
	run -0 --separate-stderr check k8s/overlays/scale-out
	assert_equal "$stderr" "k8s-validate: 6 objects valid: k8s/overlays/scale-out k8s/secret.example.yaml"
}

@test "k8s: the existing-namespace overlay validates" {
	run -0 --separate-stderr v k8s --version "$VERSION" k8s/overlays/existing-namespace k8s/overlays/existing-namespace/secrets.example.yaml
	assert_equal "$stderr" "k8s-validate: 6 objects valid: k8s/overlays/existing-namespace k8s/overlays/existing-namespace/secrets.example.yaml"
}

# objs DIR: the rendered objects, one JSON object a line.
objs() {
	v render "$1" >objs.json || fail "render $1"
}

@test "k8s: the existing-namespace overlay creates no Namespace and reads the team's two Secrets" {
	objs k8s/overlays/existing-namespace
	run -0 jq -rs 'map("\(.kind)/\(.metadata.name) \(.metadata.namespace)") | sort[]' objs.json
	assert_output - <<-'EOF'
		ConfigMap/batch-analyzer-config production
		CronJob/batch-analyzer production
		NetworkPolicy/batch-analyzer production
		ServiceAccount/batch-analyzer production
	EOF
	run -0 jq -r 'select(.kind == "CronJob") | .spec.jobTemplate.spec.template.spec.containers[0].env[]
	    | select(.valueFrom.secretKeyRef or .valueFrom.configMapKeyRef)
	    | "\(.name) \(.valueFrom | keys[0]) \(.valueFrom[.valueFrom | keys[0]] | "\(.name) \(.key)")"' objs.json
	assert_output - <<-'EOF'
		SUPABASE_URL secretKeyRef supabase-credentials SUPABASE_URL
		SUPABASE_KEY secretKeyRef supabase-credentials SUPABASE_KEY
		PERPLEXITY_API_KEY secretKeyRef api-credentials PERPLEXITY_API_KEY
		TELEGRAM_BOT_TOKEN secretKeyRef api-credentials TELEGRAM_BOT_TOKEN
		TELEGRAM_CHAT_ID configMapKeyRef batch-analyzer-config TELEGRAM_CHAT_ID
		DT_BUDGET_USD configMapKeyRef batch-analyzer-config DT_BUDGET_USD
		DT_PACK configMapKeyRef batch-analyzer-config DT_PACK
		DT_PUSHGATEWAY_URL configMapKeyRef batch-analyzer-config DT_PUSHGATEWAY_URL
	EOF
	run -0 jq -c 'select(.kind == "ConfigMap") | .data' objs.json
	assert_output '{"DT_BUDGET_USD":"5","DT_PACK":"10","TELEGRAM_CHAT_ID":"-1000000000000"}'
	run -0 jq -r 'select(.kind == "CronJob") | .spec.suspend' objs.json
	assert_output false
}

@test "k8s: the namespace is named in one place, and changing it moves everything" {
	# Comments aside: the example commands in them name it too.
	run -0 grep -rn '^[^#]*production' k8s/overlays
	assert_output --regexp '^k8s/overlays/existing-namespace/kustomization.yaml:[0-9]+:namespace: production$'
	run -0 grep -rn '^ *namespace:' k8s/overlays/existing-namespace k8s/overlays/preflight
	assert_output --regexp '^k8s/overlays/existing-namespace/kustomization.yaml:[0-9]+:namespace: production$'
	edit k8s/overlays/existing-namespace/kustomization.yaml 's/^namespace: production$/namespace: team-x/'
	run -0 --separate-stderr v k8s --version "$VERSION" k8s/overlays/preflight k8s/overlays/existing-namespace/secrets.example.yaml
	objs k8s/overlays/preflight
	run -0 jq -rs 'map("\(.kind) \(.metadata.namespace)") | sort[]' objs.json
	assert_output - <<-'EOF'
		ConfigMap team-x
		CronJob team-x
		Job team-x
		NetworkPolicy team-x
		ServiceAccount team-x
	EOF
}

@test "k8s: an overlay that would relabel a shared namespace is refused" {
	mkdir k8s/overlays/shared
	printf 'namespace: production\nresources:\n  - ../../base\n' >k8s/overlays/shared/kustomization.yaml
	run -1 --separate-stderr check k8s/overlays/shared
	assert_equal "${stderr_lines[0]}" "k8s-validate: k8s/base/namespace.yaml: Namespace/production: metadata.name: policy: dt creates no namespace but its own (dt): applying this would create or relabel namespace production; delete it in the overlay (\$patch: delete) or name it with --own-namespace"
	assert_equal "${stderr_lines[1]}" "k8s-validate: 1 problem"
	# Deleting dt's Namespace object is the fix; so is naming the own one.
	printf 'patches:\n  - patch: |-\n      $patch: delete\n      apiVersion: v1\n      kind: Namespace\n      metadata:\n        name: dt\n' >>k8s/overlays/shared/kustomization.yaml
	run -0 --separate-stderr check k8s/overlays/shared
	edit k8s/overlays/shared/kustomization.yaml '/^patches:/,$d'
	run -0 --separate-stderr v k8s --own-namespace production --version "$VERSION" k8s/overlays/shared k8s/secret.example.yaml
}

@test "k8s: the preflight Job runs dt-entrypoint --preflight with the CronJob's image and environment, the schedule suspended" {
	run -0 --separate-stderr v k8s --version "$VERSION" k8s/overlays/preflight k8s/overlays/existing-namespace/secrets.example.yaml
	assert_equal "$stderr" "k8s-validate: 7 objects valid: k8s/overlays/preflight k8s/overlays/existing-namespace/secrets.example.yaml"
	objs k8s/overlays/preflight
	jq -c 'select(.kind == "CronJob") | .spec.jobTemplate.spec.template.spec.containers[0] | [.image, .env]' objs.json >cron
	jq -c 'select(.kind == "Job") | .spec.template.spec.containers[0] | [.image, .env]' objs.json >job
	run -0 diff cron job
	run -0 jq -r 'select(.kind == "Job") | .spec.template.spec.containers[0].args | join(" ")' objs.json
	assert_output --preflight
	run -0 jq -r 'select(.kind == "CronJob") | .spec.suspend' objs.json
	assert_output true
	grep -q '"SUPABASE_KEY"' job || fail "the Job has no SUPABASE_KEY"
}

@test "k8s-validate: the renderer gives what kustomize v5.5.0 gave for each case" {
	local d n=0
	for d in "$DT_ROOT"/t/fixtures/kustomize/*/; do
		[ -f "$d/want.canon" ] || continue
		v render "$d" >got || fail "render $d"
		run -0 diff "$d/want.canon" got
		n=$((n + 1))
	done
	[ "$n" -eq 6 ] || fail "$n cases"
}

# kubectl_v5: true when kubectl's kustomize is v5 (Debian's kubectl 1.20
# embeds v2, which cannot read these kustomizations).
kubectl_v5() {
	command -v kubectl >/dev/null || return 1
	kubectl version --client -o json 2>/dev/null |
	    jq -e '.kustomizeVersion | test("^v5[.]")' >/dev/null
}

@test "k8s: the renderer agrees with kubectl kustomize" {
	kubectl_v5 || skip "no kubectl with kustomize v5: the recorded cases above stand in"
	local d
	for d in k8s k8s/overlays/scale-out k8s/overlays/existing-namespace k8s/overlays/preflight \
	    "$DT_ROOT"/t/fixtures/kustomize/*/; do
		[ "$d" != "$DT_ROOT/t/fixtures/kustomize/base/" ] || continue
		kubectl kustomize "$d" >kk.yaml 2>kk.err || fail "kubectl kustomize $d: $(cat kk.err)"
		v canon kk.yaml >want
		v render "$d" >got
		run -0 diff want got
	done
}

@test "k8s: the image tag must be the Makefile's VERSION" {
	edit k8s/base/kustomization.yaml 's/newTag: ".*"/newTag: "9.9.9"/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $ctr.image: policy: registry.digitalocean.com/your-registry/dt:9.9.9: tag 9.9.9 is not the Makefile's VERSION $VERSION"
}

@test "k8s: a value of the wrong type fails the schema" {
	edit $cron 's/backoffLimit: 2/backoffLimit: two/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: spec.jobTemplate.spec.backoffLimit: schema: must be integer"
}

@test "k8s: a misspelt field is an unknown field, and its setting is missing" {
	edit $cron 's/readOnlyRootFilesystem: true/readOnlyRootFileSystem: true/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $ctr.securityContext.readOnlyRootFileSystem: unknown field"
	assert_equal "${stderr_lines[1]}" "$head: $ctr.securityContext.readOnlyRootFilesystem: policy: must be true: the image writes only to /tmp"
	assert_equal "${stderr_lines[2]}" "k8s-validate: 2 problems"
}

@test "k8s: an unknown field inside a map of objects is found" {
	edit k8s/base/batch-analyzer-networkpolicy.yaml 's/^          port: 443/          port: 443\n          portName: https/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "k8s-validate: k8s/base/batch-analyzer-networkpolicy.yaml: NetworkPolicy/batch-analyzer: spec.egress[1].ports[0].portName: unknown field"
}

@test "k8s: a duplicate YAML key is an error" {
	edit $cron 's/^  timeZone: Etc\/UTC/  timeZone: Etc\/UTC\n  timeZone: Europe\/Moscow/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "k8s-validate: $cron: YAML: Map keys must be unique at line 14, column 3"
}

@test "k8s: a kustomization field the renderer does not apply is an error" {
	printf 'commonLabels:\n  a: b\n' >>k8s/base/kustomization.yaml
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "k8s-validate: k8s/base/kustomization.yaml: kustomization: field commonLabels is not supported by this checker"
}

@test "k8s: runAsNonRoot must be true" {
	edit $cron '0,/runAsNonRoot: true/s//runAsNonRoot: false/'
	edit $cron 's/^                runAsNonRoot: true$/                runAsNonRoot: false/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $ctr.securityContext.runAsNonRoot: policy: must be true (restricted PSS)"
}

@test "k8s: the UID must be above 10000" {
	edit $cron 's/runAsUser: 10001/runAsUser: 1000/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $pod.securityContext.runAsUser: policy: must be above 10000"
	assert_equal "${stderr_lines[1]}" "$head: $ctr.securityContext.runAsUser: policy: must be set above 10000"
}

@test "k8s: privilege escalation must be off" {
	edit $cron 's/allowPrivilegeEscalation: false/allowPrivilegeEscalation: true/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $ctr.securityContext.allowPrivilegeEscalation: policy: must be false (restricted PSS)"
}

@test "k8s: every capability must be dropped" {
	edit $cron 's/- ALL$/- NET_RAW/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $ctr.securityContext.capabilities.drop: policy: must drop ALL (restricted PSS)"
}

@test "k8s: seccomp must be RuntimeDefault" {
	edit $cron 's/type: RuntimeDefault/type: Unconfined/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $ctr.securityContext.seccompProfile: policy: must be RuntimeDefault (restricted PSS)"
}

@test "k8s: /tmp must be an emptyDir" {
	edit $cron 's|mountPath: /tmp|mountPath: /var/tmp|'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $ctr.volumeMounts: policy: /tmp must be an emptyDir (the root filesystem is read-only)"
}

@test "k8s: a hostPath volume is refused" {
	edit $cron 's|^              emptyDir:$|              hostPath:\n                path: /tmp\n              emptyDir:|'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $pod.volumes[0].hostPath: policy: volume type not allowed (restricted PSS)"
}

@test "k8s: resources must have limits" {
	edit $cron '/^                limits:/,/memory:/{/memory:/d}'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $ctr.resources.limits.memory: policy: must be set"
}

@test "k8s: the latest tag is refused" {
	edit k8s/base/kustomization.yaml 's/newTag: ".*"/newTag: latest/'
	run -1 --separate-stderr v k8s k8s k8s/secret.example.yaml
	assert_equal "${stderr_lines[0]}" "$head: $ctr.image: policy: registry.digitalocean.com/your-registry/dt:latest: never the latest tag; pin a version"
}

@test "k8s: an image without a tag is refused" {
	edit k8s/base/kustomization.yaml '/newTag:/d'
	edit $cron 's/image: dt:.*/image: dt/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $ctr.image: policy: registry.digitalocean.com/your-registry/dt: needs an explicit version tag"
}

@test "k8s: the ServiceAccount must not mount a token" {
	edit k8s/base/batch-analyzer-rbac.yaml 's/^automountServiceAccountToken: false/automountServiceAccountToken: true/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "k8s-validate: k8s/base/batch-analyzer-rbac.yaml: ServiceAccount/batch-analyzer: automountServiceAccountToken: policy: must be false: the pod needs no Kubernetes API access (CIS 5.1.6)"
}

@test "k8s: the pod must not mount a token" {
	edit $cron '/^          automountServiceAccountToken: false/d'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $pod.automountServiceAccountToken: policy: must be false: the pod needs no Kubernetes API access"
}

@test "k8s: no Role may grant access to secrets" {
	cat >k8s/base/role.yaml <<-'EOF'
		apiVersion: rbac.authorization.k8s.io/v1
		kind: Role
		metadata:
		  name: read-secrets
		rules:
		  - apiGroups: [""]
		    resources: ["secrets"]
		    verbs: ["get"]
	EOF
	edit k8s/base/kustomization.yaml 's/^  - namespace.yaml/  - namespace.yaml\n  - role.yaml/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "k8s-validate: k8s/base/role.yaml: Role/read-secrets: rules[0].resources: policy: no Role may reach secrets: the kubelet injects them, the pod needs no API access"
}

@test "k8s: the schedule needs a time zone" {
	edit $cron '/^  timeZone:/d'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: spec.timeZone: policy: must be set (Etc/UTC): the schedule must not follow the controller's zone"
}

@test "k8s: scheduled runs must not overlap" {
	edit $cron 's/concurrencyPolicy: Forbid/concurrencyPolicy: Allow/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: spec.concurrencyPolicy: policy: must be Forbid: two scheduled runs never overlap"
}

@test "k8s: configuration errors (78) must fail the Job" {
	edit $cron 's/values: \[1, 64, 65, 69, 75, 78\]/values: [1, 64, 65, 69, 75]/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: spec.jobTemplate.spec.podFailurePolicy: policy: must FailJob on exit code 78"
}

@test "k8s: usage errors (64) must fail the Job" {
	edit $cron 's/values: \[1, 64, 65, 69, 75, 78\]/values: [1, 65, 69, 75, 78]/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: spec.jobTemplate.spec.podFailurePolicy: policy: must FailJob on exit code 64"
}

@test "k8s: a run that stopped at its deadline or budget (75) must fail the Job, not be retried" {
	edit $cron 's/values: \[1, 64, 65, 69, 75, 78\]/values: [1, 64, 65, 69, 78]/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: spec.jobTemplate.spec.podFailurePolicy: policy: must FailJob on exit code 75"
}

@test "k8s: exit codes out of order are refused as the API server would" {
	edit $cron 's/values: \[1, 64, 65, 69, 75, 78\]/values: [1, 78, 64, 65, 69, 75]/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: spec.jobTemplate.spec.podFailurePolicy.rules[1].onExitCodes.values: policy: must be unique and in ascending order"
}

@test "k8s: an eviction must not count as a failure" {
	edit $cron 's/- action: Ignore/- action: Count/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: spec.jobTemplate.spec.podFailurePolicy: policy: must Ignore DisruptionTarget: an evicted pod is not the run's fault"
}

@test "k8s: activeDeadlineSeconds is at most 3600" {
	edit $cron 's/activeDeadlineSeconds: 3600/activeDeadlineSeconds: 7200/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: spec.jobTemplate.spec.activeDeadlineSeconds: policy: must be set, at most 3600: a stuck run must end before the next one"
}

@test "k8s: the run deadline leaves time to drain before the Job's" {
	edit $cron '/name: DT_DEADLINE_SECONDS/{n;s/value: "3000"/value: "3500"/}'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $ctr.env.DT_DEADLINE_SECONDS: policy: 3500 + TIMEOUT_SECONDS 300 + grace 120 exceeds activeDeadlineSeconds 3600: the run could be killed mid-drain"
}

@test "k8s: the drain fits in the grace period" {
	edit $cron 's/terminationGracePeriodSeconds: 120/terminationGracePeriodSeconds: 60/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $ctr.env.DT_DRAIN_SECONDS: policy: must be less than terminationGracePeriodSeconds 60"
}

@test "k8s: a secret as a literal value is refused" {
	edit $cron '/- name: SUPABASE_KEY/{n;N;N;N;s/.*/                  value: sb-secret/}'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $ctr.env[2]: policy: SUPABASE_KEY must come from a Secret, never a literal value"
	assert_equal "${stderr_lines[1]}" "$head: $ctr.env.SUPABASE_KEY: policy: must come from a Secret (secretKeyRef)"
}

@test "k8s: a required variable must be set" {
	edit $cron '/- name: TELEGRAM_CHAT_ID/,/key: TELEGRAM_CHAT_ID/d'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $ctr.env: policy: TELEGRAM_CHAT_ID must be set"
}

@test "k8s: a secretKeyRef must name a key of the Secret" {
	edit k8s/secret.example.yaml 's/^  TELEGRAM_BOT_TOKEN:/  TELEGRAM_TOKEN:/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $ctr.env[6]: policy: secretKeyRef: Secret batch-analyzer-secrets has no key TELEGRAM_BOT_TOKEN"
}

@test "k8s: the example Secret holds placeholders only" {
	edit k8s/secret.example.yaml 's/"REPLACE_ME_perplexity_api_key"/"pplx-0123456789abcdef"/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "k8s-validate: k8s/secret.example.yaml: Secret/batch-analyzer-secrets: stringData.PERPLEXITY_API_KEY: policy: the example must hold a REPLACE_ME placeholder, never a value"
}

@test "k8s: a Secret is never part of the kustomization" {
	cp k8s/secret.example.yaml k8s/base/secret.yaml
	edit k8s/base/kustomization.yaml 's/^  - namespace.yaml/  - namespace.yaml\n  - secret.yaml/'
	run -1 --separate-stderr v k8s --version "$VERSION" k8s
	assert_equal "${stderr_lines[0]}" "k8s-validate: k8s/base/secret.yaml: Secret/batch-analyzer-secrets: kind: policy: a Secret is never committed; create it from secret.example.yaml (docs/deploy.md)"
}

@test "k8s: a Job needs no liveness probe" {
	edit $cron 's/^              imagePullPolicy: IfNotPresent/              imagePullPolicy: IfNotPresent\n              livenessProbe:\n                exec:\n                  command: [python, -c, "1"]/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: $ctr.livenessProbe: policy: a Job needs none (the run ends by itself, or at its deadline)"
}

@test "k8s: egress is limited to DNS and HTTPS" {
	edit k8s/base/batch-analyzer-networkpolicy.yaml 's/port: 443/port: 80/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "k8s-validate: k8s/base/batch-analyzer-networkpolicy.yaml: NetworkPolicy/batch-analyzer: spec.egress[1].ports: policy: TCP 80: only DNS (53), HTTPS (443) and a Pushgateway's pods in the cluster (9091)"
}

@test "k8s: the Pushgateway's port is open to its pods in the cluster, not to addresses" {
	local np=k8s/base/batch-analyzer-networkpolicy.yaml
	local msg="k8s-validate: $np: NetworkPolicy/batch-analyzer: spec.egress[2].ports: policy: TCP 9091: only DNS (53), HTTPS (443) and a Pushgateway's pods in the cluster (9091)"
	# The ConfigMap's example URL is the service the rule lets through.
	grep -q '^  # DT_PUSHGATEWAY_URL: "http://pushgateway.monitoring.svc:9091"$' k8s/base/batch-analyzer-config.yaml
	cp $np "$BATS_TEST_TMPDIR/np"
	# Any pod of the namespace: refused.
	perl -0pi -e 's/\n {10}podSelector:\n {12}matchLabels:\n {14}app.kubernetes.io\/name: prometheus-pushgateway//' $np
	! cmp -s $np "$BATS_TEST_TMPDIR/np" || fail "the edit changed nothing"
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$msg"
	# An address block: refused.
	cp "$BATS_TEST_TMPDIR/np" $np
	perl -0pi -e 's/- namespaceSelector:\n {12}matchLabels:\n {14}kubernetes.io\/metadata.name: monitoring\n {10}podSelector:\n {12}matchLabels:\n {14}app.kubernetes.io\/name: prometheus-pushgateway/- ipBlock:\n            cidr: 10.0.0.0\/8/' $np
	! cmp -s $np "$BATS_TEST_TMPDIR/np" || fail "the edit changed nothing"
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$msg"
}

@test "k8s: the pod must be covered by a NetworkPolicy" {
	edit k8s/base/kustomization.yaml '/batch-analyzer-networkpolicy.yaml/d'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "$head: metadata: policy: no NetworkPolicy limits this pod's egress"
}

@test "k8s: the namespace enforces the restricted profile" {
	edit k8s/base/namespace.yaml 's/enforce: restricted/enforce: baseline/'
	run -1 --separate-stderr check
	assert_equal "${stderr_lines[0]}" "k8s-validate: k8s/base/namespace.yaml: Namespace/dt: metadata.labels: policy: pod-security.kubernetes.io/enforce must be restricted"
}

@test "k8s: scale-out shards must agree with completions" {
	edit k8s/overlays/scale-out/indexed-job.yaml 's/value: "4"/value: "3"/'
	run -1 --separate-stderr check k8s/overlays/scale-out
	assert_equal "${stderr_lines[0]}" "$head: $ctr.env.DT_SHARDS: policy: must equal completions (4)"
}

@test "k8s: scale-out without Indexed mode is refused" {
	edit k8s/overlays/scale-out/indexed-job.yaml 's/value: Indexed/value: NonIndexed/'
	run -1 --separate-stderr check k8s/overlays/scale-out
	assert_equal "${stderr_lines[0]}" "$head: spec.jobTemplate.spec.parallelism: policy: several pods need completionMode Indexed (one reporter, index 0)"
}

@test "k8s: a patch that matches nothing is an error" {
	edit k8s/overlays/scale-out/kustomization.yaml 's/name: batch-analyzer/name: batch-analyser/'
	run -1 --separate-stderr check k8s/overlays/scale-out
	assert_equal "${stderr_lines[0]}" "k8s-validate: k8s/overlays/scale-out/kustomization.yaml: patches: target {\"group\":\"batch\",\"version\":\"v1\",\"kind\":\"CronJob\",\"name\":\"batch-analyser\"} matches nothing"
}

# refs DIR: checks that every 'docs/X.md, [words] "Heading"' in DIR's YAML
# files names a heading of that document; prints the count.
refs() {
	node - "$1" <<-'EOF'
		const fs = require('fs'), path = require('path');
		const files = [];
		const walk = d => fs.readdirSync(d, { withFileTypes: true }).forEach(e => {
			const p = path.join(d, e.name);
			if (e.isDirectory()) walk(p); else if (/\.ya?ml$/.test(e.name)) files.push(p);
		});
		walk(process.argv[2]);
		let n = 0, bad = 0;
		for (const f of files.sort()) {
			const text = fs.readFileSync(f, 'utf8').split('\n')
			    .map(l => l.replace(/^\s*#\s?/, '')).join(' ').replace(/\s+/g, ' ');
			for (const m of text.matchAll(/(docs\/[a-z]+\.md),(?: [a-z ]+)? "([^"]+)"/g)) {
				n++;
				const doc = path.join(process.env.DT_ROOT, m[1]);
				const heads = fs.readFileSync(doc, 'utf8').split('\n')
				    .filter(l => /^#+ /.test(l)).map(l => l.replace(/^#+ /, ''));
				if (!heads.includes(m[2])) {
					console.log(`${f}: ${m[1]} has no heading "${m[2]}"`);
					bad++;
				}
			}
		}
		console.log(`${n} references`);
		process.exit(bad ? 1 : 0);
	EOF
}

@test "k8s: every reference to docs/ in the manifests names a heading there" {
	run -0 refs k8s
	assert_output --regexp '^[0-9]+ references$'
	[ "${output% references}" -ge 5 ] || fail "only $output"
	edit k8s/secret.example.yaml 's/runbook$/"Secrets"/'
	run -1 refs k8s
	assert_line 'k8s/secret.example.yaml: docs/deploy.md has no heading "Secrets"'
}

@test "k8s: a strategic-merge patch that matches nothing is an error" {
	edit k8s/overlays/existing-namespace/cronjob.yaml 's/^  name: batch-analyzer$/  name: batch-analyser/'
	run -1 --separate-stderr v k8s --version "$VERSION" k8s/overlays/existing-namespace k8s/overlays/existing-namespace/secrets.example.yaml
	assert_equal "${stderr_lines[0]}" "k8s-validate: k8s/overlays/existing-namespace/cronjob.yaml: patch: CronJob/batch-analyser matches no resource"
}

@test "k8s: a strategic-merge directive the renderer does not apply is an error" {
	edit k8s/overlays/existing-namespace/cronjob.yaml 's/^  suspend: false$/  suspend: false\n  $retainKeys: [suspend]/'
	run -1 --separate-stderr v k8s --version "$VERSION" k8s/overlays/existing-namespace k8s/overlays/existing-namespace/secrets.example.yaml
	assert_equal "${stderr_lines[0]}" "k8s-validate: k8s/overlays/existing-namespace/cronjob.yaml: patch: directive \$retainKeys is not supported by this checker"
}

@test "k8s-validate: usage errors exit 64" {
	run -64 --separate-stderr v k8s
	assert_equal "${stderr_lines[0]}" "k8s-validate: no PATH"
	run -64 --separate-stderr v frobnicate
	assert_equal "${stderr_lines[0]}" "k8s-validate: unknown command frobnicate"
}

@test "k8s: every run has a budget: DT_BUDGET_USD from the ConfigMap, a positive number" {
	local d
	for d in k8s k8s/overlays/scale-out k8s/overlays/existing-namespace k8s/overlays/preflight; do
		v render "$d" >rendered.ndjson
		run -0 jq -r 'select(.kind == "CronJob" or .kind == "Job") | [.spec.jobTemplate.spec.template, .spec.template][]
			| select(. != null) | .spec.containers[0].env[]
			| select(.name == "DT_BUDGET_USD") | .valueFrom.configMapKeyRef | "\(.name) \(.key) \(.optional // false)"' rendered.ndjson
		[ "$(sort -u <<<"$output")" = "batch-analyzer-config DT_BUDGET_USD false" ] || fail "$d: $output"
		run -0 jq -r 'select(.kind == "ConfigMap" and .metadata.name == "batch-analyzer-config") | .data.DT_BUDGET_USD' rendered.ndjson
		[[ $output =~ ^[0-9]+(\.[0-9]+)?$ ]] && awk -v b="$output" 'BEGIN { exit !(b > 0) }' ||
			fail "$d: DT_BUDGET_USD: '$output' is not a positive number"
	done
	PERPLEXITY_API_KEY=pplx-test DT_BUDGET_USD=$output run -0 dt-analyze --check-config
}
