#!/usr/bin/env node
// A small client of the Vantage public API, written only against the contract
// in proto/vantage/v1/: creates a check, lists checks, watches incidents.
//
// Output: one line per item, `kind key=value ...`, keys always in the same
// order; a value with a space, a quote, `=` or a control character is written
// as a JSON string. Errors go to stderr as `error: Method: CODE: message` with
// the gRPC status code name; exit code 1 for a failed call, 2 for bad usage.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { parseArgs } = require('node:util');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const USAGE = `usage: node client.js [--addr HOST:PORT] [--token-file FILE] [--ca FILE] COMMAND [options]

commands:
  create-check --name NAME --url URL [--interval 30s] [--timeout 10s]
               [--region REGION]... [--label KEY=VALUE]...
  list-checks [--label KEY=VALUE]...
  watch-incidents [--check NAME] [--since TIME | --after-event-id N] [--count N]

  --addr        the coordinator's gRPC address (default: $VANTAGE_ADDR, else 127.0.0.1:7000)
  --token-file  a file holding the API token (default: the token in $VANTAGE_TOKEN)
  --ca          PEM file of the CA that signed the coordinator's certificate: use TLS
                (default: $VANTAGE_CA; neither: plaintext)
  --since       send the events stored at or after TIME (RFC 3339) first
  --after-event-id  resume: send the events after this event id first
  --count       exit after printing this many events`;

const OPTIONS = {
  addr: { type: 'string' },
  'token-file': { type: 'string' },
  ca: { type: 'string' },
  name: { type: 'string' },
  url: { type: 'string' },
  interval: { type: 'string' },
  timeout: { type: 'string' },
  region: { type: 'string', multiple: true },
  label: { type: 'string', multiple: true },
  check: { type: 'string' },
  since: { type: 'string' },
  'after-event-id': { type: 'string' },
  count: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
};

const COMMAND_OPTIONS = {
  'create-check': ['name', 'url', 'interval', 'timeout', 'region', 'label'],
  'list-checks': ['label'],
  'watch-incidents': ['check', 'since', 'after-event-id', 'count'],
};
const GLOBAL_OPTIONS = ['addr', 'token-file', 'ca', 'help'];

class UsageError extends Error {}

// ---------------------------------------------------------------------------
// The contract: loaded from the repository's .proto files at run time.
// keepCase: field names exactly as in the .proto (after_event_id, not
// afterEventId); int64 as decimal strings (event ids exceed 2^53 in theory);
// enums by name.
// ---------------------------------------------------------------------------

function loadApi() {
  const protoDir = process.env.VANTAGE_PROTO_DIR || path.join(__dirname, '..', '..', 'proto');
  const definition = protoLoader.loadSync(
    ['vantage/v1/check_service.proto', 'vantage/v1/incident_service.proto'],
    { includeDirs: [protoDir], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
  return grpc.loadPackageDefinition(definition).vantage.v1;
}

function connect(Service, options) {
  const address = options.addr || process.env.VANTAGE_ADDR || '127.0.0.1:7000';
  const caFile = options.ca || process.env.VANTAGE_CA;
  const credentials = caFile
    ? grpc.credentials.createSsl(readFileOrUsage(caFile, options.ca ? '--ca' : 'VANTAGE_CA'))
    : grpc.credentials.createInsecure();
  return new Service(address, credentials);
}

function readFileOrUsage(file, flag) {
  try {
    return fs.readFileSync(file);
  } catch (e) {
    throw new UsageError(`${flag} ${file}: ${e.message}`);
  }
}

// The token goes in per-call metadata, so it works over plaintext on loopback
// as well as over TLS (grpc-js refuses call credentials without TLS).
function authMetadata(options) {
  let token = process.env.VANTAGE_TOKEN;
  if (options['token-file']) token = readFileOrUsage(options['token-file'], '--token-file').toString();
  token = (token || '').trim();
  if (!token) throw new UsageError('no API token: give --token-file FILE or set VANTAGE_TOKEN');
  const metadata = new grpc.Metadata();
  metadata.set('authorization', `Bearer ${token}`);
  return metadata;
}

// ---------------------------------------------------------------------------
// Formatting
// ---------------------------------------------------------------------------

function quote(value) {
  const text = String(value);
  return text !== '' && /^[^\s"=\\\x00-\x1f\x7f]+$/.test(text) ? text : JSON.stringify(text);
}

// `kind key=value ...`; fields whose value is undefined are left out.
function line(kind, fields) {
  const parts = [kind];
  for (const [key, value] of fields) {
    if (value !== undefined) parts.push(`${key}=${quote(value)}`);
  }
  process.stdout.write(parts.join(' ') + '\n');
}

// INCIDENT_EVENT_TYPE_OPENED -> opened: the names the coordinator stores.
function enumName(value, prefix) {
  return String(value).startsWith(prefix) ? String(value).slice(prefix.length).toLowerCase() : String(value);
}

function formatDuration(d) {
  if (!d) return undefined;
  const seconds = Number(d.seconds);
  const nanos = Number(d.nanos);
  if (nanos === 0) return `${seconds}s`;
  const ms = seconds * 1000 + nanos / 1e6;
  return Number.isInteger(ms) ? `${ms}ms` : `${seconds + nanos / 1e9}s`;
}

function formatTime(t) {
  if (!t) return undefined;
  return new Date(Number(t.seconds) * 1000 + Math.floor(Number(t.nanos) / 1e6)).toISOString();
}

function printCheck(check) {
  line('check', [
    ['name', check.name],
    ['id', check.id],
    ['version', check.version],
    ['source', enumName(check.source, 'CHECK_SOURCE_')],
    ['url', check.url],
    ['interval', formatDuration(check.interval)],
    ['regions', check.regions.length ? check.regions.join(',') : undefined],
  ]);
}

function printEvent({ event, incident }) {
  incident = incident || {};
  line('event', [
    ['id', event.event_id],
    ['type', enumName(event.type, 'INCIDENT_EVENT_TYPE_')],
    ['incident', event.incident_id],
    ['check', incident.check],
    ['kind', incident.kind && enumName(incident.kind, 'INCIDENT_KIND_')],
    ['state', incident.state && enumName(incident.state, 'INCIDENT_STATE_')],
    ['scope', enumName(event.scope, 'SCOPE_')],
    ['time', formatTime(event.time)],
    ['cause', event.diagnosis && event.diagnosis.cause ? event.diagnosis.cause : undefined],
    ['message', event.message || undefined],
  ]);
}

// ---------------------------------------------------------------------------
// Input
// ---------------------------------------------------------------------------

// "30s", "500ms", "2m", "1h" -> google.protobuf.Duration. The coordinator
// checks the bounds; this only reads the number.
function parseDuration(text, flag) {
  const match = /^(\d+)(ms|s|m|h)$/.exec(text);
  if (!match) {
    throw new UsageError(`${flag} ${JSON.stringify(text)}: expected a whole number with ms, s, m or h (e.g. 30s)`);
  }
  const ms = Number(match[1]) * { ms: 1, s: 1000, m: 60000, h: 3600000 }[match[2]];
  return { seconds: String(Math.floor(ms / 1000)), nanos: (ms % 1000) * 1e6 };
}

function parseTime(text, flag) {
  const ms = Date.parse(text);
  if (!/^\d{4}-\d\d-\d\dT/.test(text) || Number.isNaN(ms)) {
    throw new UsageError(`${flag} ${JSON.stringify(text)}: expected an RFC 3339 time (e.g. 2026-11-30T13:00:00Z)`);
  }
  return { seconds: String(Math.floor(ms / 1000)), nanos: (((ms % 1000) + 1000) % 1000) * 1e6 };
}

function parseLabels(list) {
  const labels = {};
  for (const item of list || []) {
    const at = item.indexOf('=');
    if (at <= 0) throw new UsageError(`--label ${JSON.stringify(item)}: expected KEY=VALUE`);
    labels[item.slice(0, at)] = item.slice(at + 1);
  }
  return labels;
}

function parseCount(text, flag) {
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag} ${JSON.stringify(text)}: expected a whole number`);
  return text;
}

function required(options, name) {
  if (!options[name]) throw new UsageError(`--${name} is required`);
  return options[name];
}

// ---------------------------------------------------------------------------
// Commands
// ---------------------------------------------------------------------------

function unary(client, method, request, metadata) {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 30000;
    client[method](request, metadata, { deadline }, (error, response) => {
      if (error) reject(Object.assign(error, { method }));
      else resolve(response);
    });
  });
}

async function createCheck(options) {
  const api = loadApi();
  const check = {
    name: required(options, 'name'),
    url: required(options, 'url'),
    interval: parseDuration(options.interval || '30s', '--interval'),
    regions: options.region || [],
    labels: parseLabels(options.label),
  };
  if (options.timeout) check.timeout = parseDuration(options.timeout, '--timeout');
  const metadata = authMetadata(options);
  const response = await unary(connect(api.CheckService, options), 'CreateCheck', { check }, metadata);
  printCheck(response.check);
}

async function listChecks(options) {
  const api = loadApi();
  const label_selector = parseLabels(options.label);
  const metadata = authMetadata(options);
  const client = connect(api.CheckService, options);
  let page_token = '';
  do {
    const response = await unary(client, 'ListChecks', { page_size: 100, page_token, label_selector }, metadata);
    response.checks.forEach(printCheck);
    // A server that hands back the token it was given would never end the loop.
    if (response.next_page_token && response.next_page_token === page_token) {
      throw new Error(`ListChecks returned the page token it was given (${JSON.stringify(page_token)}): stopping`);
    }
    page_token = response.next_page_token;
  } while (page_token);
}

// Streams events until interrupted (or --count). A stream the coordinator
// ends because this client fell behind (RESOURCE_EXHAUSTED), or that breaks
// (UNAVAILABLE), is resumed after the last event printed, as the contract
// says: no event is missed or printed twice.
async function watchIncidents(options) {
  if (options.since !== undefined && options['after-event-id'] !== undefined) {
    throw new UsageError('give --since or --after-event-id, not both');
  }
  const api = loadApi();
  const metadata = authMetadata(options);
  const client = connect(api.IncidentService, options);
  const limit = options.count === undefined ? Infinity : Number(parseCount(options.count, '--count'));
  let afterEventId = '0';  // 0: no resume point
  if (options['after-event-id'] !== undefined) afterEventId = parseCount(options['after-event-id'], '--after-event-id');
  // Used until the first event arrives; after that, resuming goes by event id.
  const since = options.since === undefined ? null : parseTime(options.since, '--since');
  let printed = 0;
  let failuresInARow = 0;
  let call = null;
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      if (call) call.cancel();
      process.exit(0);
    });
  }
  while (printed < limit) {
    const outcome = await new Promise((resolve) => {
      const request = { check: options.check || '', after_event_id: afterEventId };
      if (since && afterEventId === '0') request.since = since;
      call = client.WatchIncidents(request, metadata);
      call.on('data', (response) => {
        if (printed >= limit) return;  // messages already in flight after cancel()
        if (!response.event) {
          call.cancel();
          resolve({ error: { code: grpc.status.INTERNAL, details: 'the coordinator sent a response without an event' } });
          return;
        }
        failuresInARow = 0;
        printEvent(response);
        afterEventId = response.event.event_id;
        if (++printed >= limit) {
          call.cancel();
          resolve({ done: true });
        }
      });
      call.on('error', (error) => resolve({ error }));
      call.on('end', () => resolve({ ended: true }));
    });
    if (outcome.done) return;
    // A stream that ends with OK (a coordinator shutting down) is resumed too.
    const error = outcome.error || { code: grpc.status.UNAVAILABLE, details: 'the coordinator ended the stream' };
    const resumable = error.code === grpc.status.RESOURCE_EXHAUSTED || error.code === grpc.status.UNAVAILABLE;
    if (!resumable || ++failuresInARow > 5) throw Object.assign(error, { method: 'WatchIncidents' });
    const delayMs = Math.min(10000, 250 * 2 ** failuresInARow);
    process.stderr.write(`resume: ${statusName(error.code)}: ${error.details || 'stream ended'}; ` +
                         `again in ${delayMs} ms after_event_id=${afterEventId}\n`);
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }
}

const COMMANDS = { 'create-check': createCheck, 'list-checks': listChecks, 'watch-incidents': watchIncidents };

function statusName(code) {
  return Object.keys(grpc.status).find((name) => grpc.status[name] === code) || `code ${code}`;
}

async function main(argv) {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (e) {
    throw new UsageError(e.message);
  }
  const { values: options, positionals } = parsed;
  if (options.help) {
    process.stdout.write(USAGE + '\n');
    return;
  }
  const [command, ...extra] = positionals;
  if (!command) throw new UsageError('no command given');
  if (!COMMANDS[command]) throw new UsageError(`unknown command ${JSON.stringify(command)}`);
  if (extra.length) throw new UsageError(`unexpected argument ${JSON.stringify(extra[0])}`);
  for (const name of Object.keys(options)) {
    if (!GLOBAL_OPTIONS.includes(name) && !COMMAND_OPTIONS[command].includes(name)) {
      throw new UsageError(`--${name} does not apply to ${command}`);
    }
  }
  await COMMANDS[command](options);
}

main(process.argv.slice(2)).then(
  () => process.exit(0),
  (error) => {
    if (error instanceof UsageError) {
      process.stderr.write(`error: ${error.message}\n(node client.js --help: usage)\n`);
      process.exit(2);
    }
    if (error.code !== undefined && error.method) {
      const message = error.details ? `: ${error.details}` : '';
      process.stderr.write(`error: ${error.method}: ${statusName(error.code)}${message}\n`);
    } else {
      process.stderr.write(`error: ${error.stack || error}\n`);
    }
    process.exit(1);
  });
