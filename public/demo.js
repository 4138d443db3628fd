// The reference SPA for billfold, built on its typed client (/client/billfold-client.js): every
// call is same-origin, sends X-CSRF: 1, and lets the browser attach the httpOnly session cookie.
// The page never sees a token.
import { createBillfoldClient, isBillfoldError } from '/client/billfold-client.js';

const PROVIDERS = {
  billingplatform: {
    title: 'BillingPlatform',
    fields: { username: 'demo', password: 'demo-password' },
    call: { method: 'GET', path: '/api/billingplatform/ACCOUNT/1001' },
  },
  bill: {
    title: 'BILL',
    fields: { userName: 'demo@example.com', password: 'demo-password', orgId: '00801DEMOORG' },
    call: {
      method: 'POST',
      path: '/api/bill/List/Vendor.json',
      form: { data: JSON.stringify({ start: 0, max: 10 }) },
    },
    // BILL also takes a sync token; on API v3 (the view says which) calls are JSON, and payments need
    // an MFA-trusted session.
    syncToken: { tokenName: 'demo-sync-token', tokenValue: 'demo-sync-token-value', orgId: '00801DEMOORG' },
    v3: {
      call: { method: 'GET', path: '/api/bill/vendors?max=10' },
      payment: {
        method: 'POST',
        path: '/api/bill/payments',
        json: { vendorId: '00901DEMOVEND01', amount: 42 },
      },
    },
  },
  billogram: {
    title: 'Billogram',
    fields: { apiUserId: 'demo-api-user', apiPassword: 'demo-api-password' },
    call: { method: 'GET', path: '/api/billogram/customer?page=1&page_size=10' },
  },
  billbora: {
    title: 'Billbora',
    fields: { email: 'demo@example.com', password: 'demo-password' },
    call: { method: 'GET', path: '/api/billbora/invoices/' },
    // Billbora lists the signed-in user's organizations; billfold relays the call like any other.
    organizations: '/api/billbora/users/me/organizations/',
  },
};

/** What to tell the user for each error code billfold documents. */
const ERROR_ADVICE = {
  invalid_request: 'The request was not valid (a client bug, or a missing field).',
  invalid_path: 'That relay path is not allowed.',
  secret_in_query: 'Credentials never go in a URL (a client bug).',
  unauthenticated: 'Your session has ended. Sign in again.',
  invalid_credentials: 'The provider rejected those credentials.',
  provider_not_connected: 'Sign in to this provider first.',
  upstream_session_expired: 'The provider ended its session. Sign in to it again.',
  mfa_required:
    'BILL needs an MFA-verified session for this. Send a code, enter it, and the call is repeated.',
  csrf_header_missing: 'The X-CSRF header is missing (a client bug).',
  origin_not_allowed: 'This page’s origin may not call billfold.',
  https_required: 'billfold must be reached over HTTPS.',
  forbidden_upstream_path: 'That provider endpoint cannot be called through billfold.',
  organization_access_denied: 'You are not a member of that organization.',
  provider_not_configured: 'billfold is not configured for this provider.',
  not_found: 'Not found.',
  method_not_allowed: 'That method cannot be relayed.',
  payload_too_large: 'The request body is too large.',
  unsupported_media_type: 'billfold expects a JSON body here (a client bug).',
  rate_limited: 'Too many attempts. Wait and try again.',
  upstream_unavailable: 'The provider could not be reached.',
  session_store_unavailable:
    'billfold cannot reach its session store right now; you are still signed in. Try again shortly.',
  upstream_timeout: 'The provider did not answer in time.',
  network: 'billfold could not be reached.',
};

const $ = (selector, root = document) => root.querySelector(selector);
const output = $('#output');
const answerLine = $('#answer');
const errorBox = $('#error');
/** Providers whose session the upstream ended, so their card can ask the user to sign in again. */
const expired = new Set();
let authenticated = false;
let expiryTimer;

const client = createBillfoldClient({ baseUrl: location.origin });
// billfold has already forgotten the credential: the card asks for the sign-in again.
client.on('upstream-expired', ({ provider }) => expired.add(provider));

/** What the page shows of a failure: billfold's error by its code, or that billfold was unreachable. */
function describeFailure(error) {
  if (isBillfoldError(error)) {
    const { code, message, provider, requestId } = error;
    return {
      code,
      provider,
      status: error.status,
      retryAfter: error.retryAfter,
      body: { error: { code, message, provider, requestId } },
    };
  }
  return { code: 'network', message: error.message, body: { message: error.message } };
}

/**
 * Relays a demo call through the client. Resolves with every answer a provider gave (a relayed 404
 * is the provider's); billfold's own errors (marked X-Billfold-Error, which billfold never passes on
 * from a provider) are thrown typed by code, so a provider's error body of the same shape is still
 * the provider's.
 */
async function relay(provider, { method, path, json, form }) {
  const url = new URL(path, location.origin);
  const below = url.pathname.slice(`/api/${provider}/`.length);
  const query = Object.fromEntries(url.searchParams);
  const answer = await client.relay(provider, below, {
    method,
    ...(json !== undefined && { json }),
    ...(form !== undefined && { form }),
    ...(url.search && { query }),
  });
  return { status: answer.status, data: answer.data, method, path };
}

function show({ status, data, method, path }) {
  errorBox.hidden = true;
  answerLine.textContent = `${method} ${path}: HTTP ${status}`;
  output.textContent =
    data === null ? '(no body)' : typeof data === 'string' ? data : JSON.stringify(data, null, 2);
}

function showError(thrown) {
  const error = describeFailure(thrown);
  let advice = ERROR_ADVICE[error.code] ?? error.message;
  if (error.retryAfter) advice += ` (retry in ${error.retryAfter} s)`;
  errorBox.textContent = `${error.code ?? 'error'}${error.provider ? ` (${error.provider})` : ''}: ${advice}`;
  errorBox.hidden = false;
  answerLine.textContent = error.status ? `HTTP ${error.status}` : '';
  output.textContent = JSON.stringify(error.body ?? { message: error.message }, null, 2);
  if (error.code === 'upstream_session_expired' || error.code === 'unauthenticated') {
    // billfold has already forgotten the credential: show the sign-in form again and put the cursor in it.
    void refreshSession().then(() => {
      const card = error.provider ? document.querySelector(`[data-provider="${error.provider}"]`) : null;
      card?.querySelector('.login input')?.focus();
    });
  }
}

async function run(action) {
  try {
    const result = await action();
    if (result) show(result);
  } catch (error) {
    showError(error);
  }
}

function renderSession(view) {
  const summary = $('#session-summary');
  if (!view.authenticated) {
    summary.textContent = authenticated ? 'Your session has ended. Sign in again.' : 'Not signed in.';
  } else {
    summary.textContent = `Signed in. Idle timeout at ${new Date(view.idleExpiresAt).toLocaleTimeString()}, session ends ${new Date(view.expiresAt).toLocaleString()}.`;
  }
  authenticated = view.authenticated;
  scheduleExpiryCheck(view);
  for (const [id, spec] of Object.entries(PROVIDERS)) {
    const card = document.querySelector(`[data-provider="${id}"]`);
    const state = view.providers?.[id];
    if (!card) continue;
    // Signed in or not, the view lists the providers billfold is configured for.
    card.hidden = state === undefined;
    const connected = state?.connected === true;
    if (connected) expired.delete(id);
    const status = $('.status', card);
    status.classList.toggle('connected', connected);
    status.classList.toggle('expired', expired.has(id));
    status.textContent = connected
      ? `Connected${state.user ? ` as ${state.user}` : ''}${state.organization ? ` · ${state.organization.name}` : ''}`
      : expired.has(id)
        ? `${spec.title} ended the session. Sign in again.`
        : 'Not connected';
    $('.login', card).hidden = connected;
    $('.actions', card).hidden = !connected;
    if (spec.organizations) renderOrganizations(card, spec, connected && state.mode === 'jwt' ? state : null);
    if (spec.v3) renderBill(card, spec, connected ? state : null);
  }
}

/** BILL's extras: sync-token sign-in, and on v3 the JSON call, a payment and the MFA step-up. */
function renderBill(card, spec, state) {
  spec.v2Call ??= spec.call;
  const v3 = state?.apiVersion === 'v3';
  spec.call = v3 ? spec.v3.call : spec.v2Call;
  $('.login-sync', card).hidden = state !== null;
  $('.pay', card).hidden = !v3 || state.mode !== 'password';
  if (!v3 || state.mode !== 'password' || state.trusted) $('.mfa', card).hidden = true;
  if (v3) {
    const trust = state.trusted
      ? `MFA-trusted until ${new Date(state.trustedUntil).toLocaleString()}`
      : state.mode === 'sync-token'
        ? 'sync token'
        : 'not MFA-trusted';
    $('.status', card).textContent += ` · v3 · ${trust}`;
  }
}

/** The call BILL refused with mfa_required, repeated once the step-up succeeds. */
let pendingBillCall;

function buildBill(card, spec) {
  const sync = document.createElement('form');
  sync.className = 'login-sync';
  for (const [name, value] of Object.entries(spec.syncToken)) sync.append(loginField(name, value));
  const useToken = document.createElement('button');
  useToken.type = 'submit';
  useToken.textContent = 'Use the sync token';
  sync.append(useToken);
  sync.addEventListener('submit', (event) => {
    event.preventDefault();
    void runAuth('POST', '/auth/bill/login', () =>
      client.signIn('bill', Object.fromEntries(new FormData(sync))),
    );
  });

  const pay = document.createElement('button');
  pay.type = 'button';
  pay.className = 'pay';
  pay.textContent = 'Pay a bill';
  pay.hidden = true;
  const payment = spec.v3.payment;
  const callPayment = () => relay('bill', payment);
  pay.addEventListener('click', () => {
    void run(async () => {
      try {
        return await callPayment();
      } catch (error) {
        if (error.code === 'mfa_required') {
          pendingBillCall = callPayment;
          $('.mfa', card).hidden = false;
          $('.mfa input[name="token"]', card).focus();
        }
        throw error;
      }
    });
  });

  const mfa = document.createElement('form');
  mfa.className = 'mfa';
  mfa.hidden = true;
  mfa.innerHTML =
    '<p>BILL needs a verified code. The sandbox’s code is printed when billfold starts.</p>' +
    '<button type="button" class="mfa-send">Send code</button>' +
    '<label>Code<input name="token" autocomplete="one-time-code" inputmode="numeric"></label>' +
    '<label class="check"><input type="checkbox" name="rememberMe" checked> Remember this device</label>' +
    '<button type="submit">Verify</button>';
  let challengeId;
  $('.mfa-send', mfa).addEventListener('click', () => {
    void run(async () => {
      const data = await client.requestBillMfaCode();
      challengeId = data.challengeId;
      return { status: 200, data, method: 'POST', path: '/auth/bill/mfa/challenge' };
    });
  });
  mfa.addEventListener('submit', (event) => {
    event.preventDefault();
    void run(async () => {
      const token = $('input[name="token"]', mfa).value;
      const rememberMe = $('input[name="rememberMe"]', mfa).checked;
      const view = await client.verifyBillMfaCode({ challengeId, token, rememberMe });
      const result = { status: 200, data: view, method: 'POST', path: '/auth/bill/mfa/validate' };
      renderSession(view);
      $('input[name="token"]', mfa).value = '';
      const retry = pendingBillCall;
      pendingBillCall = undefined;
      return retry ? retry() : result;
    });
  });

  $('.login', card).after(sync);
  $('.actions', card).append(pay);
  card.append(mfa);
}

/** Only a Billbora user signed in with email or a Supabase token can switch; an API key is bound to one. */
function renderOrganizations(card, spec, state) {
  const form = $('.organization', card);
  const select = $('select', form);
  form.hidden = state === null;
  if (state === null) {
    select.replaceChildren();
    return;
  }
  if (select.options.length === 0) {
    select.append(new Option(state.organization.name, state.organization.id));
    void relay('billbora', { method: 'GET', path: spec.organizations })
      .then(({ status, data }) => {
        if (status !== 200 || !Array.isArray(data?.results)) return;
        // Keep what is selected now: a switch may have landed while the list loaded.
        const selected = select.value;
        select.replaceChildren(...data.results.map((org) => new Option(org.name, org.id)));
        select.value = selected;
      })
      .catch(showError);
  }
  select.value = state.organization.id;
}

/** Asks billfold again when the session should have ended, so the page never shows a dead session as live. */
function scheduleExpiryCheck(view) {
  clearTimeout(expiryTimer);
  if (!view.authenticated) return;
  const ends = Math.min(Date.parse(view.idleExpiresAt), Date.parse(view.expiresAt));
  // A relayed call may have slid the idle timer meanwhile: the check then just reschedules.
  expiryTimer = setTimeout(
    () => void refreshSession(),
    Math.min(Math.max(ends - Date.now() + 1000, 1000), 2 ** 31 - 1),
  );
}

async function refreshSession() {
  try {
    const data = await client.session();
    renderSession(data);
    return data;
  } catch (error) {
    // Never "signed out" on an outage: the session is still there when the store comes back.
    showError(error);
    return undefined;
  }
}

/** Runs a client call that answers the session view, and shows both the view and the answer. */
function runAuth(method, path, call) {
  return run(async () => {
    const view = await call();
    renderSession(view);
    return { status: 200, data: view, method, path };
  });
}

/** A labelled login input, prefilled with the sandbox's demo value; secrets are masked. */
function loginField(name, value) {
  const label = document.createElement('label');
  label.textContent = name;
  const input = document.createElement('input');
  input.name = name;
  input.value = value;
  input.type = /password|tokenValue/i.test(name) ? 'password' : 'text';
  input.autocomplete = 'off';
  label.append(input);
  return label;
}

function buildCards() {
  const template = $('#provider-card');
  for (const [id, spec] of Object.entries(PROVIDERS)) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.provider = id;
    $('.name', card).textContent = spec.title;
    const fields = $('.fields', card);
    for (const [name, value] of Object.entries(spec.fields)) fields.append(loginField(name, value));
    $('.login', card).addEventListener('submit', (event) => {
      event.preventDefault();
      const body = Object.fromEntries(new FormData(event.target));
      void runAuth('POST', `/auth/${id}/login`, () => client.signIn(id, body));
    });
    $('.call', card).addEventListener('click', () => void run(() => relay(id, spec.call)));
    $('.logout', card).addEventListener('click', () => {
      // Signing out of the last provider ends the session: the user did that, it did not lapse.
      authenticated = false;
      void runAuth('POST', `/auth/${id}/logout`, () => client.signOut(id));
    });
    if (spec.organizations) {
      $('.organization', card).addEventListener('submit', (event) => {
        event.preventDefault();
        const organizationId = $('select', card).value;
        void runAuth('POST', '/auth/billbora/organization', () =>
          client.switchBillboraOrganization(organizationId),
        );
      });
    }
    if (spec.v3) buildBill(card, spec);
    $('#providers').append(card);
  }
}

buildCards();
$('#refresh-session').addEventListener(
  'click',
  () => void runAuth('GET', '/auth/session', () => client.session()),
);
$('#logout-all').addEventListener(
  'click',
  () =>
    void run(async () => {
      await client.signOut();
      expired.clear();
      authenticated = false;
      await refreshSession();
      return { status: 204, data: null, method: 'POST', path: '/auth/logout' };
    }),
);
void refreshSession();
