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

/*
 * The metric names one expression selects.  Throws an Error naming the
 * column of a syntax error, or a selector by __name__ (which a name check
 * could not follow).
 */
function metricNames(expr) {
	const names = [];
	let bad = null;
	parser.parse(expr).iterate({
		enter(n) {
			if (n.type.isError && bad === null)
				bad = `syntax error at column ${n.from + 1}`;
			if (n.name === 'Identifier' && n.node.parent &&
			    n.node.parent.name === 'VectorSelector')
				names.push(expr.slice(n.from, n.to));
			if (n.name === 'LabelName' && expr.slice(n.from, n.to) === '__name__' &&
			    bad === null)
				bad = 'select metrics by name, not by __name__';
		},
	});
	if (bad !== null)
		throw new Error(bad);
	return names;
}

module.exports = { objectExprs, metricNames };
