#!/usr/bin/env node
// Type-checks every dashboard in dashboards/*.json against the Dashboard type
// of @grafana/schema with `tsc --noEmit --strict`. Each JSON is written into a
// .ts file as an object literal annotated with the type (generated/, not
// committed): unlike `import x from "./x.json"`, which widens every string,
// a literal keeps "timeseries" and 'row' as literals and gets TypeScript's
// excess-property check, so a misspelt field fails as well as a wrong type.
// Then a known-wrong dashboard must fail the same check (the check checks).
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const here = __dirname;
const boards = path.join(here, '..');
const generated = path.join(here, 'generated');
const tsc = path.join(here, 'node_modules', 'typescript', 'bin', 'tsc');
if (!fs.existsSync(tsc) || !fs.existsSync(path.join(here, 'node_modules', '@grafana', 'schema'))) {
  console.error('dashboards/check: node_modules is missing: run (cd dashboards/check && npm ci) or ./scripts/test.sh');
  process.exit(1);
}

// The type a dashboard has as JSON: @grafana/schema declares some fields as
// TypeScript string enums (ThresholdsMode...), which JSON spells as their
// values ("absolute"); AsJson turns each such enum into the union of its
// values and leaves everything else as it is.
const prelude = `import type { Dashboard } from '@grafana/schema';

type AsJson<T> = T extends string ? \`\${T}\` : T extends Array<infer U> ? Array<AsJson<U>> : T extends object ? { [K in keyof T]: AsJson<T[K]> } : T;
`;
function typed(json) {
  return `${prelude}\nexport const dashboard: AsJson<Dashboard> = ${json.trimEnd()};\n`;
}
function runTsc(files) {
  const args = [tsc, '--noEmit', '--strict', '--module', 'esnext', '--moduleResolution', 'bundler',
                '--target', 'es2022', ...files];
  return spawnSync(process.execPath, args, { cwd: here, encoding: 'utf8' });
}

fs.rmSync(generated, { recursive: true, force: true });
fs.mkdirSync(generated);
const names = fs.readdirSync(boards).filter((n) => n.endsWith('.json')).sort();
if (names.length === 0) { console.error('dashboards/check: no dashboards/*.json'); process.exit(1); }
const files = names.map((name) => {
  const file = path.join(generated, name.replace(/\.json$/, '.ts'));
  fs.writeFileSync(file, typed(fs.readFileSync(path.join(boards, name), 'utf8')));
  return file;
});
const result = runTsc(files);
if (result.status !== 0) {
  console.error(`dashboards/check: tsc found errors (generated/<name>.ts line N is dashboards/<name>.json line N-5):\n${result.stdout}${result.stderr}`);
  process.exit(1);
}
console.log(`dashboards/check: ${names.length} dashboards match @grafana/schema's Dashboard type: ${names.join(', ')}`);

// The negative cases: each wrong dashboard must fail, with its error.
const wrong = [
  ['a wrong type (schemaVersion as a string)', (d) => { d.schemaVersion = '39'; }, /'string' is not assignable to type 'number'/],
  ['a misspelt panel field (gridPoss)', (d) => { d.panels[1].gridPoss = d.panels[1].gridPos; }, /gridPoss/],
  ['an unknown variable type', (d) => { d.templating.list[1].type = 'querry'; }, /querry/],
  ['a missing required field (no schemaVersion)', (d) => { delete d.schemaVersion; }, /schemaVersion/],
  ['a value outside a string enum (thresholds mode)', (d) => {
    d.panels.find((p) => p.fieldConfig?.defaults.thresholds).fieldConfig.defaults.thresholds.mode = 'absolut';
  }, /"absolut"/],
];
const sample = JSON.parse(fs.readFileSync(path.join(boards, names[0]), 'utf8'));
let failures = 0;
wrong.forEach(([what, spoil, error], i) => {
  const board = structuredClone(sample);
  spoil(board);
  const file = path.join(generated, `wrong-${i}.ts`);
  fs.writeFileSync(file, typed(JSON.stringify(board, null, 2)));
  const r = runTsc([file]);
  const out = r.stdout + r.stderr;
  if (r.status === 0 || !error.test(out)) {
    console.error(`dashboards/check: ${what} was not caught by tsc (exit ${r.status}):\n${out}`);
    failures++;
  } else {
    console.log(`dashboards/check: ${what} fails as it should: ${out.split('\n').find((l) => error.test(l)).trim().slice(0, 160)}`);
  }
});
process.exit(failures ? 1 : 0);
