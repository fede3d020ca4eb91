#!/usr/bin/env node
/*
 * validate.js: offline checks of dt's deployment files.
 *
 *   validate.js k8s [--own-namespace NS] [--version V] PATH...
 *                                              validate manifests
 *   validate.js render PATH...                 print the rendered objects
 *   validate.js canon FILE                     print a YAML stream the same way
 *   validate.js metrics [--scrape FILE] PATH...
 *                                              print the metric names that the
 *                                              alert rules and dashboards query;
 *                                              with a scrape, each selector
 *                                              must match one of its samples
 *   validate.js dockerfile [--dockerignore F] DOCKERFILE
 *
 * A PATH is a kustomization directory (rendered here, see kustomize.js) or
 * a YAML file; all PATHs of one run are checked together as one applied
 * set, so a secretKeyRef can be resolved against secret.example.yaml.
 *
 * Every object is validated against the Kubernetes API schema of
 * kubernetes-models (JSON schemas compiled by @kubernetes-models/validate),
 * then walked against the same API's type declarations to find unknown
 * fields (the schemas allow them; the API server drops them silently, which
 * hides a typo such as "readOnlyRootFileSystem"), then against dt's policy
 * (policy.js).  One line per problem on stderr:
 *
 *   FILE: KIND/NAME: FIELD: schema|unknown field|policy: MESSAGE
 *
 * Exit status: 0 all valid, 1 a problem was found, 64 usage.
 */
'use strict';

const fs = require('fs');
const path = require('path');
const YAML = require('yaml');
const { kustomize, loadYamlFile } = require('./kustomize');
const { unknownFields } = require('./fields');
const { checkPolicy } = require('./policy');

const PROG = 'k8s-validate';

function usage(msg) {
	if (msg)
		process.stderr.write(`${PROG}: ${msg}\n`);
	process.stderr.write(
	    'usage: validate.js k8s [--own-namespace NS] [--version V] PATH...\n' +
	    '       validate.js render PATH...\n' +
	    '       validate.js canon FILE\n' +
	    '       validate.js metrics [--scrape FILE] PATH...\n' +
	    '       validate.js dockerfile [--dockerignore FILE] DOCKERFILE\n');
	process.exit(64);
}

function rel(p) {
	const r = path.relative(process.cwd(), p);
	return r.startsWith('..') ? p : r;
}

/* Loads every PATH into one list of {obj, file}; problems go to errs. */
function loadAll(paths, errs) {
	const items = [];
	for (const p of paths) {
		let st;
		try {
			st = fs.statSync(p);
		} catch (e) {
			errs.push(`${p}: cannot read: ${e.code || e.message}`);
			continue;
		}
		try {
			if (st.isDirectory())
				items.push(...kustomize(path.resolve(p)));
			else
				items.push(...loadYamlFile(path.resolve(p)));
		} catch (e) {
			errs.push(`${rel(e.file || p)}: ${e.message}`);
		}
	}
	return items;
}

/* The kubernetes-models module of an apiVersion/kind, or null. */
function modelFor(apiVersion, kind) {
	if (typeof apiVersion !== 'string' || typeof kind !== 'string' ||
	    !/^[A-Za-z0-9.\-/]+$/.test(apiVersion) || !/^[A-Za-z0-9]+$/.test(kind))
		return null;
	try {
		return require(`kubernetes-models/${apiVersion}/${kind}`)[kind];
	} catch (e) {
		return null;
	}
}

function dotted(instancePath) {
	return instancePath.split('/').slice(1)
	    .map(s => s.replace(/~1/g, '/').replace(/~0/g, '~'))
	    .reduce((acc, s) => /^\d+$/.test(s) ? `${acc}[${s}]` :
	    (acc ? `${acc}.${s}` : s), '');
}

function schemaErrors(obj) {
	const Model = modelFor(obj.apiVersion, obj.kind);
	if (!Model)
		return [{ where: 'apiVersion', msg: `schema: unknown kind ${obj.apiVersion} ${obj.kind}` }];
	try {
		new Model(obj).validate();
	} catch (e) {
		const list = e.errors || [{ instancePath: '', message: e.message }];
		return list.map(x => {
			let msg = x.message;
			if (x.keyword === 'enum' && x.params && x.params.allowedValues)
				msg += `: ${x.params.allowedValues.join(', ')}`;
			if (x.keyword === 'required' && x.params)
				msg = `must have ${x.params.missingProperty}`;
			return { where: dotted(x.instancePath) || '.', msg: `schema: ${msg}` };
		});
	}
	return [];
}

function label(obj) {
	const name = obj && obj.metadata && obj.metadata.name;
	return `${obj && obj.kind || '?'}/${name || '?'}`;
}

function cmdK8s(args) {
	let version = null;
	let ownNamespace = 'dt';
	const paths = [];
	for (let i = 0; i < args.length; i++) {
		if (args[i] === '--version') {
			if (i + 1 >= args.length)
				usage('--version needs a value');
			version = args[++i];
		} else if (args[i] === '--own-namespace') {
			if (i + 1 >= args.length)
				usage('--own-namespace needs a value');
			ownNamespace = args[++i];
		} else if (args[i].startsWith('-')) {
			usage(`unknown option ${args[i]}`);
		} else {
			paths.push(args[i]);
		}
	}
	if (paths.length === 0)
		usage('no PATH');
	const errs = [];
	const items = loadAll(paths, errs);
	for (const it of items) {
		const head = `${rel(it.file)}: ${label(it.obj)}`;
		if (!it.obj || typeof it.obj !== 'object' || Array.isArray(it.obj)) {
			errs.push(`${rel(it.file)}: a document is not a mapping`);
			continue;
		}
		const se = schemaErrors(it.obj);
		for (const e of se)
			errs.push(`${head}: ${e.where}: ${e.msg}`);
		if (se.length && se[0].where === 'apiVersion')
			continue;
		for (const f of unknownFields(it.obj))
			errs.push(`${head}: ${f}: unknown field`);
	}
	for (const p of checkPolicy(items, { version, ownNamespace }))
		errs.push(`${rel(p.file)}: ${p.label}: ${p.where}: policy: ${p.msg}`);
	for (const e of errs)
		process.stderr.write(`${PROG}: ${e}\n`);
	if (errs.length) {
		process.stderr.write(`${PROG}: ${errs.length} problem${errs.length === 1 ? '' : 's'}\n`);
		return 1;
	}
	process.stderr.write(`${PROG}: ${items.length} objects valid: ${paths.join(' ')}\n`);
	return 0;
}

/* Sorted keys, so two renderings compare line by line. */
function canonical(v) {
	if (Array.isArray(v))
		return v.map(canonical);
	if (v && typeof v === 'object') {
		const o = {};
		for (const k of Object.keys(v).sort())
			o[k] = canonical(v[k]);
		return o;
	}
	return v;
}

function printCanon(objs) {
	const lines = objs.map(o => JSON.stringify(canonical(o)));
	lines.sort();
	for (const l of lines)
		process.stdout.write(l + '\n');
}

function cmdRender(args) {
	if (args.length === 0)
		usage('no PATH');
	const errs = [];
	const items = loadAll(args, errs);
	for (const e of errs)
		process.stderr.write(`${PROG}: ${e}\n`);
	if (errs.length)
		return 1;
	printCanon(items.map(it => it.obj));
	return 0;
}

function cmdCanon(args) {
	if (args.length !== 1)
		usage('canon takes one FILE');
	let text;
	try {
		text = fs.readFileSync(args[0] === '-' ? 0 : args[0], 'utf8');
	} catch (e) {
		process.stderr.write(`${PROG}: ${args[0]}: cannot read: ${e.code}\n`);
		return 1;
	}
	const docs = YAML.parseAllDocuments(text);
	const objs = [];
	for (const d of docs) {
		if (d.errors.length) {
			process.stderr.write(`${PROG}: ${args[0]}: ${d.errors[0].message}\n`);
			return 1;
		}
		const o = d.toJS();
		if (o !== null && o !== undefined)
			objs.push(o);
	}
	printCanon(objs);
	return 0;
}

/*
 * The metric names that the PrometheusRules, rules files, dashboard
 * ConfigMaps and dashboard JSON files among PATHs query, one a line,
 * sorted; a PromQL syntax error is a problem.  With --scrape FILE (a
 * Pushgateway's or exporter's /metrics), a selector that matches none of
 * its samples, by name and label matchers, is a problem too.
 */
function cmdMetrics(args) {
	const { objectExprs, selectors, parseScrape, matches, selectorText } =
	    require('./promql');
	let scrape = null;
	const paths = [];
	for (let i = 0; i < args.length; i++) {
		if (args[i] === '--scrape') {
			if (i + 1 >= args.length)
				usage('--scrape needs a value');
			const f = args[++i];
			try {
				scrape = parseScrape(fs.readFileSync(f, 'utf8'));
			} catch (e) {
				process.stderr.write(`${PROG}: ${f}: cannot read: ${e.code || e.message}\n`);
				return 1;
			}
		} else if (args[i].startsWith('-')) {
			usage(`unknown option ${args[i]}`);
		} else {
			paths.push(args[i]);
		}
	}
	if (paths.length === 0)
		usage('no PATH');
	const errs = [];
	const items = [];
	for (const p of paths) {
		if (/\.json$/.test(p)) {
			try {
				items.push({ obj: JSON.parse(fs.readFileSync(p, 'utf8')), file: p });
			} catch (e) {
				errs.push(`${p}: ${e.code ? `cannot read: ${e.code}` : e.message}`);
			}
		} else {
			items.push(...loadAll([p], errs));
		}
	}
	const names = new Set();
	let n = 0;
	for (const it of items) {
		let exprs;
		try {
			exprs = objectExprs(it.obj);
		} catch (e) {
			errs.push(`${rel(it.file)}: ${label(it.obj)}: dashboard JSON: ${e.message}`);
			continue;
		}
		const head = `${rel(it.file)}: ${it.obj.kind ? label(it.obj) + ': ' : ''}`;
		for (const x of exprs) {
			n++;
			let sels;
			try {
				sels = selectors(x.expr);
			} catch (e) {
				errs.push(`${head}${x.where}: PromQL: ${e.message}`);
				continue;
			}
			for (const sel of sels) {
				names.add(sel.name);
				if (scrape && !scrape.some(smp => matches(smp, sel)))
					errs.push(`${head}${x.where}: ${selectorText(sel)} matches no sample of the scrape`);
			}
		}
	}
	for (const e of errs)
		process.stderr.write(`${PROG}: ${e}\n`);
	if (errs.length)
		return 1;
	for (const m of [...names].sort())
		process.stdout.write(`${m}\n`);
	process.stderr.write(`${PROG}: ${n} expressions, ${names.size} metrics\n`);
	return 0;
}

function cmdDockerfile(args) {
	let ignore = null;
	const files = [];
	for (let i = 0; i < args.length; i++) {
		if (args[i] === '--dockerignore') {
			if (i + 1 >= args.length)
				usage('--dockerignore needs a value');
			ignore = args[++i];
		} else if (args[i].startsWith('-')) {
			usage(`unknown option ${args[i]}`);
		} else {
			files.push(args[i]);
		}
	}
	if (files.length !== 1)
		usage('dockerfile takes one DOCKERFILE');
	const file = files[0];
	if (ignore === null)
		ignore = path.join(path.dirname(file), '.dockerignore');
	const errs = require('./dockerfile').checkDockerfile(file, ignore);
	for (const e of errs)
		process.stderr.write(`${PROG}: ${e}\n`);
	if (errs.length) {
		process.stderr.write(`${PROG}: ${errs.length} problem${errs.length === 1 ? '' : 's'}\n`);
		return 1;
	}
	process.stderr.write(`${PROG}: ${rel(file)} and ${rel(ignore)} valid\n`);
	return 0;
}

function main(argv) {
	const [cmd, ...args] = argv;
	switch (cmd) {
	case 'k8s': return cmdK8s(args);
	case 'render': return cmdRender(args);
	case 'canon': return cmdCanon(args);
	case 'metrics': return cmdMetrics(args);
	case 'dockerfile': return cmdDockerfile(args);
	case '-h':
	case '--help':
		process.stdout.write('usage: validate.js k8s|render|canon|metrics|dockerfile ...\n');
		return 0;
	default: usage(cmd ? `unknown command ${cmd}` : null);
	}
	return 64;
}

process.exitCode = main(process.argv.slice(2));
