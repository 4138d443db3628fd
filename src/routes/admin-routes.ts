import { AppError } from '../errors.js';
import { audit } from '../logger.js';
import { findSessions, summarizeSession } from '../session/session-inventory.js';
import { identityIndexKeys } from '../session/session-index.js';
import type { StoreKeyNames } from '../session/store-key-names.js';
import { adapterFor, isKnownProvider, type AdapterRegistry } from '../upstream/provider-adapter.js';
import { revokeSessions, type RevocationDeps } from '../upstream/session-revocation.js';
import { sendJson, type OperatorRoute } from './operator-listener.js';

/** What the operator API is built from. */
export interface AdminRouteDeps extends RevocationDeps {
  handleOf: (sessionId: string) => string;
  keyNames: StoreKeyNames;
  config: { session: { maxSessionsPerIdentity: number } };
}

const MAX_USER_LENGTH = 320;

/**
 * The index keys of `?provider=P&user=U` (and `&orgId=O` for BILL, whose users live in an
 * organization), the user canonicalised by the provider's own identity rule.
 */
function identityOfQuery(query: URLSearchParams, adapters: AdapterRegistry, names: StoreKeyNames): string[] {
  const provider = query.get('provider') ?? '';
  const user = query.get('user') ?? '';
  const orgId = query.get('orgId') ?? '';
  const known = isKnownProvider(adapters, provider);
  const adapter = known ? adapterFor(adapters, provider) : undefined;
  const invalid = [
    known ? '' : 'provider',
    user === '' || user.length > MAX_USER_LENGTH ? 'user' : '',
    adapter?.identityInOrganization === true && orgId === '' ? 'orgId' : '',
  ].filter(Boolean);
  if (invalid.length === 0 && known) {
    if (!adapter) throw new AppError('provider_not_configured', { provider });
    const identity = adapter.personalIdentity({ user, ...(orgId !== '' && { orgId }) });
    if (identity === undefined) {
      throw new AppError('invalid_request', {
        message: 'This provider signs in with shared credentials, which name no person.',
        provider,
      });
    }
    return identityIndexKeys(names, provider, identity);
  }
  throw new AppError('invalid_request', { message: `Invalid or missing fields: ${invalid.join(', ')}.` });
}

/**
 * The operator API, on ADMIN_PORT behind ADMIN_TOKEN: `GET /admin/sessions?provider=P&user=U` lists
 * that provider user's live sessions, `DELETE` with the same query revokes them all (with upstream
 * logout). The user is named as the session view shows it (spelled as the upstream compares it, so
 * any case of an email matches); Billbora users by their Supabase user id. API keys and Billogram
 * API users are shared credentials and name nobody.
 */
export function createAdminRoute(deps: AdminRouteDeps): OperatorRoute {
  return async (req, res, context, url) => {
    if (url.pathname !== '/admin/sessions') throw new AppError('not_found');
    if (req.method !== 'GET' && req.method !== 'DELETE') throw new AppError('method_not_allowed');
    const provider = url.searchParams.get('provider');
    if (provider && isKnownProvider(deps.adapters, provider)) context.provider = provider;
    const sessions = await findSessions(
      deps.repository,
      identityOfQuery(url.searchParams, deps.adapters, deps.keyNames),
      deps.config.session.maxSessionsPerIdentity,
    );
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
