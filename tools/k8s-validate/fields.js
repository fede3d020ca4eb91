/*
 * fields.js: finds fields that the Kubernetes API does not know.
 *
 * kubernetes-models' schemas accept any extra property, and so does a
 * client-side apply: the API server prunes an unknown field without a word,
 * so a misspelt "readOnlyRootFileSystem" would leave a pod writable while
 * every check passed.  The package's TypeScript declarations list each
 * API type's fields exactly; this module reads them (interfaces, arrays,
 * string maps, imports) and walks an object against them.
 */
'use strict';

const fs = require('fs');
const path = require('path');

const modelsDir = path.dirname(require.resolve('kubernetes-models/package.json'));
const nodeModules = path.resolve(modelsDir, '..');
const cache = new Map();

/* Reads the first exported interface of a .d.ts file. */
function loadDts(file) {
	if (cache.has(file))
		return cache.get(file);
	const entry = { props: null, imports: new Map(), file };
	cache.set(file, entry);
	let text;
	try {
		text = fs.readFileSync(file, 'utf8');
	} catch (e) {
		return entry;
	}
	text = text.replace(/\/\*[\s\S]*?\*\//g, '');
	for (const m of text.matchAll(/import \{([^}]*)\} from "([^"]+)";/g)) {
		const from = m[2].startsWith('.') ?
		    path.resolve(path.dirname(file), m[2]) : path.join(nodeModules, m[2]);
		for (let name of m[1].split(',')) {
			name = name.trim().split(/\s+as\s+/).pop();
			if (name)
				entry.imports.set(name, `${from}.d.ts`);
		}
	}
	const m = /export interface \w+(?: extends [\w, ]+)? \{/.exec(text);
	if (!m)
		return entry;	/* a type alias (Quantity, Time ...): a leaf */
	let i = m.index + m[0].length;
	let depth = 1;
	const start = i;
	for (; i < text.length && depth > 0; i++) {
		if (text[i] === '{')
			depth++;
		else if (text[i] === '}')
			depth--;
	}
	entry.props = parseProps(text.slice(start, i - 1));
	return entry;
}

/* Splits an interface body into name -> type text. */
function parseProps(body) {
	const props = new Map();
	const re = /"([^"]+)"\??:\s*/y;
	let i = 0;
	while (i < body.length) {
		while (i < body.length && /\s/.test(body[i]))
			i++;
		if (i >= body.length)
			break;
		re.lastIndex = i;
		const m = re.exec(body);
		if (!m)
			break;
		i = re.lastIndex;
		let depth = 0;
		const start = i;
		let inStr = false;
		for (; i < body.length; i++) {
			const c = body[i];
			if (inStr) {
				if (c === '"')
					inStr = false;
				continue;
			}
			if (c === '"')
				inStr = true;
			else if ('{<(['.includes(c))
				depth++;
			else if ('}>)]'.includes(c))
				depth--;
			else if (c === ';' && depth === 0)
				break;
		}
		props.set(m[1], body.slice(start, i).trim());
		i++;
	}
	return props;
}

function resolveType(t, entry) {
	t = t.trim();
	let m = /^Array<([\s\S]*)>$/.exec(t);
	if (m)
		return { array: resolveType(m[1], entry) };
	m = /^\{\s*\[key: string\]:\s*([\s\S]*?);?\s*\}$/.exec(t);
	if (m)
		return { map: resolveType(m[1], entry) };
	if (/^\w+$/.test(t) && entry.imports.has(t)) {
		const e = loadDts(entry.imports.get(t));
		return e.props ? { iface: e } : { leaf: true };
	}
	return { leaf: true };
}

function walk(v, type, where, out) {
	if (v === null || typeof v !== 'object' || type.leaf)
		return;
	if (type.array) {
		if (Array.isArray(v))
			v.forEach((x, i) => walk(x, type.array, `${where}[${i}]`, out));
		return;
	}
	if (type.map) {
		for (const [k, x] of Object.entries(v))
			walk(x, type.map, `${where}.${k}`, out);
		return;
	}
	if (Array.isArray(v))
		return;
	for (const [k, x] of Object.entries(v)) {
		const t = type.iface.props.get(k);
		const w = where ? `${where}.${k}` : k;
		if (t === undefined)
			out.push(w);
		else
			walk(x, resolveType(t, type.iface), w, out);
	}
}

/*
 * Returns the dotted paths of every field of obj that its API type does
 * not declare.  An unknown apiVersion/kind returns [] (the schema check
 * reports it).
 */
function unknownFields(obj) {
	if (typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string' ||
	    !/^[A-Za-z0-9.\-/]+$/.test(obj.apiVersion) || !/^[A-Za-z0-9]+$/.test(obj.kind))
		return [];
	const e = loadDts(path.join(modelsDir, obj.apiVersion, `${obj.kind}.d.ts`));
	if (!e.props)
		return [];
	const out = [];
	walk(obj, { iface: e }, '', out);
	return out;
}

module.exports = { unknownFields };
