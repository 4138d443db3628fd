import { AppError } from '../errors.js';
import type { Metrics } from '../metrics.js';
import type { OperatorRoute } from './operator-listener.js';

/** `GET /metrics`: the Prometheus text exposition of this instance's registry. */
export function createMetricsRoute(metrics: Metrics): OperatorRoute {
  return async (req, res, _context, url) => {
    if (url.pathname !== '/metrics') throw new AppError('not_found');
    if (req.method !== 'GET' && req.method !== 'HEAD') throw new AppError('method_not_allowed');
    const body = await metrics.registry.metrics();
    res.writeHead(200, { 'content-type': metrics.registry.contentType });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
}
