// The reference SPA client for billfold: every call is same-origin, sends X-CSRF: 1, and lets the
// browser attach the httpOnly session cookie. The page never sees a token.

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
    organizations: ['org_demo', 'org_other'],
  },
};

/** What to tell the user for each error code billfold documents. */
const ERROR_ADVICE = {
  unauthenticated: 'Your session has ended. Sign in again.',
  upstream_session_expired: 'The provider ended its session. Sign in to it again.',
  provider_not_connected: 'Sign in to this provider first.',
  invalid_credentials: 'The provider rejected those credentials.',
  organization_access_denied: 'You are not a member of that organization.',
  rate_limited: 'Too many attempts. Wait and try again.',
  session_store_unavailable: 'billfold cannot reach its session store right now. Try again shortly.',
  upstream_unavailable: 'The provider could not be reached.',
  upstream_timeout: 'The provider did not answer in time.',
  csrf_header_missing: 'The X-CSRF header is missing (a client bug).',
};

const $ = (selector, root = document) => root.querySelector(selector);
const output = $('#output');
const errorBox = $('#error');

/** Calls billfold; throws the documented error body on failure. */
async function api(method, path, { json, form } = {}) {
  const headers = { 'X-CSRF': '1', Accept: 'application/json' };
  let body;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    headers['Content-Type'] = 'application/x-www-form-urlencoded';
    body = new URLSearchParams(form).toString();
  }
  const response = await fetch(path, { method, headers, body, credentials: 'same-origin' });
  const text = await response.text();
  let data = text;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    // A relayed answer need not be JSON.
  }
  if (!response.ok && data && typeof data === 'object' && data.error?.code) {
    throw Object.assign(new Error(data.error.message), {
      code: data.error.code,
      provider: data.error.provider,
      data,
    });
  }
  return { status: response.status, data };
}

function show(result) {
  errorBox.hidden = true;
  output.textContent = typeof result === 'string' ? result : JSON.stringify(result, null, 2);
}

function showError(error) {
  const advice = ERROR_ADVICE[error.code] ?? error.message;
  errorBox.textContent = `${error.code ?? 'error'}${error.provider ? ` (${error.provider})` : ''}: ${advice}`;
  errorBox.hidden = false;
  output.textContent = JSON.stringify(error.data ?? { message: error.message }, null, 2);
  if (error.code === 'upstream_session_expired' || error.code === 'unauthenticated') {
    void refreshSession().then(() => {
      const card =
        error.provider && document.querySelector(`[data-provider="${error.provider}"] .login input`);
      card?.focus();
    });
  }
}

async function run(action) {
  try {
    show(await action());
  } catch (error) {
    showError(error);
  }
}

function renderSession(view) {
  const summary = $('#session-summary');
  if (!view.authenticated) {
    summary.textContent = 'Not signed in.';
  } else {
    summary.textContent = `Signed in. Idle timeout at ${new Date(view.idleExpiresAt).toLocaleTimeString()}, session ends ${new Date(view.expiresAt).toLocaleString()}.`;
  }
  for (const [id, spec] of Object.entries(PROVIDERS)) {
    const card = document.querySelector(`[data-provider="${id}"]`);
    const state = view.providers?.[id];
    if (!card) continue;
    card.hidden = view.authenticated && state === undefined;
    const connected = state?.connected === true;
    const status = $('.status', card);
    status.classList.toggle('connected', connected);
    status.textContent = connected
      ? `Connected${state.user ? ` as ${state.user}` : ''}${state.organization ? ` · ${state.organization.name}` : ''}`
      : 'Not connected';
    $('.login', card).hidden = connected;
    $('.actions', card).hidden = !connected;
    const organization = $('.organization', card);
    organization.hidden = !(connected && spec.organizations && state.mode === 'jwt');
  }
}

async function refreshSession() {
  try {
    const { data } = await api('GET', '/auth/session');
    renderSession(data);
    return data;
  } catch (error) {
    showError(error);
    return undefined;
  }
}

function buildCards() {
  const template = $('#provider-card');
  for (const [id, spec] of Object.entries(PROVIDERS)) {
    const card = template.content.firstElementChild.cloneNode(true);
    card.dataset.provider = id;
    $('.name', card).textContent = spec.title;
    const fields = $('.fields', card);
    for (const [name, value] of Object.entries(spec.fields)) {
      const label = document.createElement('label');
      label.textContent = name;
      const input = document.createElement('input');
      input.name = name;
      input.value = value;
      input.type = /password/i.test(name) ? 'password' : 'text';
      input.autocomplete = 'off';
      label.append(input);
      fields.append(label);
    }
    $('.login', card).addEventListener('submit', (event) => {
      event.preventDefault();
      const json = Object.fromEntries(new FormData(event.target));
      void run(async () => {
        const { data } = await api('POST', `/auth/${id}/login`, { json });
        renderSession(data);
        return data;
      });
    });
    $('.call', card).addEventListener(
      'click',
      () => void run(async () => (await api(spec.call.method, spec.call.path, spec.call)).data),
    );
    $('.logout', card).addEventListener(
      'click',
      () =>
        void run(async () => {
          const { data } = await api('POST', `/auth/${id}/logout`);
          renderSession(data);
          return data;
        }),
    );
    if (spec.organizations) {
      const select = $('select', card);
      for (const organization of spec.organizations) select.append(new Option(organization, organization));
      $('.organization', card).addEventListener('submit', (event) => {
        event.preventDefault();
        void run(async () => {
          const { data } = await api('POST', '/auth/billbora/organization', {
            json: { organizationId: select.value },
          });
          renderSession(data);
          return data;
        });
      });
    }
    $('#providers').append(card);
  }
}

buildCards();
$('#refresh-session').addEventListener('click', () => void run(refreshSession));
$('#logout-all').addEventListener(
  'click',
  () =>
    void run(async () => {
      await api('POST', '/auth/logout');
      return refreshSession();
    }),
);
void refreshSession();
