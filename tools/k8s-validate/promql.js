/*
 * promql.js: the metric names that alert rules and Grafana dashboards
 * query, read with the Prometheus project's own PromQL grammar
 * (@prometheus-io/lezer-promql), so t/603 can check that dt-report pushes
 * every one of them.
 *
 * Rules come from a PrometheusRule's spec.groups or a plain rules file's
 * groups; dashboards from a dashboard JSON file or from a ConfigMap
 * labelled grafana_dashboard (as Grafana's sidecar loads them).
 */
'use strict';

const { parser } = require('@prometheus-io/lezer-promql');

/* [{where, expr}] of every rule in a list of rule groups. */
function ruleExprs(groups, where) {
	const out = [];
	(groups || []).forEach((g, i) => (g.rules || []).forEach((r, j) => {
		if (typeof r.expr === 'string')
			out.push({ where: `${where}groups[${i}].rules[${j}].expr`, expr: r.expr });
	}));
	return out;
}

/* [{where, expr}] of every panel target of a dashboard, rows included. */
function dashboardExprs(d, where) {
	const out = [];
	const walk = (panels, at) => (panels || []).forEach((p, i) => {
		(p.targets || []).forEach((t, j) => {
			if (typeof t.expr === 'string')
				out.push({ where: `${at}[${i}].targets[${j}].expr`, expr: t.expr });
		});
		walk(p.panels, `${at}[${i}].panels`);
	});
	walk(d.panels, `${where}panels`);
	return out;
}

/* The expressions of one rendered or loaded object. */
function objectExprs(obj) {
	if (obj && obj.kind === 'PrometheusRule')
		return ruleExprs((obj.spec || {}).groups, 'spec.');
	if (obj && obj.kind === 'ConfigMap' &&
	    ((obj.metadata || {}).labels || {}).grafana_dashboard !== undefined) {
		const out = [];
		for (const [k, v] of Object.entries(obj.data || {}))
			out.push(...dashboardExprs(JSON.parse(v), `data.${k}: `));
		return out;
	}
	if (obj && !obj.kind && Array.isArray(obj.groups))
		return ruleExprs(obj.groups, '');
	if (obj && !obj.kind && Array.isArray(obj.panels))
		return dashboardExprs(obj, '');
	return [];
}

/* A PromQL string literal's value. */
function stringValue(text) {
	if (text.startsWith('`'))
		return text.slice(1, -1);
	if (text.startsWith("'"))
		text = `"${text.slice(1, -1).replace(/\\'/g, "'").replace(/"/g, '\\"')}"`;
	return JSON.parse(text);
}

/*
 * The selectors of one expression: [{name, matchers: [{label, op,
 * value}]}].  Throws an Error naming the column of a syntax error, or a
 * selector by __name__ (which a name check could not follow).
 */
function selectors(expr) {
	const out = [];
	let bad = null;
	const text = n => expr.slice(n.from, n.to);
	parser.parse(expr).iterate({
		enter(n) {
			if (n.type.isError && bad === null)
				bad = `syntax error at column ${n.from + 1}`;
			if (n.name === 'LabelName' && text(n) === '__name__' && bad === null)
				bad = 'select metrics by name, not by __name__';
			if (n.name !== 'VectorSelector')
				return;
			const id = n.node.getChild('Identifier');
			const lm = n.node.getChild('LabelMatchers');
			const matchers = [];
			for (const m of lm ? lm.getChildren('UnquotedLabelMatcher') : []) {
				const label = m.getChild('LabelName');
				const op = m.getChild('MatchOp');
				const value = m.getChild('StringLiteral');
				if (label && op && op.firstChild && value)
					matchers.push({ label: text(label), op: text(op.firstChild),
					    value: stringValue(text(value)) });
			}
			if (id)
				out.push({ name: text(id), matchers });
		},
	});
	if (bad !== null)
		throw new Error(bad);
	return out;
}

/* The metric names one expression selects; throws as selectors() does. */
function metricNames(expr) {
	return selectors(expr).map(s => s.name);
}

/* The samples of a text exposition: [{name, labels}]. */
function parseScrape(text) {
	const out = [];
	for (const line of text.split('\n')) {
		const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+\S+/.exec(line);
		if (!m)
			continue;
		const labels = {};
		for (const l of (m[2] || '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g))
			labels[l[1]] = JSON.parse(`"${l[2]}"`);
		out.push({ name: m[1], labels });
	}
	return out;
}

function matches(sample, sel) {
	if (sample.name !== sel.name)
		return false;
	return sel.matchers.every(m => {
		const v = sample.labels[m.label] || '';
		switch (m.op) {
		case '=': return v === m.value;
		case '!=': return v !== m.value;
		case '=~': return new RegExp(`^(?:${m.value})$`).test(v);
		case '!~': return !new RegExp(`^(?:${m.value})$`).test(v);
		default: return false;
		}
	});
}

/* A selector as PromQL writes it, for messages. */
function selectorText(sel) {
	if (sel.matchers.length === 0)
		return sel.name;
	return `${sel.name}{${sel.matchers.map(m =>
	    `${m.label}${m.op}${JSON.stringify(m.value)}`).join(',')}}`;
}

module.exports = { objectExprs, metricNames, selectors, parseScrape, matches,
    selectorText };
