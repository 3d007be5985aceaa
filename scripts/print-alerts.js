#!/usr/bin/env node
// A tiny Alertmanager webhook receiver for ./scripts/run-local.sh: prints one
// line per alert of each notification it gets ("page: firing ...", "page:
// resolved ..."), so a newcomer sees the page arrive and resolve.
//   node scripts/print-alerts.js PORT
'use strict';
const http = require('http');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: print-alerts.js PORT');
  process.exit(2);
}
const MAX_BODY = 1 << 20;  // Alertmanager sends a few KB; refuse anything huge

http.createServer((req, res) => {
  let body = '';
  req.on('data', (chunk) => {
    body += chunk;
    if (body.length > MAX_BODY) { res.writeHead(413).end(); req.destroy(); }
  });
  req.on('end', () => {
    res.writeHead(200).end();
    let notification;
    try { notification = JSON.parse(body); } catch { console.log(`page: (not JSON, ${body.length} bytes)`); return; }
    const time = new Date().toISOString().slice(11, 19);
    for (const alert of notification.alerts || []) {
      const labels = { ...alert.labels };
      const name = labels.alertname; delete labels.alertname;
      const text = Object.entries(labels).map(([k, v]) => `${k}=${v}`).join(' ');
      const summary = (alert.annotations || {}).description || (alert.annotations || {}).summary || '';
      console.log(`page: ${time} ${alert.status} ${name} ${text}\n        ${summary.replace(/\s+/g, ' ').trim()}`);
    }
  });
}).listen(port, '127.0.0.1', () => console.error(`print-alerts: listening on 127.0.0.1:${port}`));
