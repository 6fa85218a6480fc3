/** The HTTP server: routing, security headers on every answer, errors mapped to status codes. */
import http from 'node:http';
import net, { type AddressInfo, type Socket } from 'node:net';
import { clientNetwork } from '../client-network.js';
import { SECRET_IN_PATH, shortenTokens } from '../secrets.js';
import { SENDER_KEY_IN_PATH } from '../feeds/senders.js';
import { CrossSiteRequestError, FeedmailError, InternalError, isBusy, isDiskFull, isUnreachable, NotFoundError, StorageFullError, TemporaryFailureError } from '../errors.js';
import { OutageLog } from '../ops/outage-log.js';
import type { Route, WebDeps } from './context.js';
import { clientAddress, crossSiteRefusal, normalizeIp, sendHtml, sendJson, sendText, setSecurityHeaders, wantsJson } from './http.js';
import { entryBodyRoute, entryPageRoute, entryPartRoute } from './routes/entry.js';
import { feedCreateRoute } from './routes/feed-create.js';
import { feedDocumentRoute } from './routes/feed-document.js';
import { feedEventsRoute } from './routes/feed-events.js';
import { feedPageRoute } from './routes/feed-page.js';
import { feedSearchRoute } from './routes/feed-search.js';
import { healthzRoute, metricsRoute, opsPolicy, readyzRoute } from './routes/health.js';
import { homeRoute } from './routes/home.js';
import { imageProxyRoute } from './routes/image.js';
import { domainIconRoute, feedIconRoute } from './routes/icons.js';
import { inboundRoute, webhookBodyGraceMs } from './routes/inbound.js';
import { manageDeleteRoute, managePageRoute, manageRenameRoute } from './routes/manage.js';
import { manageEntryDeleteConfirmRoute, manageEntryDeleteRoute } from './routes/manage-entries.js';
import { manageRotateAddressRoute, manageRotateFeedUrlRoute } from './routes/manage-secrets.js';
import { manageIconDeleteRoute, manageIconRoute, manageSettingsRoute } from './routes/manage-settings.js';
import { senderFeedRoute } from './routes/sender-feed.js';
import { manageAddSenderRuleRoute, manageRemoveSenderRuleRoute } from './routes/manage-intake.js';
import { staticRoute } from './routes/static.js';
import { Urls } from './urls.js';
import { websubRoute } from './routes/websub.js';
import { html } from './views/html.js';
import { layout } from './views/layout.js';

const ROUTES: Route[] = [
  homeRoute, feedCreateRoute, feedDocumentRoute, feedPageRoute, feedSearchRoute,
  entryPageRoute, entryBodyRoute, entryPartRoute,
  managePageRoute, manageRenameRoute, manageDeleteRoute,
  manageAddSenderRuleRoute, manageRemoveSenderRuleRoute,
  inboundRoute, healthzRoute, readyzRoute, metricsRoute, staticRoute,
  // Issue 10: manage actions, per-sender feeds and icons.
  manageEntryDeleteConfirmRoute, manageEntryDeleteRoute, manageRotateAddressRoute, manageRotateFeedUrlRoute,
  manageSettingsRoute, manageIconRoute, manageIconDeleteRoute,
  senderFeedRoute, feedIconRoute, domainIconRoute,
  // Issue 11: the WebSub hub.
  websubRoute,
  // Issue 11: live updates.
  feedEventsRoute,
  // Issue 11: the image proxy.
  imageProxyRoute,
];

/**
 * How long a new connection may take to send its first complete request
 * headers. Node's headersTimeout only covers connections that started a
 * request, so idle sockets would otherwise hold a slot indefinitely.
 */
export const FIRST_REQUEST_TIMEOUT_MS = 10_000;

/**
 * Once more than half of httpMaxConnections are open, a new connection gets
 * this share of the first-request timeout: a real client sends its request as
 * soon as it connects, and idle sockets from many networks then turn over
 * five times faster.
 */
const BUSY_FIRST_REQUEST_SHARE = 1 / 5;

/**
 * Connections one client network (IPv4 /24, IPv6 /64) may hold at once: a
 * tenth of httpMaxConnections, at most 64 (a browser opens 6 per host, so 64
 * is a busy office behind one NAT), at least 8. One network alone can then
 * never fill the server.
 */
export function connectionsPerNetwork(httpMaxConnections: number): number {
  return Math.max(8, Math.min(64, Math.floor(httpMaxConnections / 10)));
}

export interface WebServerOptions {
  /** Overrides FIRST_REQUEST_TIMEOUT_MS (tests use a short one). */
  firstRequestTimeoutMs?: number;
  /** For tests only: replaces WEBHOOK_BODY_GRACE_MS of the webhook's minimum body rate. */
  webhookBodyGraceMs?: number;
}

export class WebServer {
  readonly server: http.Server;
  /** Connections that have not sent a complete request yet, with the timer that closes them. */
  private readonly awaitingFirstRequest = new Map<Socket, NodeJS.Timeout>();
  /** Open connections per client network; trusted proxies are not counted. */
  private readonly perNetwork = new Map<string, number>();
  private openConnections = 0;
  /** Set by a graceful close: answers say Connection: close, so busy keep-alive clients leave cleanly. */
  #draining = false;
  /** What the routes receive: deps and the public links, set by listen() before any request arrives. */
  #routeDeps!: WebDeps;
  /** The database unreachable (PostgreSQL): one log line per outage, not one per request. */
  readonly #outage: OutageLog;

  constructor(private readonly deps: Omit<WebDeps, 'urls'>, private readonly options: WebServerOptions = {}) {
    this.#outage = new OutageLog(deps.log, 'web');
    // Node checks requestTimeout and headersTimeout on this tick (30 s by default), so
    // a trickling request would hold its connection (and a webhook slot) up to twice as long.
    this.server = http.createServer({ connectionsCheckingInterval: 2_000 }, (req, res) => void this.handle(req, res));
    this.server.keepAliveTimeout = 5_000;
    this.server.headersTimeout = 15_000;
    this.server.requestTimeout = 30_000;
    // A bad FEEDMAIL_OPS_ALLOW entry stops the start instead of failing each /metrics request.
    opsPolicy(deps.config.opsAllow);
    // Past this many open connections, new ones are closed as soon as they are accepted.
    this.server.maxConnections = deps.config.httpMaxConnections;
    const firstRequestMs = options.firstRequestTimeoutMs ?? FIRST_REQUEST_TIMEOUT_MS;
    const perNetworkCap = connectionsPerNetwork(deps.config.httpMaxConnections);
    // Behind a proxy every connection comes from it; its clients are told apart per request.
    const proxies = new Set(deps.config.trustedProxies.map(normalizeIp));
    this.server.on('connection', (socket: Socket) => {
      const peer = normalizeIp(socket.remoteAddress ?? '');
      const network = proxies.has(peer) ? undefined : clientNetwork(peer);
      if (network !== undefined) {
        const held = this.perNetwork.get(network) ?? 0;
        if (held >= perNetworkCap) {
          this.deps.counters.networkConnectionsRefused++;
          socket.destroy();
          return;
        }
        this.perNetwork.set(network, held + 1);
      }
      this.openConnections++;
      const busy = this.openConnections * 2 > deps.config.httpMaxConnections;
      const timer = setTimeout(() => socket.destroy(), busy ? firstRequestMs * BUSY_FIRST_REQUEST_SHARE : firstRequestMs);
      this.awaitingFirstRequest.set(socket, timer);
      socket.once('close', () => {
        clearTimeout(timer);
        this.awaitingFirstRequest.delete(socket);
        this.openConnections--;
        if (network === undefined) return;
        const left = (this.perNetwork.get(network) ?? 1) - 1;
        if (left <= 0) this.perNetwork.delete(network);
        else this.perNetwork.set(network, left);
      });
    });
    // "Expect: 100-continue" is answered by the route: the webhook decides on its
    // headers first, so a refused sender never uploads its body.
    this.server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (!inboundRoute.path.test(new URL(req.url ?? '/', 'http://localhost').pathname)) res.writeContinue();
      void this.handle(req, res);
    });
  }

  /**
   * Binds the port, then makes the links from the public URL that `publicUrl` gives for the
   * bound address (with port 0, the port is known only now). 'listening' is emitted before
   * any connection is accepted, so every request sees the final links.
   */
  listen(port: number, host: string, publicUrl: (bound: AddressInfo) => string): Promise<AddressInfo> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(port, host, () => {
        this.server.off('error', reject);
        const bound = this.server.address() as AddressInfo;
        this.#routeDeps = { ...this.deps, urls: new Urls(publicUrl(bound), this.deps.images) };
        if (this.options.webhookBodyGraceMs !== undefined) webhookBodyGraceMs.set(this.#routeDeps, this.options.webhookBodyGraceMs);
        resolve(bound);
      });
    });
  }

  /**
   * Stops accepting connections and lets in-flight requests finish. With `graceMs` (a worker
   * leaving a rolling restart, ops/cluster.ts), open keep-alive connections are not cut at
   * once: for up to graceMs every answer says `Connection: close`, so a client that keeps its
   * connection busy closes it after its current request instead of having its next request
   * cut off on the way; connections still open after that are closed as without a grace.
   */
  async close(graceMs = 0): Promise<void> {
    // Live-update streams never finish on their own: they end now, so they do not hold the close.
    this.deps.live?.close();
    if (graceMs > 0) {
      this.#draining = true;
      // net's close stops accepting without http's closing of idle connections; it calls back once all are gone.
      const drained = new Promise<void>((resolve) => net.Server.prototype.close.call(this.server, () => resolve()));
      let timer: NodeJS.Timeout | undefined;
      const finished = await Promise.race([drained.then(() => true), new Promise<false>((resolve) => { timer = setTimeout(() => resolve(false), graceMs); })]);
      clearTimeout(timer);
      if (finished) return;
      this.server.closeIdleConnections();
      for (const socket of this.awaitingFirstRequest.keys()) socket.destroy();
      return drained;
    }
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeIdleConnections();
      // Connections that never sent a request are not "idle" to Node, but have nothing to finish.
      for (const socket of this.awaitingFirstRequest.keys()) socket.destroy();
    });
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    this.deps.counters.requests++;
    // Timed by the route's pattern, never its path: paths carry the secrets.
    const timer = this.deps.counters.requestDuration.startTimer();
    let timedRoute = 'unmatched';
    res.once('close', () => timer({ route: timedRoute, status: String(res.statusCode) }));
    const firstRequest = this.awaitingFirstRequest.get(req.socket);
    if (firstRequest) {
      clearTimeout(firstRequest);
      this.awaitingFirstRequest.delete(req.socket);
    }
    setSecurityHeaders(res);
    if (this.#draining) res.setHeader('Connection', 'close');
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return sendText(res, 400, 'Bad request');
    }
    const method = req.method === 'HEAD' ? 'GET' : req.method;
    let allowed: string[] = [];
    let answersJson = wantsJson(req);
    let statusFor: ((error: FeedmailError) => number | undefined) | undefined;
    try {
      for (const route of ROUTES) {
        const m = route.path.exec(url.pathname);
        if (!m) continue;
        if (route.method !== method) {
          allowed.push(route.method);
          continue;
        }
        allowed = [];
        timedRoute = routeLabel(route);
        const params = m.slice(1);
        const errors = typeof route.errors === 'function' ? route.errors(params) : route.errors;
        answersJson ||= errors === 'json';
        if (route.statusFor) statusFor = (error) => route.statusFor?.(error, params);
        if (route.method === 'POST' && route.crossSite !== 'allowed') {
          const refusal = crossSiteRefusal(req, new URL(this.#routeDeps.urls.base).origin);
          if (refusal) throw new CrossSiteRequestError(refusal);
        }
        await route.handler({ req, res, url, params, client: clientAddress(req, this.deps.config.trustedProxies), deps: this.#routeDeps });
        // A route that read the database answered: an outage logged by fail() is over.
        if (route !== staticRoute && route !== healthzRoute && res.statusCode < 500) this.#outage.recovered();
        return;
      }
      if (allowed.length) return sendText(res, 405, 'Method not allowed', { Allow: allowed.join(', ') });
      throw new NotFoundError();
    } catch (err) {
      this.fail(req, res, err, answersJson, statusFor);
    }
  }

  private fail(req: http.IncomingMessage, res: http.ServerResponse, err: unknown, answersJson: boolean, statusFor?: (error: FeedmailError) => number | undefined): void {
    let error: FeedmailError;
    if (err instanceof FeedmailError) error = err;
    else if (isDiskFull(err)) error = new StorageFullError({ cause: err });
    else if (isBusy(err)) {
      // Another process held a database lock past the busy timeout: worth a retry, not a 500.
      this.deps.log.warn({ err, path: loggedPath(req) }, 'web: database busy');
      error = new TemporaryFailureError('Busy, try again shortly', { cause: err });
    } else if (isUnreachable(err)) {
      // PostgreSQL down or restarting: temporary (503 + Retry-After), logged once per outage.
      this.#outage.failed(err);
      error = new TemporaryFailureError('The database is unreachable, try again shortly', { cause: err });
    } else {
      this.deps.counters.errors++;
      this.deps.log.error({ err, path: loggedPath(req) }, 'web: request failed');
      error = new InternalError({ cause: err });
    }
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const headers: Record<string, string> = {};
    if (error.retryAfterSeconds !== undefined) headers['Retry-After'] = String(error.retryAfterSeconds);
    // Refused before its body was read (e.g. an unauthenticated webhook): close the
    // connection after the answer rather than read and discard the body.
    if (bodyUnread(req)) headers.Connection = 'close';
    const status = statusFor?.(error) ?? error.httpStatus;
    if (answersJson) {
      return sendJson(res, status, { error: { code: error.code, message: error.message } }, headers);
    }
    const title = error.httpStatus === 404 ? 'Not found' : error.message;
    sendHtml(res, status, layout(title, html`<h1>${title}</h1>
${error.httpStatus === 404 ? html`<p>There is nothing at this address. Check that the link was copied completely.</p>` : html`<p>${error.message}</p>`}
<p><a href="/">Go to the start page</a></p>`), headers);
  }
}

const routeLabels = new WeakMap<Route, string>();

/** The route's method and pattern for /metrics, e.g. `GET /feeds/:secret.(atom|rss|json)`: its secrets are placeholders. */
export function routeLabel(route: Route): string {
  let label = routeLabels.get(route);
  if (label === undefined) {
    const pattern = route.path.source
      .replaceAll(SECRET_IN_PATH, ':secret').replaceAll(SENDER_KEY_IN_PATH, ':sender')
      .replace(/^\^/, '').replace(/\$$/, '').replace(/\\([/.])/g, '$1');
    label = `${route.method} ${pattern}`;
    routeLabels.set(route, label);
  }
  return label;
}

/** A request's path for a log line: secrets shortened, and no query (a search's words stay out of logs). */
function loggedPath(req: http.IncomingMessage): string {
  return shortenTokens((req.url ?? '').replace(/[?#][\s\S]*$/, ''));
}

function bodyUnread(req: http.IncomingMessage): boolean {
  const declared = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  return declared && !req.complete;
}
