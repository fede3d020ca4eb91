/*
 * kustomize.js: renders a kustomization the way `kubectl kustomize` does,
 * for the subset dt's k8s/ uses, so the manifests can be checked where no
 * kustomize binary exists.  Anything outside that subset is an error, never
 * silently skipped: a field this renderer does not apply would make the
 * checked objects differ from the applied ones.  t/6xx compares its output
 * with `kubectl kustomize` where kubectl is installed.
 *
 * Supported: resources (files and directories), namespace, images
 * (name, newName, newTag, digest) and patches given as JSON 6902 operation
 * lists (path or inline patch) with a target of kind/name/group/version.
 */
'use strict';

const fs = require('fs');
const path = require('path');
const YAML = require('yaml');

const KUSTOMIZATION_FIELDS = new Set(['apiVersion', 'kind', 'namespace',
    'resources', 'images', 'patches']);
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole',
    'ClusterRoleBinding', 'PersistentVolume', 'StorageClass',
    'CustomResourceDefinition', 'PriorityClass']);

function fail(file, msg) {
	const e = new Error(msg);
	e.file = file;
	throw e;
}

/* Parses a YAML stream strictly (duplicate keys are errors). */
function parseYaml(file, text) {
	const out = [];
	for (const d of YAML.parseAllDocuments(text, { uniqueKeys: true })) {
		if (d.errors.length)
			fail(file, `YAML: ${d.errors[0].message.split('\n')[0].replace(/:$/, '')}`);
		const o = d.toJS({ maxAliasCount: 0 });
		if (o !== null && o !== undefined)
			out.push(o);
	}
	return out;
}

/* Returns [{obj, file}] for every document of a YAML file. */
function loadYamlFile(file) {
	let text;
	try {
		text = fs.readFileSync(file, 'utf8');
	} catch (e) {
		fail(file, `cannot read: ${e.code || e.message}`);
	}
	return parseYaml(file, text).map(obj => ({ obj, file }));
}

function kustomizationFile(dir) {
	for (const n of ['kustomization.yaml', 'kustomization.yml', 'Kustomization']) {
		const f = path.join(dir, n);
		if (fs.existsSync(f))
			return f;
	}
	return null;
}

function unescapePointer(s) {
	return s.replace(/~1/g, '/').replace(/~0/g, '~');
}

/* Applies one JSON 6902 operation list to obj in place. */
function applyJsonPatch(obj, ops, file) {
	if (!Array.isArray(ops))
		fail(file, 'patch: only JSON 6902 operation lists are supported');
	for (const op of ops) {
		if (!op || typeof op.path !== 'string' || !op.path.startsWith('/'))
			fail(file, 'patch: every operation needs a path starting with /');
		const parts = op.path.split('/').slice(1).map(unescapePointer);
		const last = parts.pop();
		let parent = obj;
		for (const p of parts) {
			if (parent === null || typeof parent !== 'object' || !(p in parent))
				fail(file, `patch: ${op.op} ${op.path}: no such path`);
			parent = parent[p];
		}
		if (parent === null || typeof parent !== 'object')
			fail(file, `patch: ${op.op} ${op.path}: parent is not a container`);
		const isArr = Array.isArray(parent);
		const idx = isArr ? (last === '-' ? parent.length : Number(last)) : null;
		if (isArr && (!Number.isInteger(idx) || idx < 0 || idx > parent.length))
			fail(file, `patch: ${op.op} ${op.path}: bad array index`);
		switch (op.op) {
		case 'add':
			if (isArr)
				parent.splice(idx, 0, structuredClone(op.value));
			else
				parent[last] = structuredClone(op.value);
			break;
		case 'replace':
			if (isArr ? idx >= parent.length : !(last in parent))
				fail(file, `patch: replace ${op.path}: no such path`);
			if (isArr)
				parent[idx] = structuredClone(op.value);
			else
				parent[last] = structuredClone(op.value);
			break;
		case 'remove':
			if (isArr ? idx >= parent.length : !(last in parent))
				fail(file, `patch: remove ${op.path}: no such path`);
			if (isArr)
				parent.splice(idx, 1);
			else
				delete parent[last];
			break;
		case 'test': {
			const cur = isArr ? parent[idx] : parent[last];
			if (JSON.stringify(cur) !== JSON.stringify(op.value))
				fail(file, `patch: test ${op.path} failed`);
			break;
		}
		default:
			fail(file, `patch: operation ${op.op} is not supported`);
		}
	}
}

function matchesTarget(obj, t) {
	const [group, version] = obj.apiVersion.includes('/') ?
	    obj.apiVersion.split('/') : ['', obj.apiVersion];
	if (t.kind !== undefined && t.kind !== obj.kind)
		return false;
	if (t.name !== undefined && t.name !== (obj.metadata || {}).name)
		return false;
	if (t.group !== undefined && t.group !== group)
		return false;
	if (t.version !== undefined && t.version !== version)
		return false;
	if (t.namespace !== undefined && t.namespace !== (obj.metadata || {}).namespace)
		return false;
	return true;
}

/* Every pod spec inside an object (Pod, workload templates, CronJob). */
function podSpecs(obj) {
	const s = obj.spec || {};
	switch (obj.kind) {
	case 'Pod': return [s];
	case 'CronJob':
		return [(((s.jobTemplate || {}).spec || {}).template || {}).spec].filter(Boolean);
	case 'Job': case 'Deployment': case 'StatefulSet': case 'DaemonSet':
	case 'ReplicaSet':
		return [(s.template || {}).spec].filter(Boolean);
	default: return [];
	}
}

function splitImage(ref) {
	let digest = null;
	const at = ref.indexOf('@');
	if (at >= 0) {
		digest = ref.slice(at + 1);
		ref = ref.slice(0, at);
	}
	let tag = null;
	const colon = ref.lastIndexOf(':');
	if (colon > ref.lastIndexOf('/')) {
		tag = ref.slice(colon + 1);
		ref = ref.slice(0, colon);
	}
	return { name: ref, tag, digest };
}

function applyImages(objs, images, file) {
	for (const im of images) {
		if (!im || typeof im.name !== 'string')
			fail(file, 'images: every entry needs a name');
		for (const k of Object.keys(im))
			if (!['name', 'newName', 'newTag', 'digest'].includes(k))
				fail(file, `images: field ${k} is not supported`);
		for (const o of objs)
			for (const ps of podSpecs(o))
				for (const c of [...(ps.containers || []), ...(ps.initContainers || [])]) {
					if (typeof c.image !== 'string')
						continue;
					const r = splitImage(c.image);
					if (r.name !== im.name)
						continue;
					const name = im.newName || r.name;
					if (im.digest)
						c.image = `${name}@${im.digest}`;
					else if (im.newTag)
						c.image = `${name}:${im.newTag}`;
					else
						c.image = name + (r.tag ? `:${r.tag}` : '') +
						    (r.digest ? `@${r.digest}` : '');
				}
	}
}

/*
 * Renders the kustomization in dir.  Returns [{obj, file}] where file is
 * the manifest each object came from.  Throws an Error with .file set.
 */
function kustomize(dir, depth = 0) {
	if (depth > 10)
		fail(dir, 'kustomization: resources nest too deep');
	const kfile = kustomizationFile(dir);
	if (!kfile)
		fail(dir, 'no kustomization.yaml in directory');
	const docs = loadYamlFile(kfile);
	if (docs.length !== 1)
		fail(kfile, 'kustomization: expected one document');
	const k = docs[0].obj;
	for (const f of Object.keys(k))
		if (!KUSTOMIZATION_FIELDS.has(f))
			fail(kfile, `kustomization: field ${f} is not supported by this checker`);
	if (k.kind !== undefined && k.kind !== 'Kustomization')
		fail(kfile, 'kustomization: kind must be Kustomization');

	const items = [];
	for (const r of k.resources || []) {
		if (typeof r !== 'string' || /^[a-z]+:\/\//.test(r))
			fail(kfile, `kustomization: resource ${r} must be a local path`);
		const p = path.resolve(dir, r);
		if (!fs.existsSync(p))
			fail(kfile, `kustomization: resource ${r} does not exist`);
		if (fs.statSync(p).isDirectory()) {
			/* kustomize refuses a root that contains the one loading it. */
			if ((dir + path.sep).startsWith(p + path.sep))
				fail(kfile, `kustomization: resource ${r} contains this kustomization (a cycle)`);
			items.push(...kustomize(p, depth + 1));
		}
		else
			items.push(...loadYamlFile(p));
	}
	const seen = new Set();
	for (const it of items) {
		const o = it.obj;
		if (!o || typeof o !== 'object' || typeof o.apiVersion !== 'string' ||
		    typeof o.kind !== 'string' || !o.metadata || !o.metadata.name)
			fail(it.file, 'a resource needs apiVersion, kind and metadata.name');
		const id = `${o.apiVersion} ${o.kind} ${o.metadata.namespace || ''} ${o.metadata.name}`;
		if (seen.has(id))
			fail(it.file, `resource ${o.kind}/${o.metadata.name} appears twice`);
		seen.add(id);
	}
	const objs = items.map(it => it.obj);

	if (k.namespace !== undefined) {
		if (typeof k.namespace !== 'string' || k.namespace === '')
			fail(kfile, 'kustomization: namespace must be a name');
		for (const o of objs)
			if (!CLUSTER_SCOPED.has(o.kind))
				o.metadata.namespace = k.namespace;
	}
	for (const p of k.patches || []) {
		let ops;
		let where = kfile;
		if (typeof p.path === 'string') {
			where = path.resolve(dir, p.path);
			const d = loadYamlFile(where);
			if (d.length !== 1)
				fail(where, 'patch: expected one document');
			ops = d[0].obj;
		} else if (typeof p.patch === 'string') {
			ops = parseYaml(kfile, p.patch)[0];
		} else {
			fail(kfile, 'patches: every entry needs path or patch');
		}
		if (!p.target || typeof p.target !== 'object')
			fail(kfile, 'patches: every entry needs a target');
		const hits = objs.filter(o => matchesTarget(o, p.target));
		if (hits.length === 0)
			fail(kfile, `patches: target ${JSON.stringify(p.target)} matches nothing`);
		for (const o of hits)
			applyJsonPatch(o, ops, where);
	}
	if (k.images)
		applyImages(objs, k.images, kfile);
	return items;
}

module.exports = { kustomize, loadYamlFile, podSpecs, splitImage };
