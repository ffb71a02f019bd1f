// A real OpenID provider on loopback, standing in for Microsoft Entra ID in the tests.
//
//   node server.mjs --port 5123 --config /tmp/op.json
//
// It is `oidc-provider` (a certified OpenID Connect implementation) with discovery, JWKS, the
// authorization, token, userinfo and end-session endpoints, the authorization code flow with PKCE
// (S256, required for every client), and its own small login and consent pages: plain HTML forms
// with no script and nothing loaded from elsewhere, easy for headless Chromium and for a plain HTTP
// client alike. The issuer is http://127.0.0.1:<port>; it listens on 127.0.0.1 only.
//
// The configuration file (JSON) gives the clients and the users:
//
//   {
//     "clients": [
//       {"client_id": "console", "client_secret": "s3cret",            // no secret: a public client
//        "redirect_uris": ["http://127.0.0.1:8090/auth/callback"],
//        "post_logout_redirect_uris": ["http://127.0.0.1:8090/"],    // optional
//        "skip_consent": true}                                         // optional: admin consent given
//     ],
//     "users": [
//       {"username": "j.devries@school.example", "password": "...", "groups": ["g-ict", "g-docenten"],
//        "name": "Jan de Vries", "email": "j.devries@school.example",   // optional
//        "sub": "...",                                                 // optional, default: username
//        "claims": {"oid": "...", "tid": "..."}}                       // optional, released with `profile`
//     ]
//   }
//
// Scopes: openid, profile (name, given_name, family_name, preferred_username, groups and every key
// of the users' "claims"), email (email, email_verified), groups (groups alone) and offline_access.
// The `groups` claim thus comes with the standard `profile` scope, as Entra ID puts `groups` in the
// ID token without an extra scope, and also with the scope `groups` on its own. Granted claims are
// in the ID token as well as at userinfo (conformIdTokenClaims: false), as Entra ID does.
//
// Any other client metadata of oidc-provider (token_endpoint_auth_method, grant_types, ...) may be
// given in a client and is passed on. On start it prints `listening <issuer>` on stdout; it stops
// on SIGTERM or SIGINT.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

import Provider, { errors } from 'oidc-provider';

const { values: args } = parseArgs({
  options: {
    port: { type: 'string' },
    config: { type: 'string' },
  },
});
if (!args.port || !args.config || !/^\d+$/.test(args.port)) {
  process.stderr.write('usage: node server.mjs --port PORT --config CONFIG.json\n');
  process.exit(2);
}
const port = Number(args.port);
const issuer = `http://127.0.0.1:${port}`;
const config = JSON.parse(readFileSync(args.config, 'utf8'));

// --- users ----------------------------------------------------------------------------------

const users = (config.users ?? []).map((u) => {
  if (typeof u.username !== 'string' || typeof u.password !== 'string') {
    throw new Error('every user needs a username and a password (strings)');
  }
  return { ...u, sub: u.sub ?? u.username, groups: u.groups ?? [], claims: u.claims ?? {} };
});
const bySub = new Map(users.map((u) => [u.sub, u]));
const extraClaims = [...new Set(users.flatMap((u) => Object.keys(u.claims)))];

function findUser(login) {
  const wanted = String(login ?? '').trim().toLowerCase();
  return users.find((u) => u.username.toLowerCase() === wanted
    || (typeof u.email === 'string' && u.email.toLowerCase() === wanted));
}

function accountClaims(user) {
  const claims = {
    ...user.claims,
    sub: user.sub,
    preferred_username: user.username,
    groups: [...user.groups],
  };
  for (const key of ['name', 'given_name', 'family_name', 'email']) {
    if (user[key] !== undefined) claims[key] = user[key];
  }
  if (user.email !== undefined) claims.email_verified = user.email_verified ?? true;
  return claims;
}

// --- clients --------------------------------------------------------------------------------

const skipConsent = new Set();
const clients = (config.clients ?? []).map((c) => {
  const { skip_consent: skip, ...metadata } = c;
  if (skip) skipConsent.add(metadata.client_id);
  if (metadata.client_secret === undefined && metadata.token_endpoint_auth_method === undefined) {
    metadata.token_endpoint_auth_method = 'none'; // a public client: PKCE alone
  }
  return metadata;
});

// --- keys -----------------------------------------------------------------------------------

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), use: 'sig', alg: 'RS256' };

// --- pages ----------------------------------------------------------------------------------

const esc = (s) => String(s ?? '').replace(/[&<>"']/g, (ch) => ({
  '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;',
}[ch]));

const STYLE = 'body{font-family:sans-serif;max-width:28em;margin:2em auto;padding:0 1em}'
  + 'label,input,button{display:block;font-size:1em;margin:.4em 0}input{width:100%;box-sizing:border-box;padding:.4em}'
  + 'button{padding:.5em 1.2em}.error{color:#a00000}';

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(title)}</title><style>${STYLE}</style></head>
<body><main><h1>${esc(title)}</h1>
${body}
</main></body>
</html>
`;
}

function send(res, status, html) {
  res.writeHead(status, {
    'content-type': 'text/html; charset=utf-8',
    'cache-control': 'no-store',
    // No form-action: Chromium applies it to the redirects after a form post as well, and the
    // consent form ends at the application's redirect URI (another origin).
    'content-security-policy': "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
  });
  res.end(html);
}

function loginPage(uid, clientName, loginHint, error) {
  return page('Sign in', `<p>to continue to <span id="client">${esc(clientName)}</span></p>
${error ? `<p class="error" role="alert" id="error">${esc(error)}</p>` : ''}
<form id="login" method="post" action="/interaction/${esc(uid)}/login" autocomplete="off">
<label for="username">Username</label>
<input id="username" name="username" type="text" required value="${esc(loginHint)}" ${loginHint ? '' : 'autofocus'}>
<label for="password">Password</label>
<input id="password" name="password" type="password" required ${loginHint ? 'autofocus' : ''}>
<button id="submit" type="submit">Sign in</button>
</form>
<p><a id="abort" href="/interaction/${esc(uid)}/abort">Cancel</a></p>`);
}

function consentPage(uid, clientName, user, scopes, claims) {
  const items = [...scopes].filter((s) => s !== 'openid').map((s) => `<li>${esc(s)}</li>`).join('');
  return page('Permissions requested', `<p><span id="client">${esc(clientName)}</span> asks, for
<span id="account">${esc(user?.username ?? '')}</span>, to read:</p>
<ul id="scopes">${items || '<li>your sign-in</li>'}</ul>
${claims.length ? `<p>claims: <span id="claims">${esc(claims.join(' '))}</span></p>` : ''}
<form id="consent" method="post" action="/interaction/${esc(uid)}/confirm">
<button id="accept" type="submit" name="decision" value="accept">Accept</button>
</form>
<form method="post" action="/interaction/${esc(uid)}/abort">
<button id="deny" type="submit" name="decision" value="deny">Cancel</button>
</form>`);
}

const errorSource = (title, text) => page(title, `<p id="error" class="error">${esc(text)}</p>`);

// --- the provider ---------------------------------------------------------------------------

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  claims: {
    openid: ['sub'],
    profile: ['name', 'given_name', 'family_name', 'preferred_username', 'groups', ...extraClaims],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false,
  ttl: {
    AccessToken: 3600,
    AuthorizationCode: 60,
    IdToken: 3600,
    Interaction: 600,
    Session: 8 * 3600,
    Grant: 8 * 3600,
    RefreshToken: 24 * 3600,
  },
  pkce: { required: () => true },
  responseTypes: ['code'],
  features: {
    devInteractions: { enabled: false },
    rpInitiatedLogout: {
      enabled: true,
      logoutSource(ctx, form) {
        ctx.body = page('Sign out', `${form}<p>Sign out of ${esc(issuer)}?</p>
<button id="logout" type="submit" form="op.logoutForm" name="logout" value="yes">Yes, sign me out</button>
<button id="stay" type="submit" form="op.logoutForm">No, stay signed in</button>`);
      },
      postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out', '<p id="signed-out">You have been signed out.</p>');
      },
    },
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, sub) {
    const user = bySub.get(sub);
    if (!user) return undefined;
    return { accountId: sub, claims: async () => accountClaims(user) };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId
      || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    if (!skipConsent.has(ctx.oidc.client.clientId)) return undefined;
    // Consent given beforehand (as an Entra ID admin consents for the school): grant what is asked.
    const grant = new ctx.oidc.provider.Grant({
      clientId: ctx.oidc.client.clientId,
      accountId: ctx.oidc.session.accountId,
    });
    grant.addOIDCScope([...ctx.oidc.requestParamScopes].join(' '));
    grant.addOIDCClaims([...ctx.oidc.requestParamClaims ?? []]);
    await grant.save();
    return grant;
  },
  renderError(ctx, out) {
    ctx.type = 'html';
    ctx.body = errorSource('Sign-in error', `${out.error}: ${out.error_description ?? ''}`);
  },
});
provider.proxy = false;

const log = (line) => process.stderr.write(`${new Date().toISOString()} ${line}\n`);

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 64 * 1024) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

async function interaction(req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new errors.SessionNotFound('interaction does not match the cookie');
  const { prompt, params } = details;
  const client = await provider.Client.find(params.client_id);
  const clientName = client?.clientName ?? params.client_id;

  if (req.method === 'GET' && action === undefined) {
    if (prompt.name === 'login') {
      return send(res, 200, loginPage(uid, clientName, params.login_hint ?? '', ''));
    }
    if (prompt.name === 'consent') {
      const user = bySub.get(details.session?.accountId);
      const scopes = new Set([...(prompt.details.missingOIDCScope ?? [])]);
      return send(res, 200, consentPage(uid, clientName, user, scopes, prompt.details.missingOIDCClaims ?? []));
    }
    return send(res, 501, errorSource('Not implemented', `prompt ${prompt.name}`));
  }

  if (action === 'abort' && (req.method === 'GET' || req.method === 'POST')) {
    log(`interaction ${uid} aborted`);
    return provider.interactionFinished(req, res, {
      error: 'access_denied', error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }

  if (action === 'login' && req.method === 'POST' && prompt.name === 'login') {
    const form = await readForm(req);
    const user = findUser(form.get('username'));
    if (!user || user.password !== form.get('password')) {
      log(`login failed for ${JSON.stringify(form.get('username'))}`);
      return send(res, 401, loginPage(uid, clientName, form.get('username') ?? '', 'Wrong username or password.'));
    }
    log(`login ok for ${user.username}`);
    return provider.interactionFinished(req, res, {
      login: { accountId: user.sub, amr: ['pwd'] },
    }, { mergeWithLastSubmission: false });
  }

  if (action === 'confirm' && req.method === 'POST' && prompt.name === 'consent') {
    await readForm(req);
    const { grantId, session } = details;
    const grant = grantId
      ? await provider.Grant.find(grantId)
      : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
    if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
    if (prompt.details.missingResourceScopes) {
      for (const [indicator, scopes] of Object.entries(prompt.details.missingResourceScopes)) {
        grant.addResourceScope(indicator, scopes.join(' '));
      }
    }
    log(`consent given by ${session.accountId} to ${params.client_id}`);
    return provider.interactionFinished(req, res, { consent: { grantId: await grant.save() } }, {
      mergeWithLastSubmission: true,
    });
  }

  return send(res, 400, errorSource('Bad request', `${req.method} ${action ?? ''} during prompt ${prompt.name}`));
}

const callback = provider.callback();
const INTERACTION = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm|abort))?$/;

const server = http.createServer((req, res) => {
  const { pathname } = new URL(req.url, issuer);
  const match = INTERACTION.exec(pathname);
  if (!match) return callback(req, res);
  return interaction(req, res, match[1], match[2]).catch((err) => {
    log(`interaction error: ${err.name}: ${err.message}`);
    if (res.headersSent) return res.end();
    const status = err instanceof errors.SessionNotFound ? 400 : 500;
    return send(res, status, errorSource('Sign-in error', `${err.name}: ${err.error_description ?? err.message}`));
  });
});

server.listen(port, '127.0.0.1', () => {
  process.stdout.write(`listening ${issuer}\n`);
});
server.on('error', (err) => {
  log(`cannot listen on 127.0.0.1:${port}: ${err.code ?? err.message}`);
  process.exit(3);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
