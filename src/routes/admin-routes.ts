import { AppError } from '../errors.js';
import { audit } from '../logger.js';
import { findSessions, summarizeSession } from '../session/session-inventory.js';
import { billIndexKey, identityIndexKey } from '../session/session-index.js';
import { isProviderId } from '../upstream/provider-id.js';
import { revokeSessions, type RevocationDeps } from '../upstream/session-revocation.js';
import { sendJson, type OperatorRoute } from './operator-listener.js';

/** What the operator API is built from. */
export interface AdminRouteDeps extends RevocationDeps {
  handleOf: (sessionId: string) => string;
}

const MAX_USER_LENGTH = 320;

/** The index key of `?provider=P&user=U` (and `&orgId=O` for BILL, whose users live in an organization). */
function identityOfQuery(query: URLSearchParams): string {
  const provider = query.get('provider') ?? '';
  const user = query.get('user') ?? '';
  const orgId = query.get('orgId') ?? '';
  const invalid = [
    isProviderId(provider) ? '' : 'provider',
    user === '' || user.length > MAX_USER_LENGTH ? 'user' : '',
    provider === 'bill' && orgId === '' ? 'orgId' : '',
  ].filter(Boolean);
  if (invalid.length === 0 && isProviderId(provider)) {
    return provider === 'bill' ? billIndexKey(user, orgId) : identityIndexKey(provider, user);
  }
  throw new AppError('invalid_request', { message: `Invalid or missing fields: ${invalid.join(', ')}.` });
}

/**
 * The operator API, on ADMIN_PORT behind ADMIN_TOKEN: `GET /admin/sessions?provider=P&user=U` lists
 * that provider user's live sessions, `DELETE` with the same query revokes them all (with upstream
 * logout). The user is named as the session view shows it; API-key Billbora sessions have no user.
 */
export function createAdminRoute(deps: AdminRouteDeps): OperatorRoute {
  return async (req, res, context, url) => {
    if (url.pathname !== '/admin/sessions') throw new AppError('not_found');
    if (req.method !== 'GET' && req.method !== 'DELETE') throw new AppError('method_not_allowed');
    const provider = url.searchParams.get('provider');
    if (provider && isProviderId(provider)) context.provider = provider;
    const sessions = await findSessions(deps.repository, [identityOfQuery(url.searchParams)]);
    if (req.method === 'GET') {
      audit(deps.logger, {
        event: 'admin_sessions_listed',
        outcome: 'success',
        provider: context.provider,
        requestId: context.id,
        clientAddress: context.clientAddress,
      });
      sendJson(res, 200, {
        sessions: sessions
          .sort((a, b) => b.record.lastSeenAt - a.record.lastSeenAt)
          .map((session) => summarizeSession(session, deps.handleOf)),
      });
      return;
    }
    sendJson(res, 200, {
      revoked: await revokeSessions(deps, sessions, 'operator', context.id, context.clientAddress),
    });
  };
}
