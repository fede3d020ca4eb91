/*
 * kustomize.js: renders a kustomization the way `kubectl kustomize`
 * (kustomize v5) does, for the fields a team deploying dt uses, so the
 * manifests can be checked where no kustomize binary exists (Debian's
 * kubectl embeds kustomize v2, which cannot read today's kustomizations;
 * docs/deploy.md).  Anything outside that subset is an error, never
 * silently skipped: a field this renderer does not apply would make the
 * checked objects differ from the applied ones.  t/600 compares its output
 * with `kubectl kustomize` where a kubectl of 1.27 or later is installed.
 *
 * Supported, in kustomize's order:
 *   resources (files and directories), configMapGenerator (literals, files,
 *   envs; behavior create, merge, replace; options and generatorOptions:
 *   labels, annotations, disableNameSuffixHash, immutable),
 *   patchesStrategicMerge, patches (strategic-merge or JSON 6902, from a
 *   path or inline, with or without a target), namespace (which, as in
 *   kustomize, renames every Namespace object too), labels (not on
 *   selectors), commonAnnotations, patchesJson6902,
 *   images (name, newName, newTag, digest), replacements (whole-value
 *   field copies; no delimiter or index options); then, for the top
 *   kustomization only, the content-hash suffix of generated ConfigMaps
 *   and the references to them.
 *
 * Strategic merge: maps merge, null deletes a key, `$patch: delete`
 * removes an object or a list element, `$patch: replace` replaces a map
 * or (as a list element) a list.  Lists merge by the key the Kubernetes
 * API declares (containers and env by name, volumeMounts by mountPath
 * ...); any other list is replaced whole, as the API's own merge does.
 */
'use strict';

const crypto = require('crypto');
const fs = require('fs');
const path = require('path');
const YAML = require('yaml');

const KUSTOMIZATION_FIELDS = new Set(['apiVersion', 'kind', 'namespace',
    'resources', 'images', 'patches', 'patchesStrategicMerge',
    'patchesJson6902', 'configMapGenerator', 'generatorOptions',
    'replacements', 'labels', 'commonAnnotations']);
const CLUSTER_SCOPED = new Set(['Namespace', 'ClusterRole',
    'ClusterRoleBinding', 'PersistentVolume', 'StorageClass',
    'CustomResourceDefinition', 'PriorityClass']);

/* Generated ConfigMaps that still need their hash suffix: obj -> name. */
const NEEDS_HASH = new WeakMap();

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

function readText(file) {
	try {
		return fs.readFileSync(file, 'utf8');
	} catch (e) {
		fail(file, `cannot read: ${e.code || e.message}`);
	}
	return null;
}

/* Returns [{obj, file}] for every document of a YAML file. */
function loadYamlFile(file) {
	return parseYaml(file, readText(file)).map(obj => ({ obj, file }));
}

function kustomizationFile(dir) {
	for (const n of ['kustomization.yaml', 'kustomization.yml', 'Kustomization']) {
		const f = path.join(dir, n);
		if (fs.existsSync(f))
			return f;
	}
	return null;
}

function isMap(v) {
	return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function unescapePointer(s) {
	return s.replace(/~1/g, '/').replace(/~0/g, '~');
}

/* Applies one JSON 6902 operation list to obj in place. */
function applyJsonPatch(obj, ops, file) {
	if (!Array.isArray(ops))
		fail(file, 'patch: a JSON 6902 patch is a list of operations');
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

/*
 * The merge key of a list in a strategic-merge patch, as the Kubernetes
 * API declares it (x-kubernetes-patch-merge-key), or null for a list that
 * is replaced whole.  trail is the field names from the object's root.
 */
const PRIMITIVE = Symbol('a set of scalars');

function mergeKey(kind, trail) {
	const f = trail[trail.length - 1];
	const inContainer = trail.some(t => t === 'containers' ||
	    t === 'initContainers' || t === 'ephemeralContainers');
	switch (f) {
	case 'containers': case 'initContainers': case 'ephemeralContainers':
	case 'volumes': case 'resourceClaims':
		return 'name';
	case 'imagePullSecrets':	/* a ServiceAccount's are replaced */
		return trail.length > 1 ? 'name' : null;
	case 'secrets':
		return kind === 'ServiceAccount' && trail.length === 1 ? 'name' : null;
	case 'finalizers':
		return trail.length === 2 && trail[0] === 'metadata' ? PRIMITIVE : null;
	case 'env':
		return inContainer ? 'name' : null;
	case 'volumeMounts': return 'mountPath';
	case 'volumeDevices': return 'devicePath';
	case 'hostAliases': return 'ip';
	case 'topologySpreadConstraints': return 'topologyKey';
	case 'ownerReferences': return 'uid';
	case 'conditions': return 'type';
	case 'ports':
		if (inContainer)
			return 'containerPort';
		return kind === 'Service' && trail.length === 2 ? 'port' : null;
	default: return null;
	}
}

function directive(file, m) {
	for (const k of Object.keys(m))
		if (k.startsWith('$') && k !== '$patch')
			fail(file, `patch: directive ${k} is not supported by this checker`);
	const d = m.$patch;
	if (d !== undefined && !['merge', 'replace', 'delete'].includes(d))
		fail(file, `patch: $patch: ${d} is not a directive`);
	return d;
}

function stripDirective(m) {
	const o = structuredClone(m);
	delete o.$patch;
	return o;
}

/* Merges patch map p into map d; returns the result, undefined to delete. */
function smpMap(d, p, kind, trail, file) {
	const dir = directive(file, p);
	if (dir === 'delete')
		return undefined;
	if (dir === 'replace')
		return stripDirective(p);
	const out = isMap(d) ? d : {};
	for (const [k, v] of Object.entries(p)) {
		if (k === '$patch')
			continue;
		if (v === null)
			delete out[k];
		else if (Array.isArray(v))
			out[k] = smpList(out[k], v, kind, [...trail, k], file);
		else if (isMap(v)) {
			const r = smpMap(out[k], v, kind, [...trail, k], file);
			if (r === undefined)
				delete out[k];
			else
				out[k] = r;
		} else
			out[k] = v;
	}
	return out;
}

/*
 * Merges patch list p into list d.  As kustomize does, the patch's
 * elements come first, in the patch's order, then the list's others.
 */
function smpList(d, p, kind, trail, file) {
	const key = mergeKey(kind, trail);
	const where = trail.join('.');
	if (p.some(e => isMap(e) && e.$patch === 'replace' && Object.keys(e).length === 1)) {
		/* kustomize copies the directive too when there is no list. */
		if (!Array.isArray(d))
			return structuredClone(p);
		return p.filter(e => !(isMap(e) && e.$patch === 'replace'))
		    .map(e => isMap(e) ? stripDirective(e) : e);
	}
	if (key === null) {
		for (const e of p)
			if (isMap(e) && e.$patch !== undefined)
				fail(file, `patch: ${where}: $patch in a list without a merge key`);
		return structuredClone(p);
	}
	const old = Array.isArray(d) ? d : [];
	if (key === PRIMITIVE)
		return [...p, ...old.filter(x => !p.includes(x))];
	const out = [];
	const used = new Set();
	for (const e of p) {
		if (!isMap(e) || e[key] === undefined)
			fail(file, `patch: ${where}: every element needs its ${key}`);
		const i = old.findIndex(x => isMap(x) && x[key] === e[key]);
		if (i >= 0)
			used.add(i);
		const r = smpMap(i >= 0 ? old[i] : undefined, e, kind, trail, file);
		if (r !== undefined)
			out.push(r);
	}
	old.forEach((x, i) => {
		if (!used.has(i))
			out.push(x);
	});
	return out;
}

function gvk(obj) {
	const [group, version] = obj.apiVersion.includes('/') ?
	    obj.apiVersion.split('/') : ['', obj.apiVersion];
	return { group, version, kind: obj.kind };
}

function matchesTarget(obj, t) {
	const g = gvk(obj);
	const md = obj.metadata || {};
	const re = v => new RegExp(`^(?:${v})$`);
	if (t.kind !== undefined && !re(t.kind).test(g.kind))
		return false;
	if (t.name !== undefined && !re(t.name).test(md.name))
		return false;
	if (t.group !== undefined && t.group !== g.group)
		return false;
	if (t.version !== undefined && t.version !== g.version)
		return false;
	if (t.namespace !== undefined && !re(t.namespace).test(md.namespace || ''))
		return false;
	return true;
}

function targetedItems(items, t, file) {
	if (!isMap(t))
		fail(file, 'patches: a target must be a mapping');
	for (const k of Object.keys(t))
		if (!['group', 'version', 'kind', 'name', 'namespace'].includes(k))
			fail(file, `patches: target field ${k} is not supported by this checker`);
	const hits = items.filter(it => matchesTarget(it.obj, t));
	if (hits.length === 0)
		fail(file, `patches: target ${JSON.stringify(t)} matches nothing`);
	return hits;
}

/* Applies one strategic-merge patch document; returns the new item list. */
function applySmp(items, p, target, file, kfile) {
	if (!isMap(p))
		fail(file, 'patch: a strategic-merge patch is a mapping');
	let hits;
	if (target) {
		hits = targetedItems(items, target, kfile);
	} else {
		const md = p.metadata || {};
		if (typeof p.apiVersion !== 'string' || typeof p.kind !== 'string' ||
		    typeof md.name !== 'string')
			fail(file, 'patch: a strategic-merge patch needs apiVersion, kind and metadata.name');
		hits = items.filter(it => it.obj.apiVersion === p.apiVersion &&
		    it.obj.kind === p.kind && it.obj.metadata.name === md.name &&
		    (md.namespace === undefined || md.namespace === it.obj.metadata.namespace));
		if (hits.length === 0)
			fail(file, `patch: ${p.kind}/${md.name} matches no resource`);
	}
	const body = structuredClone(p);
	if (target && isMap(body.metadata)) {
		delete body.metadata.name;
		delete body.metadata.namespace;
	}
	const out = [];
	for (const it of items) {
		if (!hits.includes(it)) {
			out.push(it);
			continue;
		}
		const r = smpMap(it.obj, body, it.obj.kind, [], file);
		if (r !== undefined)
			out.push(it);
	}
	return out;
}

/*
 * Applies the documents of one patch (from file) to items; a target that
 * matches nothing is kfile's error.  Returns the new item list.
 */
function applyPatchDocs(items, docs, target, file, kfile) {
	if (docs.length === 1 && Array.isArray(docs[0])) {
		if (!target)
			fail(kfile, 'patches: a JSON 6902 patch needs a target');
		for (const it of targetedItems(items, target, kfile))
			applyJsonPatch(it.obj, docs[0], file);
		return items;
	}
	for (const d of docs)
		items = applySmp(items, d, target, file, kfile);
	return items;
}

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

/* KEY=VALUE lines of an env file, as kustomize reads them. */
function envFileData(file) {
	const data = {};
	readText(file).split('\n').forEach((line, i) => {
		line = line.replace(/\r$/, '');
		if (line.trim() === '' || line.trimStart().startsWith('#'))
			return;
		const eq = line.indexOf('=');
		if (eq <= 0)
			fail(file, `line ${i + 1}: not KEY=VALUE`);
		data[line.slice(0, eq).trimStart()] = line.slice(eq + 1);
	});
	return data;
}

/* The data of one configMapGenerator entry. */
function generatorData(g, dir, kfile) {
	const data = {};
	for (const l of g.literals || []) {
		const eq = typeof l === 'string' ? l.indexOf('=') : -1;
		if (eq <= 0)
			fail(kfile, `configMapGenerator: literal ${l} is not KEY=VALUE`);
		let v = l.slice(eq + 1);
		if (v.length >= 2 && /^(["']).*\1$/s.test(v))
			v = v.slice(1, -1);
		data[l.slice(0, eq)] = v;
	}
	for (const f of g.files || []) {
		const eq = f.indexOf('=');
		const key = eq > 0 ? f.slice(0, eq) : path.basename(f);
		data[key] = readText(path.resolve(dir, eq > 0 ? f.slice(eq + 1) : f));
	}
	for (const f of g.envs || [])
		Object.assign(data, envFileData(path.resolve(dir, f)));
	return data;
}

/* Runs configMapGenerator; returns the new item list. */
function generate(items, k, dir, kfile) {
	const gopts = k.generatorOptions || {};
	for (const g of k.configMapGenerator || []) {
		if (!isMap(g) || typeof g.name !== 'string')
			fail(kfile, 'configMapGenerator: every entry needs a name');
		for (const f of Object.keys(g))
			if (!['name', 'behavior', 'literals', 'files', 'envs', 'options'].includes(f))
				fail(kfile, `configMapGenerator: field ${f} is not supported by this checker`);
		const opts = { ...gopts, ...(g.options || {}) };
		for (const f of Object.keys(opts))
			if (!['labels', 'annotations', 'disableNameSuffixHash', 'immutable'].includes(f))
				fail(kfile, `configMapGenerator: option ${f} is not supported by this checker`);
		const data = generatorData(g, dir, kfile);
		const behavior = g.behavior || 'create';
		const same = items.filter(it => it.obj.kind === 'ConfigMap' &&
		    it.obj.metadata.name === g.name);
		if (behavior === 'create') {
			if (same.length)
				fail(kfile, `configMapGenerator: ConfigMap ${g.name} exists; use behavior merge or replace`);
			const obj = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name }, data };
			if (opts.labels)
				obj.metadata.labels = { ...opts.labels };
			if (opts.annotations)
				obj.metadata.annotations = { ...opts.annotations };
			if (opts.immutable)
				obj.immutable = true;
			if (!opts.disableNameSuffixHash)
				NEEDS_HASH.set(obj, g.name);
			items.push({ obj, file: kfile });
			continue;
		}
		if (behavior !== 'merge' && behavior !== 'replace')
			fail(kfile, `configMapGenerator: behavior ${behavior} is not create, merge or replace`);
		if (same.length !== 1)
			fail(kfile, `configMapGenerator: ${behavior}: no ConfigMap ${g.name} to ${behavior}`);
		const o = same[0].obj;
		o.data = behavior === 'merge' ? { ...(o.data || {}), ...data } : data;
		o.metadata.labels = { ...(o.metadata.labels || {}), ...(opts.labels || {}) };
		o.metadata.annotations = { ...(o.metadata.annotations || {}), ...(opts.annotations || {}) };
		for (const f of ['labels', 'annotations'])
			if (Object.keys(o.metadata[f]).length === 0)
				delete o.metadata[f];
		if (opts.disableNameSuffixHash)
			NEEDS_HASH.delete(o);
		same[0].file = kfile;
	}
	return items;
}

/* kustomize's ConfigMap hash: sha256 of Go's JSON, first 10, no vowels. */
function configMapHash(obj) {
	const m = { data: obj.data || {}, kind: 'ConfigMap', name: '' };
	const sorted = {};
	for (const k of Object.keys(m.data).sort())
		sorted[k] = m.data[k];
	m.data = sorted;
	const json = JSON.stringify(m).replace(/</g, '\\u003c')
	    .replace(/>/g, '\\u003e').replace(/&/g, '\\u0026')
	    .replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');
	const hex = crypto.createHash('sha256').update(json).digest('hex');
	const swap = { 0: 'g', 1: 'h', 3: 'k', a: 'm', e: 't' };
	return hex.slice(0, 10).replace(/[013ae]/g, c => swap[c]);
}

/* Every place a pod spec names a ConfigMap: [holder, field]. */
function configMapRefs(ps) {
	const refs = [];
	for (const c of [...(ps.containers || []), ...(ps.initContainers || [])]) {
		for (const e of c.env || [])
			if (e.valueFrom && e.valueFrom.configMapKeyRef)
				refs.push(e.valueFrom.configMapKeyRef);
		for (const e of c.envFrom || [])
			if (e.configMapRef)
				refs.push(e.configMapRef);
	}
	for (const v of ps.volumes || []) {
		if (v.configMap)
			refs.push(v.configMap);
		for (const s of (v.projected || {}).sources || [])
			if (s.configMap)
				refs.push(s.configMap);
	}
	return refs;
}

/* Suffixes generated ConfigMaps with their hash and renames references. */
function applyHashes(items) {
	for (const it of items) {
		const name = NEEDS_HASH.get(it.obj);
		if (name === undefined)
			continue;
		const ns = it.obj.metadata.namespace;
		const hashed = `${name}-${configMapHash(it.obj)}`;
		it.obj.metadata.name = hashed;
		for (const o of items)
			if ((o.obj.metadata.namespace || '') === (ns || ''))
				for (const ps of podSpecs(o.obj))
					for (const r of configMapRefs(ps))
						if (r.name === name)
							r.name = hashed;
	}
}

/* The segments of a replacement fieldPath: a.b.0.c or a.b.[name=x].c. */
function fieldPathParts(fp, file) {
	if (typeof fp !== 'string' || fp === '')
		fail(file, 'replacements: a fieldPath must be a string');
	return fp.split('.').map(s => {
		const m = /^\[([^=\]]+)=([^\]]*)\]$/.exec(s);
		if (m)
			return { key: m[1], value: m[2] };
		if (/^\d+$/.test(s))
			return { index: Number(s) };
		if (/[[\]]/.test(s))
			fail(file, `replacements: fieldPath segment ${s} is not supported by this checker`);
		return { field: s };
	});
}

function step(node, seg, create) {
	if (seg.field !== undefined) {
		if (!isMap(node))
			return undefined;
		if (node[seg.field] === undefined && create)
			node[seg.field] = {};
		return node[seg.field];
	}
	if (!Array.isArray(node))
		return undefined;
	if (seg.index !== undefined)
		return node[seg.index];
	return node.find(e => isMap(e) && String(e[seg.key]) === seg.value);
}

function getPath(obj, parts) {
	let n = obj;
	for (const s of parts) {
		n = step(n, s, false);
		if (n === undefined)
			return undefined;
	}
	return n;
}

function setPath(obj, parts, value, create) {
	let n = obj;
	for (const s of parts.slice(0, -1)) {
		n = step(n, s, create);
		if (n === undefined)
			return false;
	}
	const last = parts[parts.length - 1];
	if (last.field !== undefined && isMap(n)) {
		if (n[last.field] === undefined && !create)
			return false;
		n[last.field] = structuredClone(value);
		return true;
	}
	if (Array.isArray(n)) {
		const i = last.index !== undefined ? last.index :
		    n.findIndex(e => isMap(e) && String(e[last.key]) === last.value);
		if (i < 0 || i >= n.length)
			return false;
		n[i] = structuredClone(value);
		return true;
	}
	return false;
}

function selectorMatch(obj, sel, file) {
	for (const k of Object.keys(sel))
		if (!['group', 'version', 'kind', 'name', 'namespace'].includes(k))
			fail(file, `replacements: selector field ${k} is not supported by this checker`);
	return matchesTarget(obj, sel);
}

/* Runs replacements (whole values only). */
function replace(items, list, file) {
	for (const r of list) {
		if (!isMap(r) || !isMap(r.source) || !Array.isArray(r.targets))
			fail(file, 'replacements: every entry needs a source and targets (inline)');
		const { fieldPath = 'metadata.name', options, ...sel } = r.source;
		if (options !== undefined)
			fail(file, 'replacements: source options are not supported by this checker');
		const src = items.filter(it => selectorMatch(it.obj, sel, file));
		if (src.length !== 1)
			fail(file, `replacements: source ${JSON.stringify(r.source)} matches ${src.length} resources, not one`);
		const value = getPath(src[0].obj, fieldPathParts(fieldPath, file));
		if (value === undefined)
			fail(file, `replacements: source field ${fieldPath} does not exist`);
		for (const t of r.targets) {
			if (!isMap(t) || !isMap(t.select) || !Array.isArray(t.fieldPaths))
				fail(file, 'replacements: every target needs select and fieldPaths');
			for (const k of Object.keys(t))
				if (!['select', 'fieldPaths', 'options'].includes(k))
					fail(file, `replacements: target field ${k} is not supported by this checker`);
			const o = t.options || {};
			for (const k of Object.keys(o))
				if (k !== 'create')
					fail(file, `replacements: option ${k} is not supported by this checker`);
			const hits = items.filter(it => selectorMatch(it.obj, t.select, file));
			if (hits.length === 0)
				fail(file, `replacements: target ${JSON.stringify(t.select)} matches nothing`);
			for (const it of hits)
				for (const fp of t.fieldPaths)
					if (!setPath(it.obj, fieldPathParts(fp, file), value, o.create === true))
						fail(file, `replacements: ${it.obj.kind}/${it.obj.metadata.name} has no field ${fp}`);
		}
	}
}

/* The documents of a patch given by path or inline text. */
function patchDocs(p, dir, kfile) {
	if (typeof p === 'string')	/* a patchesStrategicMerge entry */
		return /\n|^\s*(apiVersion|kind|metadata|\$patch):/.test(p) ?
		    [parseYaml(kfile, p), kfile] :
		    [loadYamlFile(path.resolve(dir, p)).map(d => d.obj), path.resolve(dir, p)];
	if (!isMap(p))
		fail(kfile, 'patches: every entry is a mapping');
	for (const k of Object.keys(p))
		if (!['path', 'patch', 'target', 'options'].includes(k))
			fail(kfile, `patches: field ${k} is not supported by this checker`);
	if (p.options !== undefined)
		fail(kfile, 'patches: options are not supported by this checker');
	if (typeof p.path === 'string') {
		const f = path.resolve(dir, p.path);
		return [loadYamlFile(f).map(d => d.obj), f];
	}
	if (typeof p.patch === 'string')
		return [parseYaml(kfile, p.patch), kfile];
	fail(kfile, 'patches: every entry needs path or patch');
	return null;
}

/* The metadata of the pod templates inside obj, created where missing. */
function templateMetas(obj) {
	const s = obj.spec;
	if (!isMap(s))
		return [];
	const meta = o => {
		if (!isMap(o.metadata))
			o.metadata = {};
		return o.metadata;
	};
	switch (obj.kind) {
	case 'CronJob': {
		if (!isMap(s.jobTemplate))
			return [];
		const out = [meta(s.jobTemplate)];
		const js = s.jobTemplate.spec;
		if (isMap(js) && isMap(js.template))
			out.push(meta(js.template));
		return out;
	}
	case 'Job': case 'Deployment': case 'StatefulSet': case 'DaemonSet':
	case 'ReplicaSet':
		return isMap(s.template) ? [meta(s.template)] : [];
	default:
		return [];
	}
}

function addTo(meta, field, pairs) {
	meta[field] = { ...(meta[field] || {}), ...pairs };
}

/*
 * labels (without selectors: kustomize would change selectors too, which
 * this renderer does not) and commonAnnotations, which kustomize also puts
 * on pod templates.
 */
function applyLabels(items, k, kfile) {
	for (const l of k.labels || []) {
		if (!isMap(l) || !isMap(l.pairs))
			fail(kfile, 'labels: every entry needs pairs');
		for (const f of Object.keys(l))
			if (!['pairs', 'includeSelectors', 'includeTemplates'].includes(f))
				fail(kfile, `labels: field ${f} is not supported by this checker`);
		if (l.includeSelectors === true)
			fail(kfile, 'labels: includeSelectors is not supported by this checker');
		for (const it of items) {
			addTo(it.obj.metadata, 'labels', l.pairs);
			if (l.includeTemplates === true)
				for (const m of templateMetas(it.obj))
					addTo(m, 'labels', l.pairs);
		}
	}
	if (k.commonAnnotations !== undefined) {
		if (!isMap(k.commonAnnotations))
			fail(kfile, 'commonAnnotations must be a mapping');
		for (const it of items) {
			addTo(it.obj.metadata, 'annotations', k.commonAnnotations);
			for (const m of templateMetas(it.obj))
				addTo(m, 'annotations', k.commonAnnotations);
		}
	}
}

function setNamespace(items, ns, kfile) {
	if (typeof ns !== 'string' || ns === '')
		fail(kfile, 'kustomization: namespace must be a name');
	for (const it of items) {
		const o = it.obj;
		if (o.kind === 'Namespace')
			o.metadata.name = ns;	/* as kustomize does */
		else if (o.kind === 'RoleBinding' || o.kind === 'ClusterRoleBinding')
			fail(it.file, `kustomization: namespace with a ${o.kind} is not supported by this checker`);
		else if (!CLUSTER_SCOPED.has(o.kind))
			o.metadata.namespace = ns;
	}
}

function checkIds(items) {
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
}

/* Renders one kustomization; the hash suffixes are left to the caller. */
function build(dir, depth) {
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

	let items = [];
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
			items.push(...build(p, depth + 1));
		} else
			items.push(...loadYamlFile(p));
	}
	checkIds(items);
	items = generate(items, k, dir, kfile);
	checkIds(items);
	for (const p of k.patchesStrategicMerge || []) {
		const [d, f] = patchDocs(p, dir, kfile);
		items = applyPatchDocs(items, d, null, f, kfile);
	}
	for (const p of k.patches || []) {
		const [d, f] = patchDocs(p, dir, kfile);
		items = applyPatchDocs(items, d, p.target, f, kfile);
	}
	if (k.namespace !== undefined)
		setNamespace(items, k.namespace, kfile);
	applyLabels(items, k, kfile);
	for (const p of k.patchesJson6902 || []) {
		const [d, f] = patchDocs(p, dir, kfile);
		if (!p.target)
			fail(kfile, 'patchesJson6902: every entry needs a target');
		items = applyPatchDocs(items, d.length === 1 ? d : [null], p.target, f, kfile);
	}
	if (k.images)
		applyImages(items.map(it => it.obj), k.images, kfile);
	if (k.replacements)
		replace(items, k.replacements, kfile);
	checkIds(items);
	return items;
}

/*
 * Renders the kustomization in dir.  Returns [{obj, file}] where file is
 * the manifest each object came from (the kustomization for a generated
 * one).  Throws an Error with .file set.
 */
function kustomize(dir) {
	const items = build(dir, 0);
	applyHashes(items);
	return items;
}

module.exports = { kustomize, loadYamlFile, podSpecs, splitImage };
