/** /healthz (the process answers), /readyz (it can do its job), /metrics (Prometheus text). */
import { sendJson, sendText } from '../http.js';
import type { Route } from '../context.js';

export const healthzRoute: Route = {
  method: 'GET',
  path: /^\/healthz$/,
  handler: async ({ res }) => sendText(res, 200, 'ok'),
};

export const readyzRoute: Route = {
  method: 'GET',
  path: /^\/readyz$/,
  handler: async ({ res, deps }) => {
    const r = await deps.readiness();
    sendJson(res, r.ok ? 200 : 503, r);
  },
};

export const metricsRoute: Route = {
  method: 'GET',
  path: /^\/metrics$/,
  handler: async ({ res, deps }) => {
    res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' });
    res.end(await deps.metrics());
  },
};
