/*
 * policy.js: dt's deployment policy, checked over one applied set of
 * objects.  Each rule says why in its message; docs/deploy.md explains
 * the choices.
 *
 * Pods (every pod template): the restricted Pod Security Standard
 * (non-root with UID/GID above 10000, no privilege escalation, ALL
 * capabilities dropped, RuntimeDefault seccomp, no host namespaces, ports
 * or paths), a read-only root filesystem with an emptyDir at /tmp, CPU and
 * memory requests and limits, an image pinned by a version tag (or a
 * digest) and never "latest", no service account token, no liveness
 * probe, secrets only through secretKeyRef.
 *
 * Jobs and CronJobs: timeZone, concurrencyPolicy Forbid,
 * startingDeadlineSeconds, history limits, activeDeadlineSeconds of at
 * most 3600, backoffLimit, restartPolicy Never, a podFailurePolicy that
 * fails the Job on exit codes 64 and 78 and ignores disruptions,
 * dt's environment, a run deadline that leaves time to drain, and for an
 * Indexed Job the shard variables agreeing with completions.
 *
 * RBAC and network: no Role or ClusterRole that reaches Secrets, every
 * ServiceAccount with automountServiceAccountToken false, a NetworkPolicy
 * that lets the pods out only to DNS and HTTPS, no Namespace object but
 * dt's own (opts.ownNamespace, dt), which enforces the restricted
 * profile, Secrets never part of a kustomization and the example Secret
 * holding placeholders only.
 */
'use strict';

const path = require('path');
const { podSpecs, splitImage } = require('./kustomize');

const REQUIRED_ENV = ['SUPABASE_URL', 'SUPABASE_KEY', 'PERPLEXITY_API_KEY',
    'PERPLEXITY_BASE_URL', 'PERPLEXITY_MODEL', 'TELEGRAM_BOT_TOKEN',
    'TELEGRAM_CHAT_ID', 'BATCH_SIZE', 'MAX_WORKERS', 'TIMEOUT_SECONDS',
    'DT_DEADLINE_SECONDS'];
const SECRET_ENV = ['SUPABASE_KEY', 'PERPLEXITY_API_KEY', 'TELEGRAM_BOT_TOKEN'];
const SECRET_NAME = /(KEY|TOKEN|SECRET|PASSWORD)$/;
const PLACEHOLDER = /^REPLACE_ME/;
const ALLOWED_VOLUMES = ['configMap', 'downwardAPI', 'emptyDir', 'projected',
    'secret', 'csi', 'ephemeral', 'persistentVolumeClaim'];
const MAX_ACTIVE_DEADLINE = 3600;
/*
 * Exit codes a Job must not retry: 64 and 78 need a human; 75 is a run
 * that stopped at its deadline or its budget, and a retry pod would spend
 * the budget again.
 */
const FAILJOB_CODES = [64, 75, 78];

function checkPolicy(items, opts = {}) {
	const out = [];
	const add = (it, where, msg) => out.push({
		file: it.file, label: `${it.obj.kind}/${(it.obj.metadata || {}).name}`,
		where, msg });
	const objs = items.filter(it => it.obj && typeof it.obj === 'object' &&
	    it.obj.kind && it.obj.metadata);
	const byKind = k => objs.filter(it => it.obj.kind === k);

	for (const it of objs) {
		switch (it.obj.kind) {
		case 'CronJob': checkCronJob(it, add, objs, opts); break;
		case 'Job': checkJobSpec(it, it.obj.spec || {}, 'spec', add, objs, opts); break;
		case 'Role': case 'ClusterRole': checkRole(it, add); break;
		case 'ServiceAccount':
			if (it.obj.automountServiceAccountToken !== false)
				add(it, 'automountServiceAccountToken',
				    'must be false: the pod needs no Kubernetes API access (CIS 5.1.6)');
			break;
		case 'Secret': checkSecret(it, add); break;
		case 'Namespace': checkNamespace(it, add, opts); break;
		case 'Pod': case 'Deployment': case 'StatefulSet': case 'DaemonSet':
		case 'ReplicaSet':
			add(it, 'kind', 'dt runs only as a Job or CronJob');
			break;
		default: break;
		}
	}
	checkNetwork(objs, byKind('NetworkPolicy'), add);
	return out;
}

/*
 * dt may create (and label) its own namespace only.  kustomize's namespace
 * field renames every Namespace object, so an overlay that deploys into a
 * team's existing namespace without deleting dt's Namespace would apply
 * that namespace's metadata, labels included, over the team's own.
 */
function checkNamespace(it, add, opts) {
	const own = opts.ownNamespace || 'dt';
	const name = it.obj.metadata.name;
	if (name !== own) {
		add(it, 'metadata.name', `dt creates no namespace but its own (${own}): ` +
		    `applying this would create or relabel namespace ${name}; ` +
		    'delete it in the overlay ($patch: delete) or name it with --own-namespace');
		return;
	}
	const l = (it.obj.metadata || {}).labels || {};
	if (l['pod-security.kubernetes.io/enforce'] !== 'restricted')
		add(it, 'metadata.labels', 'pod-security.kubernetes.io/enforce must be restricted');
}

function checkSecret(it, add) {
	const base = path.basename(it.file);
	if (!/\.example\.ya?ml$/.test(base)) {
		add(it, 'kind', 'a Secret is never committed; create it from secret.example.yaml (docs/deploy.md)');
		return;
	}
	if (it.obj.data !== undefined)
		add(it, 'data', 'use stringData with REPLACE_ME placeholders in the example');
	for (const [k, v] of Object.entries(it.obj.stringData || {}))
		if (typeof v !== 'string' || !PLACEHOLDER.test(v))
			add(it, `stringData.${k}`, 'the example must hold a REPLACE_ME placeholder, never a value');
}

function checkRole(it, add) {
	(it.obj.rules || []).forEach((r, i) => {
		const res = r.resources || [];
		if (res.includes('secrets') || res.includes('*'))
			add(it, `rules[${i}].resources`,
			    'no Role may reach secrets: the kubelet injects them, the pod needs no API access');
		if ((r.verbs || []).includes('*') || (r.apiGroups || []).includes('*'))
			add(it, `rules[${i}]`, 'wildcard verbs or apiGroups are not allowed');
	});
}

function checkCronJob(it, add, objs, opts) {
	const s = it.obj.spec || {};
	if (typeof s.timeZone !== 'string' || s.timeZone === '')
		add(it, 'spec.timeZone', 'must be set (Etc/UTC): the schedule must not follow the controller\'s zone');
	if (s.concurrencyPolicy !== 'Forbid')
		add(it, 'spec.concurrencyPolicy', 'must be Forbid: two scheduled runs never overlap');
	if (!Number.isInteger(s.startingDeadlineSeconds))
		add(it, 'spec.startingDeadlineSeconds', 'must be set: a missed run is skipped, not started hours late');
	for (const k of ['successfulJobsHistoryLimit', 'failedJobsHistoryLimit'])
		if (!Number.isInteger(s[k]))
			add(it, `spec.${k}`, 'must be set');
	const js = (s.jobTemplate || {}).spec;
	if (!js) {
		add(it, 'spec.jobTemplate.spec', 'must be set');
		return;
	}
	checkJobSpec(it, js, 'spec.jobTemplate.spec', add, objs, opts);
}

function envMap(c) {
	const m = new Map();
	for (const e of c.env || [])
		if (e && typeof e.name === 'string')
			m.set(e.name, e);
	return m;
}

function intEnv(env, name) {
	const e = env.get(name);
	if (!e || typeof e.value !== 'string' || !/^\d+$/.test(e.value))
		return null;
	return Number(e.value);
}

function checkJobSpec(it, js, at, add, objs, opts) {
	if (!Number.isInteger(js.activeDeadlineSeconds) ||
	    js.activeDeadlineSeconds > MAX_ACTIVE_DEADLINE)
		add(it, `${at}.activeDeadlineSeconds`,
		    `must be set, at most ${MAX_ACTIVE_DEADLINE}: a stuck run must end before the next one`);
	if (!Number.isInteger(js.backoffLimit))
		add(it, `${at}.backoffLimit`, 'must be set');
	checkFailurePolicy(it, js, at, add);
	const ts = `${at}.template.spec`;
	const ps = (js.template || {}).spec;
	if (!ps) {
		add(it, ts, 'must be set');
		return;
	}
	if (ps.restartPolicy !== 'Never')
		add(it, `${ts}.restartPolicy`, 'must be Never: podFailurePolicy needs it, and a run is retried as a new pod');
	checkPod(it, ps, ts, add, objs, opts);

	const c = (ps.containers || [])[0];
	if (!c)
		return;
	const env = envMap(c);
	const ce = `${ts}.containers[0].env`;
	for (const n of REQUIRED_ENV)
		if (!env.has(n))
			add(it, ce, `${n} must be set`);
	for (const n of SECRET_ENV) {
		const e = env.get(n);
		if (e && !(e.valueFrom && e.valueFrom.secretKeyRef))
			add(it, `${ce}.${n}`, 'must come from a Secret (secretKeyRef)');
	}
	const deadline = intEnv(env, 'DT_DEADLINE_SECONDS');
	const timeout = intEnv(env, 'TIMEOUT_SECONDS');
	const grace = ps.terminationGracePeriodSeconds;
	if (!Number.isInteger(grace) || grace < 30)
		add(it, `${ts}.terminationGracePeriodSeconds`,
		    'must be set, at least 30: SIGTERM starts a drain that stores and reports');
	if (env.has('DT_DEADLINE_SECONDS') && deadline === null)
		add(it, `${ce}.DT_DEADLINE_SECONDS`, 'must be a whole number of seconds');
	if (deadline !== null && timeout !== null && Number.isInteger(grace) &&
	    Number.isInteger(js.activeDeadlineSeconds) &&
	    deadline + timeout + grace > js.activeDeadlineSeconds)
		add(it, `${ce}.DT_DEADLINE_SECONDS`,
		    `${deadline} + TIMEOUT_SECONDS ${timeout} + grace ${grace} exceeds ` +
		    `activeDeadlineSeconds ${js.activeDeadlineSeconds}: the run could be killed mid-drain`);
	const drain = intEnv(env, 'DT_DRAIN_SECONDS');
	if (drain !== null && Number.isInteger(grace) && drain >= grace)
		add(it, `${ce}.DT_DRAIN_SECONDS`,
		    `must be less than terminationGracePeriodSeconds ${grace}`);
	if (js.completionMode === 'Indexed')
		checkIndexed(it, js, env, at, ce, add);
	else if (js.parallelism !== undefined && js.parallelism !== 1)
		add(it, `${at}.parallelism`, 'several pods need completionMode Indexed (one reporter, index 0)');
}

function checkIndexed(it, js, env, at, ce, add) {
	if (!Number.isInteger(js.completions) || js.completions < 1 ||
	    js.parallelism !== js.completions)
		add(it, `${at}.parallelism`, 'an Indexed run needs parallelism equal to completions');
	const shards = intEnv(env, 'DT_SHARDS');
	if (shards !== js.completions)
		add(it, `${ce}.DT_SHARDS`, `must equal completions (${js.completions})`);
	const idx = env.get('DT_SHARD_INDEX');
	const fp = idx && idx.valueFrom && idx.valueFrom.fieldRef &&
	    idx.valueFrom.fieldRef.fieldPath;
	if (fp !== "metadata.annotations['batch.kubernetes.io/job-completion-index']")
		add(it, `${ce}.DT_SHARD_INDEX`, 'must come from the job-completion-index annotation');
}

function checkFailurePolicy(it, js, at, add) {
	const rules = (js.podFailurePolicy || {}).rules;
	if (!Array.isArray(rules)) {
		add(it, `${at}.podFailurePolicy`,
		    'must be set: configuration (78) and usage (64) errors fail the Job at once');
		return;
	}
	const failCodes = new Set();
	let ignoresDisruption = false;
	const names = (((js.template || {}).spec || {}).containers || []).map(c => c.name);
	rules.forEach((r, i) => {
		const ec = r.onExitCodes;
		if (!ec)
			return;
		const w = `${at}.podFailurePolicy.rules[${i}].onExitCodes`;
		const v = ec.values || [];
		/* What the API server's own validation refuses. */
		if (v.includes(0) && ec.operator === 'In')
			add(it, `${w}.values`, 'must not contain 0 with operator In');
		if (v.some((x, j) => j > 0 && x <= v[j - 1]))
			add(it, `${w}.values`, 'must be unique and in ascending order');
		if (ec.containerName !== undefined && !names.includes(ec.containerName))
			add(it, `${w}.containerName`, `no container ${ec.containerName}`);
	});
	for (const r of rules) {
		const ec = r.onExitCodes;
		if (r.action === 'FailJob' && ec && ec.operator === 'In')
			for (const v of ec.values || [])
				failCodes.add(v);
		if (r.action === 'Ignore' && (r.onPodConditions || [])
		    .some(p => p.type === 'DisruptionTarget'))
			ignoresDisruption = true;
	}
	for (const code of FAILJOB_CODES)
		if (!failCodes.has(code))
			add(it, `${at}.podFailurePolicy`, `must FailJob on exit code ${code}`);
	if (!ignoresDisruption)
		add(it, `${at}.podFailurePolicy`,
		    'must Ignore DisruptionTarget: an evicted pod is not the run\'s fault');
}

function secCtx(pod, c, key) {
	const cs = c.securityContext || {};
	if (cs[key] !== undefined)
		return cs[key];
	return (pod.securityContext || {})[key];
}

function checkImage(it, img, where, add, opts) {
	if (typeof img !== 'string' || img === '') {
		add(it, where, 'must be set');
		return;
	}
	const r = splitImage(img);
	if (r.digest)
		return;
	if (!r.tag)
		add(it, where, `${img}: needs an explicit version tag`);
	else if (r.tag === 'latest')
		add(it, where, `${img}: never the latest tag; pin a version`);
	else if (opts.version && r.tag !== opts.version)
		add(it, where, `${img}: tag ${r.tag} is not the Makefile's VERSION ${opts.version}`);
}

function checkPod(it, ps, at, add, objs, opts) {
	const psc = ps.securityContext || {};
	for (const k of ['hostNetwork', 'hostPID', 'hostIPC'])
		if (ps[k] === true)
			add(it, `${at}.${k}`, 'host namespaces are not allowed (restricted PSS)');
	if (ps.automountServiceAccountToken !== false)
		add(it, `${at}.automountServiceAccountToken`,
		    'must be false: the pod needs no Kubernetes API access');
	if (!ps.serviceAccountName || ps.serviceAccountName === 'default')
		add(it, `${at}.serviceAccountName`, 'must name dt\'s own ServiceAccount');
	else if (!objs.some(o => o.obj.kind === 'ServiceAccount' &&
	    o.obj.metadata.name === ps.serviceAccountName))
		add(it, `${at}.serviceAccountName`, `no ServiceAccount ${ps.serviceAccountName} in the set`);
	for (const k of ['runAsUser', 'runAsGroup'])
		if (psc[k] !== undefined && !(Number.isInteger(psc[k]) && psc[k] > 10000))
			add(it, `${at}.securityContext.${k}`, 'must be above 10000');
	const volumes = new Map();
	(ps.volumes || []).forEach((v, i) => {
		volumes.set(v.name, v);
		const types = Object.keys(v).filter(k => k !== 'name');
		for (const t of types)
			if (!ALLOWED_VOLUMES.includes(t))
				add(it, `${at}.volumes[${i}].${t}`, 'volume type not allowed (restricted PSS)');
	});
	const containers = [
	    ...(ps.initContainers || []).map((c, i) => [c, `${at}.initContainers[${i}]`]),
	    ...(ps.containers || []).map((c, i) => [c, `${at}.containers[${i}]`])];
	if (!ps.containers || ps.containers.length === 0)
		add(it, `${at}.containers`, 'must have a container');
	for (const [c, cw] of containers) {
		const sc = c.securityContext || {};
		if (secCtx(ps, c, 'runAsNonRoot') !== true)
			add(it, `${cw}.securityContext.runAsNonRoot`, 'must be true (restricted PSS)');
		for (const k of ['runAsUser', 'runAsGroup']) {
			const v = secCtx(ps, c, k);
			if (!(Number.isInteger(v) && v > 10000))
				add(it, `${cw}.securityContext.${k}`, 'must be set above 10000');
		}
		if (sc.allowPrivilegeEscalation !== false)
			add(it, `${cw}.securityContext.allowPrivilegeEscalation`, 'must be false (restricted PSS)');
		if (sc.privileged === true)
			add(it, `${cw}.securityContext.privileged`, 'must not be true (restricted PSS)');
		const caps = sc.capabilities || {};
		if (!(caps.drop || []).includes('ALL'))
			add(it, `${cw}.securityContext.capabilities.drop`, 'must drop ALL (restricted PSS)');
		if ((caps.add || []).length)
			add(it, `${cw}.securityContext.capabilities.add`, 'must add nothing');
		const sp = secCtx(ps, c, 'seccompProfile') || {};
		if (sp.type !== 'RuntimeDefault' && sp.type !== 'Localhost')
			add(it, `${cw}.securityContext.seccompProfile`, 'must be RuntimeDefault (restricted PSS)');
		if (sc.readOnlyRootFilesystem !== true)
			add(it, `${cw}.securityContext.readOnlyRootFilesystem`, 'must be true: the image writes only to /tmp');
		const tmp = (c.volumeMounts || []).find(m => m.mountPath === '/tmp');
		const tv = tmp && volumes.get(tmp.name);
		if (!tv || !tv.emptyDir)
			add(it, `${cw}.volumeMounts`, '/tmp must be an emptyDir (the root filesystem is read-only)');
		for (const p of c.ports || [])
			if (p.hostPort)
				add(it, `${cw}.ports`, 'hostPort is not allowed (restricted PSS)');
		const res = c.resources || {};
		for (const kind of ['requests', 'limits'])
			for (const r of ['cpu', 'memory'])
				if (!res[kind] || res[kind][r] === undefined)
					add(it, `${cw}.resources.${kind}.${r}`, 'must be set');
		checkImage(it, c.image, `${cw}.image`, add, opts);
		if (c.livenessProbe)
			add(it, `${cw}.livenessProbe`, 'a Job needs none (the run ends by itself, or at its deadline)');
		(c.env || []).forEach((e, i) => {
			if (SECRET_NAME.test(e.name) && e.value !== undefined)
				add(it, `${cw}.env[${i}]`, `${e.name} must come from a Secret, never a literal value`);
			checkRef(it, e.valueFrom || {}, `${cw}.env[${i}]`, add, objs);
		});
		for (const [i, ef] of (c.envFrom || []).entries())
			if (ef.secretRef)
				add(it, `${cw}.envFrom[${i}]`, 'name each secret with secretKeyRef instead');
	}
}

/* A configMapKeyRef or secretKeyRef must resolve within the set. */
function checkRef(it, vf, where, add, objs) {
	for (const [kind, key] of [['ConfigMap', 'configMapKeyRef'], ['Secret', 'secretKeyRef']]) {
		const ref = vf[key];
		if (!ref || ref.optional === true)
			continue;
		const o = objs.find(x => x.obj.kind === kind && x.obj.metadata.name === ref.name);
		if (!o) {
			add(it, where, `${key}: no ${kind} ${ref.name} in the set`);
			continue;
		}
		const keys = { ...(o.obj.data || {}), ...(o.obj.stringData || {}) };
		if (!(ref.key in keys))
			add(it, where, `${key}: ${kind} ${ref.name} has no key ${ref.key}`);
	}
}

function matchLabels(sel, labels) {
	return Object.entries((sel || {}).matchLabels || {})
	    .every(([k, v]) => (labels || {})[k] === v) &&
	    !((sel || {}).matchExpressions || []).length;
}

/* Each pod template must be selected by a NetworkPolicy that limits egress. */
function checkNetwork(objs, policies, add) {
	for (const it of policies) {
		const s = it.obj.spec || {};
		if (!(s.policyTypes || []).includes('Egress'))
			add(it, 'spec.policyTypes', 'must include Egress');
		if (!(s.policyTypes || []).includes('Ingress'))
			add(it, 'spec.policyTypes', 'must include Ingress (nothing may connect to the pod)');
		if ((s.ingress || []).length)
			add(it, 'spec.ingress', 'must be empty: the pod serves nothing');
		(s.egress || []).forEach((r, i) => {
			const ports = r.ports || [];
			/*
			 * A Pushgateway (9091) only inside the cluster: every
			 * peer names both its namespace and its pods.
			 */
			const inCluster = (r.to || []).length > 0 && r.to.every(t =>
			    !t.ipBlock && Object.keys(((t.namespaceSelector || {}).matchLabels) || {}).length &&
			    Object.keys(((t.podSelector || {}).matchLabels) || {}).length);
			if (ports.length === 0)
				add(it, `spec.egress[${i}].ports`, 'must be listed: egress only to DNS (53) and HTTPS (443)');
			for (const p of ports) {
				const ok = (p.port === 53 && (p.protocol === 'UDP' || p.protocol === 'TCP')) ||
				    (p.port === 443 && (p.protocol || 'TCP') === 'TCP') ||
				    (p.port === 9091 && (p.protocol || 'TCP') === 'TCP' && inCluster);
				if (!ok || p.endPort !== undefined)
					add(it, `spec.egress[${i}].ports`,
					    `${p.protocol || 'TCP'} ${p.port}${p.endPort ? '-' + p.endPort : ''}: only DNS (53), HTTPS (443) and a Pushgateway's pods in the cluster (9091)`);
			}
		});
	}
	for (const it of objs) {
		if (it.obj.kind !== 'CronJob' && it.obj.kind !== 'Job')
			continue;
		const tmpl = it.obj.kind === 'CronJob' ?
		    ((((it.obj.spec || {}).jobTemplate || {}).spec || {}).template || {}) :
		    ((it.obj.spec || {}).template || {});
		const labels = (tmpl.metadata || {}).labels;
		const ns = it.obj.metadata.namespace;
		if (podSpecs(it.obj).length && !policies.some(p =>
		    p.obj.metadata.namespace === ns && matchLabels(p.obj.spec.podSelector, labels) &&
		    (p.obj.spec.policyTypes || []).includes('Egress')))
			add(it, 'metadata', 'no NetworkPolicy limits this pod\'s egress');
	}
}

module.exports = { checkPolicy };
