/*
 * dockerfile.js: checks of the Dockerfile and its .dockerignore.
 *
 * dockerfilelint (npm) finds the generic mistakes; the rules here are dt's:
 * a multi-stage build, every base pinned by a tag that is not "latest", a
 * runtime stage with no compiler or -dev package that runs as a numeric
 * UID:GID above 10000 with an exec-form ENTRYPOINT and the OCI labels,
 * apt-get without recommends and without leftover lists, no ADD, no secret
 * baked into ENV or ARG, and a .dockerignore that keeps the repository,
 * build outputs, node_modules and local secrets out of the build context
 * while letting the sources in.
 */
'use strict';

const fs = require('fs');
const path = require('path');
const dockerfilelint = require('dockerfilelint');

const LABELS = ['org.opencontainers.image.title', 'org.opencontainers.image.version',
    'org.opencontainers.image.revision', 'org.opencontainers.image.created'];
const SECRET_NAME = /(KEY|TOKEN|SECRET|PASSWORD)/i;
/* Paths the build context must leave out, and ones it must hold. */
const MUST_EXCLUDE = ['.git/HEAD', 'build/bin/dt-fetch', 'build/lib/libdt.a',
    'tools/k8s-validate/node_modules/yaml/package.json', 'k8s/secret.yaml',
    'lib/http.o', 't/stack/supabase-standin', 't/100-fetch-claim.bats',
    'docs/deploy.md', 'demo/run', '.env'];
const MUST_INCLUDE = ['Makefile', 'lib/exit.h', 'lib/http.c', 'fetch/dt-fetch.c',
    'analyze/dt-analyze.c', 'store/dt-store.c', 'report/dt-report.c',
    'lib/log.sh', 'entrypoint.sh', 't/unit/ndjson.c', 't/run', 't/001-lib-ndjson.bats',
    't/test_helper/common.bash', 't/stack/http-fixture'];

/* Joins continuation lines; returns [{line, cmd, args}] (line is 1-based). */
function parse(text) {
	const out = [];
	let cur = null;
	text.split(/\r?\n/).forEach((raw, i) => {
		const l = raw.trim();
		if (cur === null && (l === '' || l.startsWith('#')))
			return;
		if (cur !== null && l.startsWith('#'))
			return;
		const cont = l.endsWith('\\');
		const part = cont ? l.slice(0, -1) : l;
		if (cur === null)
			cur = { line: i + 1, text: part };
		else
			cur.text += ' ' + part;
		if (!cont) {
			const m = /^(\S+)\s*([\s\S]*)$/.exec(cur.text.trim());
			out.push({ line: cur.line, cmd: m[1].toUpperCase(), args: m[2] });
			cur = null;
		}
	});
	return out;
}

function globRegex(p) {
	let re = '';
	for (let i = 0; i < p.length; i++) {
		const c = p[i];
		if (c === '*' && p[i + 1] === '*') {
			if (p[i + 2] === '/') {
				re += '(?:.*/)?';
				i += 2;
			} else {
				re += '.*';
				i++;
			}
		} else if (c === '*') {
			re += '[^/]*';
		} else if (c === '?') {
			re += '[^/]';
		} else {
			re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
		}
	}
	return new RegExp(`^${re}$`);
}

/* Docker's rule: the last matching pattern wins; a directory's match covers its contents. */
function excluded(patterns, file) {
	const parts = file.split('/');
	const prefixes = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
	let ex = false;
	for (const { neg, re } of patterns)
		if (prefixes.some(p => re.test(p)))
			ex = !neg;
	return ex;
}

function loadIgnore(file) {
	return fs.readFileSync(file, 'utf8').split(/\r?\n/)
	    .map(l => l.trim())
	    .filter(l => l !== '' && !l.startsWith('#'))
	    .map(l => {
		    const neg = l.startsWith('!');
		    let p = neg ? l.slice(1).trim() : l;
		    p = path.posix.normalize(p).replace(/^\/+/, '').replace(/\/+$/, '');
		    return { neg, re: globRegex(p) };
	    });
}

/* The variables an ENV or ARG sets: NAME=value pairs, or the old "NAME value". */
function varNames(args) {
	const names = [...args.matchAll(/(?:^|\s)([A-Za-z_][A-Za-z0-9_]*)=/g)].map(m => m[1]);
	if (names.length === 0 && /^[A-Za-z_]\w*/.test(args))
		names.push(/^[A-Za-z_]\w*/.exec(args)[0]);
	return names;
}

function fromRef(args) {
	const words = args.split(/\s+/).filter(w => !w.startsWith('--'));
	return { image: words[0], alias: /^as$/i.test(words[1] || '') ? words[2] : null };
}

/* Returns a list of problem lines (empty when all is well). */
function checkDockerfile(file, ignoreFile) {
	const errs = [];
	let text;
	try {
		text = fs.readFileSync(file, 'utf8');
	} catch (e) {
		return [`${file}: cannot read: ${e.code}`];
	}
	for (const it of dockerfilelint.run(path.dirname(file), text))
		errs.push(`${file}:${it.line}: dockerfilelint: ${it.title} (${it.rule})`);

	const ins = parse(text);
	const stages = [];
	const aliases = new Set();
	for (const i of ins) {
		if (i.cmd === 'FROM') {
			const { image, alias } = fromRef(i.args);
			stages.push({ from: i, image, list: [] });
			if (!aliases.has(image)) {
				const m = /^([^@]+?)(?::([^:/@]+))?(@sha256:[0-9a-f]{64})?$/.exec(image || '');
				if (!m || (!m[2] && !m[3]))
					errs.push(`${file}:${i.line}: FROM ${image}: pin the base with a tag`);
				else if (m[2] === 'latest')
					errs.push(`${file}:${i.line}: FROM ${image}: never the latest tag`);
			}
			if (alias)
				aliases.add(alias);
			continue;
		}
		if (stages.length)
			stages[stages.length - 1].list.push(i);
		if (i.cmd === 'ADD')
			errs.push(`${file}:${i.line}: ADD: use COPY (no remote or archive magic)`);
		if (i.cmd === 'ENV' || i.cmd === 'ARG')
			for (const n of varNames(i.args))
				if (SECRET_NAME.test(n))
					errs.push(`${file}:${i.line}: ${i.cmd} ${n}: no secret in the image`);
		if (i.cmd === 'RUN' && /apt-get\s+(-\S+\s+)*install/.test(i.args)) {
			if (!i.args.includes('--no-install-recommends'))
				errs.push(`${file}:${i.line}: apt-get install needs --no-install-recommends`);
			if (!/rm -rf \/var\/lib\/apt\/lists/.test(i.args))
				errs.push(`${file}:${i.line}: the same RUN must remove /var/lib/apt/lists`);
		}
	}
	if (stages.length < 2) {
		errs.push(`${file}: needs a build stage and a runtime stage`);
		return errs.concat(checkIgnore(ignoreFile));
	}
	const last = stages[stages.length - 1];
	const at = `${file}:${last.from.line}`;
	const users = last.list.filter(i => i.cmd === 'USER');
	const user = users.length ? users[users.length - 1] : null;
	const um = user && /^(\d+):(\d+)$/.exec(user.args.trim());
	if (!um || Number(um[1]) <= 10000 || Number(um[2]) <= 10000)
		errs.push(`${user ? `${file}:${user.line}` : at}: the runtime stage needs USER UID:GID, numeric, both above 10000`);
	for (const i of last.list)
		if (i.cmd === 'RUN' && /apt-get\s+(-\S+\s+)*install/.test(i.args) &&
		    /(\S+-dev\b|\bgcc\b|\bmake\b|\bbuild-essential\b)/.test(i.args))
			errs.push(`${file}:${i.line}: the runtime stage must not install build tools`);
	const ep = last.list.filter(i => i.cmd === 'ENTRYPOINT').pop();
	if (!ep)
		errs.push(`${at}: the runtime stage needs an ENTRYPOINT`);
	else if (!ep.args.trim().startsWith('['))
		errs.push(`${file}:${ep.line}: ENTRYPOINT must be exec form (JSON array) so signals reach it`);
	const labels = last.list.filter(i => i.cmd === 'LABEL').map(i => i.args).join(' ');
	for (const l of LABELS)
		if (!labels.includes(`${l}=`))
			errs.push(`${at}: the runtime stage needs LABEL ${l}`);
	return errs.concat(checkIgnore(ignoreFile));
}

function checkIgnore(ignoreFile) {
	let pats;
	try {
		pats = loadIgnore(ignoreFile);
	} catch (e) {
		return [`${ignoreFile}: cannot read: ${e.code}`];
	}
	const errs = [];
	for (const f of MUST_EXCLUDE)
		if (!excluded(pats, f))
			errs.push(`${ignoreFile}: ${f} must be left out of the build context`);
	for (const f of MUST_INCLUDE)
		if (excluded(pats, f))
			errs.push(`${ignoreFile}: ${f} must be in the build context`);
	return errs;
}

module.exports = { checkDockerfile, excluded, loadIgnore };
