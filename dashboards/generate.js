#!/usr/bin/env node
// The one source of the Grafana dashboards in this folder: writes
// vantage-*.json (classic dashboard JSON, importable as they are).
//   node dashboards/generate.js          rewrite the JSON files
//   node dashboards/generate.js --check  fail, naming the file, if a committed
//                                        JSON differs from what this script makes
// A script rather than hand-written JSON so every panel gets the datasource
// variable, a layout and the same variable definitions: one place each.
// Plain Node.js, no packages. docs/dashboards.md says what each panel shows.
'use strict';
const fs = require('fs');
const path = require('path');

const DS = { type: 'prometheus', uid: '${datasource}' };
const COORDINATOR = 'job="vantage-coordinator", instance=~"$instance"';
const PROBE = 'job="vantage-probe", instance=~"$instance"';

// ---- Variables ----------------------------------------------------------
const datasourceVar = {
  name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', hide: 0, refresh: 1, regex: '', skipUrlSync: false,
};
// A query variable from label_values(SELECTOR, LABEL); `all` adds "All" (a regex ".*").
function labelVar(name, label, selector, { all = true, multi = all, text = label } = {}) {
  return {
    name, label: text, type: 'query', datasource: DS,
    query: `label_values(${selector}, ${label})`,
    refresh: 2, sort: 1, hide: 0, regex: '', skipUrlSync: false,
    includeAll: all, multi, ...(all ? { allValue: '.*' } : {}),
    ...(all ? { current: { text: 'All', value: '$__all' } } : {}),
  };
}
const regionVar = labelVar('region', 'region', 'vantage_check_up', { text: 'Region' });
const checkVar = (all) => labelVar('check', 'check', 'vantage_check_up{region=~"$region"}', { all, text: 'Check' });
const coloVar = labelVar('colo', 'colo', 'vantage_check_results_total{region=~"$region"}', { text: 'Colo' });
const instanceVar = (job, text) => labelVar('instance', 'instance', `up{job="${job}"}`, { text });

// ---- Panels ---------------------------------------------------------------
// Panels are laid out left to right, 24 columns wide; `w` and `h` in grid units.
function layout(panels) {
  let x = 0, y = 0, rowHeight = 0, id = 1;
  return panels.map((p) => {
    if (p.type === 'row') {
      if (x > 0) { y += rowHeight; x = 0; rowHeight = 0; }
      const row = { ...p, id: id++, gridPos: { h: 1, w: 24, x: 0, y } };
      y += 1;
      return row;
    }
    const { w, h, ...rest } = p;
    if (x + w > 24) { y += rowHeight; x = 0; rowHeight = 0; }
    const placed = { ...rest, id: id++, gridPos: { h, w, x, y } };
    x += w;
    rowHeight = Math.max(rowHeight, h);
    return placed;
  });
}
const row = (title) => ({ type: 'row', title, collapsed: false, panels: [] });
function targets(queries) {
  return queries.map(([expr, legendFormat], i) => ({
    refId: String.fromCharCode(65 + i), datasource: DS, expr, legendFormat, range: true, instant: false,
  }));
}
function panel(type, title, description, queries, { w = 12, h = 8, unit = 'short', min, max, options = {}, custom = {}, thresholds } = {}) {
  return {
    type, title, description, datasource: DS, w, h,
    fieldConfig: {
      defaults: {
        unit, ...(min !== undefined ? { min } : {}), ...(max !== undefined ? { max } : {}),
        ...(thresholds ? { thresholds: { mode: 'absolute', steps: thresholds } } : {}),
        custom,
      },
      overrides: [],
    },
    options,
    targets: targets(queries),
  };
}
const graph = (title, description, queries, opts = {}) =>
  panel('timeseries', title, description, queries, {
    ...opts,
    options: { legend: { displayMode: 'table', placement: 'right', calcs: ['lastNotNull'] }, tooltip: { mode: 'multi', sort: 'desc' } },
  });
const stackedBars = (title, description, queries, opts = {}) =>
  panel('timeseries', title, description, queries, {
    ...opts,
    custom: { drawStyle: 'bars', stacking: { mode: 'normal', group: 'A' }, fillOpacity: 80 },
    options: { legend: { displayMode: 'table', placement: 'right', calcs: ['sum'] }, tooltip: { mode: 'multi', sort: 'desc' } },
  });
const stat = (title, description, queries, opts = {}) =>
  panel('stat', title, description, queries, {
    w: 6, h: 4, ...opts,
    options: { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, colorMode: 'value', graphMode: 'area', textMode: 'auto' },
  });
const bars = (title, description, queries, opts = {}) =>
  panel('bargauge', title, description, queries, {
    ...opts,
    options: { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false }, orientation: 'horizontal', displayMode: 'gradient' },
  });
const GREEN_RED = [{ color: 'red', value: null }, { color: 'green', value: 1 }];
const ZERO_GOOD = [{ color: 'green', value: null }, { color: 'red', value: 1 }];

function dashboard({ uid, title, description, tags, variables, panels, refresh = '30s', time = 'now-3h' }) {
  return {
    uid, title, description, tags: ['vantage', ...tags],
    editable: true, graphTooltip: 1, refresh, schemaVersion: 39, version: 1,
    time: { from: time, to: 'now' }, timepicker: {}, timezone: 'browser',
    links: [{ title: 'Vantage', type: 'dashboards', tags: ['vantage'], asDropdown: true, icon: 'external link', includeVars: false, keepTime: true, targetBlank: false, tooltip: '', url: '' }],
    annotations: { list: [] },
    templating: { list: [datasourceVar, ...variables] },
    panels: layout(panels),
  };
}

// ---- The dashboards ----------------------------------------------------------
const RESULTS = 'vantage_check_results_total{region=~"$region", colo=~"$colo"}';

const overview = dashboard({
  uid: 'vantage-overview',
  title: 'Vantage / Overview',
  description: 'Every check: up or down by region, uptime and reachability, 52x errors by region and colo, open incidents.',
  tags: ['overview'],
  variables: [regionVar, checkVar(true), coloVar],
  panels: [
    row('Checks'),
    stat('Checks up', 'Checks whose latest results succeed in every selected region.', [
      ['count(min by (check) (vantage_check_up{region=~"$region", check=~"$check"}) == 1) or vector(0)', 'up']]),
    stat('Checks failing somewhere', 'Checks failing in at least one selected region (latest results).', [
      ['count(min by (check) (vantage_check_up{region=~"$region", check=~"$check"}) == 0) or vector(0)', 'failing']],
      { thresholds: ZERO_GOOD }),
    stat('Open incidents', 'Incidents open now, all kinds and scopes.', [
      ['sum(vantage_incidents_open)', 'open']], { thresholds: ZERO_GOOD }),
    stat('Probes connected', 'Probe streams open at the coordinator.', [
      ['sum(vantage_probes_connected{job="vantage-coordinator"})', 'connected']]),
    panel('state-timeline', 'Check state by region', '1 = the region\'s latest results succeed, 0 = they fail.', [
      ['vantage_check_up{region=~"$region", check=~"$check"}', '{{check}} {{region}}']],
      { w: 24, h: 9, max: 1, min: 0, thresholds: GREEN_RED, options: { showValue: 'never', mergeValues: true } }),
    row('Uptime and reachability'),
    bars('Uptime', 'Share of the time range in which the check succeeded from at least one selected region (any region up = up).', [
      ['avg_over_time((max by (check) (vantage_check_up{region=~"$region", check=~"$check"}))[$__range:])', '{{check}}']],
      { unit: 'percentunit', min: 0, max: 1 }),
    bars('Reachability by region', 'Share of all results that succeeded (class ok) over the time range, by region: every probe attempt counts.', [
      [`sum by (region) (increase(vantage_check_results_total{region=~"$region", class="ok"}[$__range])) / sum by (region) (increase(vantage_check_results_total{region=~"$region"}[$__range]))`, '{{region}}']],
      { unit: 'percentunit', min: 0, max: 1 }),
    row('52x errors at the edge'),
    stackedBars('52x by region', 'Results whose edge answered 520-527 (Cloudflare cannot reach or read the origin), per second, by region.', [
      [`sum by (region) (rate(vantage_check_results_total{region=~"$region", colo=~"$colo", edge_code=~"52[0-9]"}[$__rate_interval]))`, '{{region}}']],
      { unit: 'reqps' }),
    stackedBars('52x by colo and code', 'The same results by Cloudflare data centre (colo) and edge code; colo "other" is a code Vantage does not know.', [
      [`sum by (colo, edge_code) (rate(vantage_check_results_total{region=~"$region", colo=~"$colo", edge_code=~"52[0-9]"}[$__rate_interval]))`, '{{colo}} {{edge_code}}']],
      { unit: 'reqps' }),
    row('Incidents'),
    bars('Open incidents by kind and scope', 'Outages and intermittent failures, by how far they reach: probe, colo, region or global.', [
      ['sum by (kind, scope) (vantage_incidents_open)', '{{kind}} / {{scope}}']]),
    graph('Open incidents by check', 'One line per open incident (the alert rules page on these).', [
      ['vantage_check_incident_open{check=~"$check"}', '{{check}} {{kind}} {{scope}} {{cause}} ({{incident}})']]),
  ],
});

const check = dashboard({
  uid: 'vantage-check',
  title: 'Vantage / Check',
  description: 'One check drilled down: state by region, incidents; and the failure classes, colos and edge codes of the selected regions.',
  tags: ['check'],
  variables: [regionVar, checkVar(false), coloVar],
  panels: [
    row('The check'),
    panel('state-timeline', 'State by region', '1 = the region\'s latest results for $check succeed, 0 = they fail.', [
      ['vantage_check_up{check="$check", region=~"$region"}', '{{region}}']],
      { w: 24, h: 6, max: 1, min: 0, thresholds: GREEN_RED, options: { showValue: 'never', mergeValues: true } }),
    bars('Uptime by region', 'Share of the time range in which $check succeeded, per region.', [
      ['avg_over_time(vantage_check_up{check="$check", region=~"$region"}[$__range])', '{{region}}']],
      { unit: 'percentunit', min: 0, max: 1 }),
    graph('Incidents of $check', 'Open incidents of this check, with kind, scope, cause and id (the id is what vantagectl incidents show takes).', [
      ['vantage_check_incident_open{check="$check"}', '{{kind}} {{scope}} {{cause}} ({{incident}})']]),
    panel('text', 'Phases and response times', 'Not exported as metrics.', [], {
      w: 24, h: 3,
      options: { mode: 'markdown', content: 'Per-phase timings (DNS, connect, TLS, first byte, body) of each result are stored in PostgreSQL, not exported as metrics (they would need the check label on a histogram). Read them through the ResultService API (ListResults: the Timings of each result, and the phase a failure happened in); `vantagectl results summary $check` gives latency percentiles by region, `vantagectl run $check` runs it now, `vantage-probe diagnose URL` shows one attempt phase by phase. The panels below are for the selected regions and colos, all checks together: the results by class carry no check label (cardinality budget, README "Metrics").' },
    }),
    row('Failures in the selected regions (all checks)'),
    stackedBars('Failure classes over time', 'Results that did not succeed, per second, by failure class of the edge leg.', [
      [`sum by (class) (rate(vantage_check_results_total{region=~"$region", colo=~"$colo", class!="ok"}[$__rate_interval]))`, '{{class}}']],
      { unit: 'reqps' }),
    stackedBars('Results by colo', 'All results per second by the Cloudflare data centre that answered (from cf-ray); empty colo = no edge in the path.', [
      [`sum by (colo) (rate(${RESULTS}[$__rate_interval]))`, '{{colo}}']],
      { unit: 'reqps' }),
    stackedBars('Edge codes', 'Results per second by the edge\'s status code when the edge produced the error (520, 521, 522 ...).', [
      [`sum by (edge_code) (rate(vantage_check_results_total{region=~"$region", colo=~"$colo", edge_code!=""}[$__rate_interval]))`, '{{edge_code}}']],
      { unit: 'reqps' }),
    graph('Failure share by region', 'Share of results that failed, by region.', [
      [`sum by (region) (rate(vantage_check_results_total{region=~"$region", class!="ok"}[$__rate_interval])) / sum by (region) (rate(vantage_check_results_total{region=~"$region"}[$__rate_interval]))`, '{{region}}']],
      { unit: 'percentunit', min: 0, max: 1 }),
  ],
});

const fleet = dashboard({
  uid: 'vantage-probe-fleet',
  title: 'Vantage / Probe fleet',
  description: 'The probes: connected, scheduler lag, spool, results per second, drops. Scraped as job "vantage-probe" (vantage-probe --metrics-listen).',
  tags: ['probes'],
  variables: [instanceVar('vantage-probe', 'Probe')],
  panels: [
    row('Connection'),
    stat('Probes scraped and up', 'Probe processes Prometheus can scrape.', [
      [`sum(up{${PROBE}})`, 'up']]),
    stat('Probes connected (coordinator)', 'Probe streams open at the coordinator.', [
      ['sum(vantage_probes_connected{job="vantage-coordinator"})', 'connected']]),
    stat('Checks scheduled', 'Checks assigned to the selected probes and scheduled.', [
      [`sum(vantage_probe_checks{${PROBE}})`, 'checks']]),
    stat('Stream sessions (range)', 'Streams established in the time range: more than one per probe means reconnects.', [
      [`sum(increase(vantage_probe_stream_sessions_total{${PROBE}}[$__range]))`, 'sessions']]),
    panel('state-timeline', 'Stream to the coordinator', '1 while the probe\'s stream is up.', [
      [`vantage_probe_stream_connected{${PROBE}}`, '{{instance}}']],
      { w: 24, h: 5, min: 0, max: 1, thresholds: GREEN_RED, options: { showValue: 'never', mergeValues: true } }),
    row('Work'),
    graph('Results per second by probe', 'Check results produced.', [
      [`sum by (instance) (rate(vantage_probe_results_total{${PROBE}}[$__rate_interval]))`, '{{instance}}']],
      { unit: 'reqps' }),
    stackedBars('Results per second by class', 'Check results produced, by failure class of the edge leg.', [
      [`sum by (class) (rate(vantage_probe_results_total{${PROBE}}[$__rate_interval]))`, '{{class}}']],
      { unit: 'reqps' }),
    graph('Scheduler lag (p50, p99)', 'How late scheduled attempts started: waiting for a free slot or a busy loop.', [
      [`histogram_quantile(0.5, sum by (instance, le) (rate(vantage_probe_scheduler_lag_seconds_bucket{${PROBE}}[$__rate_interval])))`, 'p50 {{instance}}'],
      [`histogram_quantile(0.99, sum by (instance, le) (rate(vantage_probe_scheduler_lag_seconds_bucket{${PROBE}}[$__rate_interval])))`, 'p99 {{instance}}']],
      { unit: 's' }),
    row('Spool'),
    graph('Spool: unacknowledged results', 'Results held until the coordinator has stored them; grows while the coordinator is away.', [
      [`vantage_probe_spool_results{${PROBE}}`, '{{instance}}']]),
    graph('Spool: bytes on disk', 'Spool segments on disk.', [
      [`vantage_probe_spool_bytes{${PROBE}}`, '{{instance}}']], { unit: 'bytes' }),
    graph('Not yet stored (sequence gap)', 'Last result produced minus the last the coordinator acknowledged.', [
      [`vantage_probe_spool_last_sequence{${PROBE}} - vantage_probe_spool_acked_sequence{${PROBE}}`, '{{instance}}']]),
    stackedBars('Dropped results', 'Results lost before the coordinator stored them, by reason (disk_bound, memory_bound, disk_error, corrupt): should be zero.', [
      [`sum by (instance, reason) (increase(vantage_probe_spool_dropped_total{${PROBE}}[$__rate_interval]))`, '{{instance}} {{reason}}']],
      { thresholds: ZERO_GOOD }),
    graph('Spool disk', 'Disk failing (1 = results kept in memory only), write errors and replays per second.', [
      [`vantage_probe_spool_disk_failing{${PROBE}}`, 'failing {{instance}}'],
      [`rate(vantage_probe_spool_disk_write_errors_total{${PROBE}}[$__rate_interval])`, 'write errors {{instance}}'],
      [`rate(vantage_probe_results_replayed_total{${PROBE}}[$__rate_interval])`, 'replayed {{instance}}']]),
  ],
});

const coordinator = dashboard({
  uid: 'vantage-coordinator',
  title: 'Vantage / Coordinator',
  description: 'The coordinator: ingest, commit times, queue, storage, probe streams, correlation and incidents, Alertmanager posts, config reloads.',
  tags: ['coordinator'],
  variables: [instanceVar('vantage-coordinator', 'Coordinator')],
  panels: [
    row('Ingest'),
    graph('Results stored per second by region', 'Results committed to PostgreSQL, by the region of the probe that sent them.', [
      [`sum by (region) (rate(vantage_ingest_results_total{${COORDINATOR}}[$__rate_interval]))`, '{{region}}']],
      { unit: 'reqps' }),
    graph('Batches, duplicates and refusals per second', 'Batches committed; results received again after a replay (stored once); results refused alone, by reason.', [
      [`rate(vantage_ingest_batches_total{${COORDINATOR}}[$__rate_interval])`, 'batches'],
      [`rate(vantage_ingest_duplicate_results_total{${COORDINATOR}}[$__rate_interval])`, 'duplicates'],
      [`sum by (reason) (rate(vantage_ingest_refused_results_total{${COORDINATOR}}[$__rate_interval]))`, 'refused {{reason}}']],
      { unit: 'reqps' }),
    graph('Commit time (p50, p99)', 'Time to store one batch, COPY to commit.', [
      [`histogram_quantile(0.5, sum by (le) (rate(vantage_ingest_commit_seconds_bucket{${COORDINATOR}}[$__rate_interval])))`, 'p50'],
      [`histogram_quantile(0.99, sum by (le) (rate(vantage_ingest_commit_seconds_bucket{${COORDINATOR}}[$__rate_interval])))`, 'p99']],
      { unit: 's' }),
    graph('Results per commit (mean) and queue', 'Results per transaction, and results received and waiting to be stored (the backlog alert watches the queue).', [
      [`sum(rate(vantage_ingest_commit_results_sum{${COORDINATOR}}[$__rate_interval])) / sum(rate(vantage_ingest_commit_results_count{${COORDINATOR}}[$__rate_interval]))`, 'results per commit'],
      [`vantage_ingest_queued_results{${COORDINATOR}}`, 'queued']]),
    row('Storage'),
    stackedBars('Storage errors', 'Batches not stored, by reason; the probe keeps them and sends them again. Should be zero.', [
      [`sum by (reason) (increase(vantage_ingest_errors_total{${COORDINATOR}}[$__rate_interval]))`, '{{reason}}']]),
    graph('Partitions', 'Result partitions created by the last maintenance run; dropped for retention (total).', [
      [`vantage_storage_partitions_created{${COORDINATOR}}`, 'created (last run)'],
      [`vantage_storage_partitions_dropped_total{${COORDINATOR}}`, 'dropped']]),
    row('Probe streams'),
    graph('Probes connected and checks', 'Probe streams open now; checks configured.', [
      [`vantage_probes_connected{${COORDINATOR}}`, 'probes connected'],
      [`vantage_checks{${COORDINATOR}}`, 'checks']]),
    stackedBars('Streams ended and refused', 'Streams the coordinator ended, by reason; probe streams refused at authentication, by reason.', [
      [`sum by (reason) (increase(vantage_probe_streams_ended_total{${COORDINATOR}}[$__rate_interval]))`, 'ended {{reason}}'],
      [`sum by (reason) (increase(vantage_probe_auth_failures_total{${COORDINATOR}}[$__rate_interval]))`, 'refused {{reason}}']]),
    row('Correlation and incidents'),
    stackedBars('Incident events', 'Incident timeline events by type (opened, scope_changed, reopened, resolved ...).', [
      [`sum by (type) (increase(vantage_incident_events_total{${COORDINATOR}}[$__rate_interval]))`, '{{type}}']]),
    graph('Detection time (p50, p90) and re-checks', 'From an incident\'s first failure to its confirmation; immediate re-checks asked of probes per second.', [
      [`histogram_quantile(0.5, sum by (le) (rate(vantage_incident_detection_seconds_bucket{${COORDINATOR}}[$__range])))`, 'detection p50 (s)'],
      [`histogram_quantile(0.9, sum by (le) (rate(vantage_incident_detection_seconds_bucket{${COORDINATOR}}[$__range])))`, 'detection p90 (s)'],
      [`rate(vantage_rechecks_requested_total{${COORDINATOR}}[$__rate_interval])`, 're-checks per second']]),
    row('Alertmanager and configuration'),
    graph('Alertmanager posts', 'Posts of incidents to Alertmanager per second by result (--alertmanager-url); alerts being sent; changes dropped because the pusher was stuck.', [
      [`sum by (result) (rate(vantage_alertmanager_posts_total{${COORDINATOR}}[$__rate_interval]))`, 'posts {{result}}'],
      [`vantage_alertmanager_alerts{${COORDINATOR}}`, 'alerts'],
      [`increase(vantage_alertmanager_dropped_total{${COORDINATOR}}[$__rate_interval])`, 'dropped']]),
    graph('Checks file reloads', 'Reloads of the checks file by result (a failure keeps the last good checks); time since the last good load.', [
      [`sum by (result) (increase(vantage_config_reload_total{${COORDINATOR}}[$__range]))`, 'reloads {{result}} (range)'],
      [`time() - vantage_config_last_reload_success_timestamp_seconds{${COORDINATOR}}`, 'seconds since the last good load']]),
    graph('API authentication failures', 'Public API calls refused, by reason.', [
      [`sum by (reason) (increase(vantage_api_auth_failures_total{${COORDINATOR}}[$__rate_interval])) or vector(0)`, '{{reason}}']]),
  ],
});

// ---- Output ------------------------------------------------------------------
const files = {
  'vantage-overview.json': overview,
  'vantage-check.json': check,
  'vantage-probe-fleet.json': fleet,
  'vantage-coordinator.json': coordinator,
};
const checkOnly = process.argv.includes('--check');
let drift = false;
for (const [name, board] of Object.entries(files)) {
  const file = path.join(__dirname, name);
  const text = JSON.stringify(board, null, 2) + '\n';
  if (!checkOnly) { fs.writeFileSync(file, text); continue; }
  const committed = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '';
  if (committed !== text) {
    console.error(`dashboards/${name} differs from what dashboards/generate.js makes: run node dashboards/generate.js`);
    drift = true;
  }
}
process.exit(drift ? 1 : 0);
