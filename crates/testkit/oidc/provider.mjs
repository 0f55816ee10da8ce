// A real OpenID provider for the OIDC login tests: the certified `oidc-provider` package,
// configured from the JSON in the environment variable OIDC_TEST_CONFIG and listening on
// 127.0.0.1 on a port the kernel picks. Started (and killed) by
// crates/testkit/src/oidc_provider.rs; prints `listening <port>` on stdout once it accepts.
//
// OIDC_TEST_CONFIG = {
//   "clients":  [{ "client_id", "client_secret", "redirect_uris": [..] }],
//   "accounts": [{ "sub", "email", "email_verified", "name" }]
// }
//
// Logging in is the only part oidc-provider leaves to the deployment (its interaction
// pages); here it is a minimal form a test drives with plain HTTP:
//   GET  /interaction/:uid          an HTML form listing the accounts
//   POST /interaction/:uid          `account=<sub>` logs that account in and consents to
//                                   the requested scopes; `deny=1` refuses (access_denied)
// Consent is implicit: the grant is created with the requested scopes at login, as a
// first-party provider does, so the flow has a single interaction.

import { createServer } from 'node:http';
import { generateKeyPairSync } from 'node:crypto';
import Provider from 'oidc-provider';

const config = JSON.parse(process.env.OIDC_TEST_CONFIG ?? '{}');
const accounts = new Map((config.accounts ?? []).map((account) => [account.sub, account]));

const server = createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const { port } = server.address();
const issuer = `http://127.0.0.1:${port}`;

// A fresh signing key per process: nothing a test could depend on across runs.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: `test-${port}`, use: 'sig', alg: 'RS256' };

const provider = new Provider(issuer, {
  clients: (config.clients ?? []).map((client) => ({
    client_id: client.client_id,
    client_secret: client.client_secret,
    redirect_uris: client.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  })),
  jwks: { keys: [signingKey] },
  cookies: { keys: [`cookie-key-${port}-${Math.random()}`] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  // The tests prove the client sends a PKCE challenge: without one the provider refuses.
  pkce: { required: () => true },
  features: { devInteractions: { enabled: false } },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(_ctx, sub) {
    const account = accounts.get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          email: account.email,
          email_verified: account.email_verified,
          name: account.name,
        };
      },
    };
  },
  // Implicit consent: a grant with what was asked for (see the header comment).
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope(ctx.oidc.params.scope ?? 'openid');
    await grant.save();
    return grant;
  },
});
provider.proxy = false;

const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

provider.use(async (ctx, next) => {
  const match = ctx.path.match(/^\/interaction\/([\w-]+)$/);
  if (!match) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (ctx.method === 'GET') {
    const options = [...accounts.values()]
      .map((a) => `<option value="${escapeHtml(a.sub)}">${escapeHtml(a.email)}</option>`)
      .join('');
    ctx.type = 'html';
    ctx.body = `<!doctype html><title>Test sign-in</title>
<form method="post" action="/interaction/${escapeHtml(details.uid)}">
<select name="account">${options}</select><button>Sign in</button>
<button name="deny" value="1">Deny</button></form>`;
    return undefined;
  }
  if (ctx.method !== 'POST') return next();
  const form = await readForm(ctx.req);
  let result;
  if (form.get('deny')) {
    result = { error: 'access_denied', error_description: 'the user refused' };
  } else if (accounts.has(form.get('account'))) {
    result = { login: { accountId: form.get('account') } };
  } else {
    ctx.status = 400;
    ctx.body = 'unknown account';
    return undefined;
  }
  // The response is written by oidc-provider; Koa must not touch it afterwards.
  ctx.respond = false;
  await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  return undefined;
});

server.on('request', provider.callback());
// A request Node cannot even parse is answered by a reset; say why, for the test's failure.
server.on('clientError', (error, socket) => {
  console.error(`oidc test provider: unparsable request: ${error.code ?? ''} ${error.message}`);
  socket.destroy();
});
process.stdout.write(`listening ${port}\n`);

// Ends with the test process: the kit kills it, and a closed stdin (the parent died) ends it.
process.stdin.on('end', () => process.exit(0));
process.stdin.resume();
