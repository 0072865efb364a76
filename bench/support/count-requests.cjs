/**
 * Preload for bench/migration.ts (node --require, through NODE_OPTIONS of the worker it starts):
 * counts the HTTP(S) requests this process makes, by "host:port" and by method, and writes the counts
 * as JSON to $FERRY_BENCH_COUNT_DIR/<pid>.json every second (when they changed) and at exit.
 *
 * The Ferry worker reaches Kubernetes only through @kubernetes/client-node, whose HTTP layer
 * (node-fetch 2) and WebSocket layer (ws, for exec) call http.request / https.request of the module
 * objects at request time: wrapping those two functions sees every Kubernetes API request (a watch
 * or a WebSocket counts once). Temporal's gRPC goes through the native core (not counted) and skopeo
 * is a subprocess (not counted). Nothing of Ferry is changed: without the preload nothing is counted.
 *
 * Output: {"pid": N, "total": N, "byHost": {"127.0.0.1:16443": N}, "byHostMethod": {"127.0.0.1:16443 GET": N}}
 */
'use strict';
const { isMainThread } = require('node:worker_threads');
const dir = process.env.FERRY_BENCH_COUNT_DIR;

if (dir && isMainThread) {
  const fs = require('node:fs');
  const path = require('node:path');
  const http = require('node:http');
  const https = require('node:https');
  const counts = { pid: process.pid, total: 0, byHost: {}, byHostMethod: {} };
  let dirty = true;

  /** host:port and method of request(url?, options?, callback?) in any of its call forms. */
  const target = (defaultPort, args) => {
    let host;
    let port;
    let method = 'GET';
    for (const a of args) {
      if (typeof a === 'string' || a instanceof URL) {
        const u = typeof a === 'string' ? new URL(a) : a;
        host = u.hostname;
        port = u.port || undefined;
      } else if (a && typeof a === 'object') {
        host = a.hostname || (a.host ? String(a.host).replace(/:\d+$/, '') : host);
        port = a.port || port;
        if (a.method) method = String(a.method).toUpperCase();
      }
    }
    return { hostPort: `${host || 'localhost'}:${port || defaultPort}`, method };
  };

  const wrap = (mod, name, defaultPort) => {
    const original = mod[name];
    mod[name] = function countedRequest(...args) {
      try {
        const t = target(defaultPort, args);
        counts.total++;
        counts.byHost[t.hostPort] = (counts.byHost[t.hostPort] || 0) + 1;
        const k = `${t.hostPort} ${t.method}`;
        counts.byHostMethod[k] = (counts.byHostMethod[k] || 0) + 1;
        dirty = true;
      } catch {
        /* counting never breaks a request */
      }
      return original.apply(this, args);
    };
  };
  wrap(http, 'request', 80);
  wrap(http, 'get', 80);
  wrap(https, 'request', 443);
  wrap(https, 'get', 443);

  const file = path.join(dir, `${process.pid}.json`);
  const flush = () => {
    if (!dirty) return;
    dirty = false;
    try {
      fs.writeFileSync(`${file}.tmp`, JSON.stringify(counts));
      fs.renameSync(`${file}.tmp`, file);
    } catch {
      /* the bench reports what it finds */
    }
  };
  flush();
  setInterval(flush, 1000).unref();
  process.on('exit', flush);
}
