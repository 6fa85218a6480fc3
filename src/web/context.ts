/** What every route handler receives. */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Config } from '../config.js';
import type { FeedmailError } from '../errors.js';
import type { Logger } from '../log.js';
import type { HttpCounters } from '../ops/metrics.js';
import type { SpaceGuard } from '../ops/storage-guard.js';
import type { Stores } from '../store/index.js';
import type { ImageSigner } from './image-proxy.js';
import type { LiveHub } from './live.js';
import type { Urls } from './urls.js';

export interface WebDeps {
  config: Config;
  stores: Stores;
  log: Logger;
  urls: Urls;
  /** What the web server counts, for /metrics. */
  counters: HttpCounters;
  /** Extra lines for /metrics and checks for /readyz, supplied by the app. */
  metrics: () => Promise<string>;
  readiness: () => Promise<{ ok: boolean; checks: Record<string, string> }>;
  /** The data directory's free space (see ops/storage-guard.ts). */
  space: SpaceGuard;
  /** Called after a message is journaled, to wake the local job runner. */
  onAccepted: () => void;
  /** Live updates of feed pages (issue 11); without it, /events answers 404. */
  live?: LiveHub;
  /** Signs image proxy URLs (web/image-proxy.ts); undefined when FEEDMAIL_IMAGE_PROXY is off. */
  images?: ImageSigner;
}

export interface RequestContext {
  req: IncomingMessage;
  res: ServerResponse;
  url: URL;
  params: string[];
  client: string;
  deps: WebDeps;
}

export interface Route {
  /** HEAD requests are routed as GET; Node leaves out the body. */
  method: 'GET' | 'POST';
  path: RegExp;
  /**
   * How the route's errors are answered to a client that does not ask for JSON: HTML by
   * default; JSON for machine endpoints, or decided from the path's parameters.
   */
  errors?: 'json' | ((params: string[]) => 'json' | 'html');
  /**
   * The status of an error where the client reads statuses in its own dialect (a
   * webhook provider's sender); undefined keeps the status its class in errors.ts carries.
   */
  statusFor?: (error: FeedmailError, params: string[]) => number | undefined;
  /**
   * Every POST is refused when a browser sends it from another site (see crossSiteRefusal):
   * a form on any page could otherwise act with a secret link its visitor holds. Only
   * machine endpoints that authenticate their callers themselves (webhooks) set this.
   */
  crossSite?: 'allowed';
  handler: (ctx: RequestContext) => Promise<void>;
}
