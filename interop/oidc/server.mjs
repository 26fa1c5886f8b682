// server.mjs runs panva's oidc-provider for the authkit interop tests.
//
//   ISSUER=http://127.0.0.1:PORT PORT=PORT [JWKS_FILE=keys.json] node server.mjs
//
// JWKS_FILE, if set, names a JWK Set of private keys to sign with (the
// first key of an algorithm signs, the others only verify), so that a test
// can restart the provider with a rotated key set; without it, one fresh
// RS256 key is made per start.
//
// It serves the provider itself plus the smallest login UI the provider needs
// when devInteractions is off: GET /interaction/:uid shows a login form (or
// grants consent at once, as a first-party provider would), and
// POST /interaction/:uid/login checks the static user below. Everything is in
// memory: a restart forgets every token. POST /interaction/:uid/abort is the
// person refusing (access_denied).
import { createHash, createPublicKey, generateKeyPairSync, randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = process.env.ISSUER;
if (!port || !issuer) {
  console.error('server.mjs: set PORT and ISSUER');
  process.exit(2);
}

// The one user, the same as in Dex's config.
const USER = {
  login: 'alice',
  password: 'password',
  claims: {
    sub: 'alice',
    email: 'alice@example.com',
    email_verified: true,
    preferred_username: 'alice',
    name: 'Alice',
  },
};

// A fresh RS256 signing key per start (no development-key warning, nothing on
// disk), unless JWKS_FILE names the keys.
function freshKey() {
  const jwk = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
  jwk.kid = randomBytes(8).toString('hex');
  jwk.alg = 'RS256';
  jwk.use = 'sig';
  return jwk;
}
const signingKeys = process.env.JWKS_FILE
  ? JSON.parse(readFileSync(process.env.JWKS_FILE, 'utf8')).keys
  : [freshKey()];

const DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code';

// CLIENT_KEY_FILE, if set, is the PEM private key of the private_key_jwt
// client below (interop/run.sh makes one per run); only its public half is
// registered here.
const clientKeyJWKs = [];
if (process.env.CLIENT_KEY_FILE) {
  const jwk = createPublicKey(readFileSync(process.env.CLIENT_KEY_FILE, 'utf8')).export({ format: 'jwk' });
  // kid: the key's RFC 7638 thumbprint, computed here independently of
  // authkit, which puts the same in its assertions' header by default.
  const kid = createHash('sha256')
    .update(JSON.stringify({ crv: jwk.crv, kty: jwk.kty, x: jwk.x, y: jwk.y }))
    .digest('base64url');
  clientKeyJWKs.push({ ...jwk, kid, alg: 'ES256', use: 'sig' });
}

const configuration = {
  clients: [
    {
      // Machine to machine.
      client_id: 'authkit-cc',
      client_secret: 'authkit-cc-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope: 'api:read api:write',
    },
    {
      // The same, authenticating with the secret in the body.
      client_id: 'authkit-cc-post',
      client_secret: 'authkit-cc-post-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_post',
      scope: 'api:read api:write',
    },
    ...(clientKeyJWKs.length === 0 ? [] : [{
      // Machine to machine, authenticating with private_key_jwt (RFC 7523
      // 2.2): no secret, an ES256 assertion per token request.
      client_id: 'authkit-pkjwt',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256',
      jwks: { keys: clientKeyJWKs },
      scope: 'api:read api:write',
    }]),
    {
      // Command line, confidential: device flow + refresh.
      client_id: 'authkit-device',
      client_secret: 'authkit-device-secret',
      grant_types: [DEVICE_GRANT, 'refresh_token'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
    },
    {
      // Command line, public: device flow + refresh, no secret.
      client_id: 'authkit-device-public',
      grant_types: [DEVICE_GRANT, 'refresh_token'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'none',
    },
    {
      // Browser login: authorization code + PKCE on a loopback redirect. A
      // native client: the loopback redirect matches any port (RFC 8252 7.3).
      client_id: 'authkit-web',
      application_type: 'native',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
      token_endpoint_auth_method: 'none',
    },
  ],
  scopes: ['openid', 'offline_access', 'api:read', 'api:write'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name', 'preferred_username'],
  },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  jwks: { keys: signingKeys },
  features: {
    devInteractions: { enabled: false },
    deviceFlow: { enabled: true },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    // DPoP (RFC 9449): a token request with a proof gets DPoP-bound tokens
    // (a public client's refresh token is bound too), and every proof, at
    // the token endpoint and at userinfo, must carry the server's nonce:
    // the first one is answered use_dpop_nonce.
    dPoP: { enabled: true, nonceSecret: randomBytes(32), requireNonce: () => true },
  },
  interactions: {
    url: (ctx, interaction) => `/interaction/${interaction.uid}`,
  },
  async findAccount(ctx, sub) {
    if (sub !== USER.claims.sub) return undefined;
    return { accountId: sub, claims: async () => ({ ...USER.claims }) };
  },
  // Every client allowed the refresh_token grant gets one, without needing
  // offline_access + prompt=consent (the device flow has no prompt).
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
  // Strict rotation for every client: each refresh spends the refresh token;
  // presenting a spent one revokes the whole grant.
  rotateRefreshToken: () => true,
  ttl: {
    AccessToken: 3600,
    ClientCredentials: 3600,
    DeviceCode: 600,
    IdToken: 3600,
    Interaction: 600,
    Session: 3600,
    Grant: 86400,
    RefreshToken: 86400,
    AuthorizationCode: 60,
  },
};

const provider = new Provider(issuer, configuration);
// Why a client was refused: the answer says only "invalid_client".
provider.on('grant.error', (ctx, err) => {
  if (err.error === 'invalid_client') console.error(`grant.error: ${err.error}: ${err.error_detail || err.message}`);
});
const providerCallback = provider.callback();

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 64 * 1024) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function html(res, status, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.setHeader('Cache-Control', 'no-store');
  res.end(`<!DOCTYPE html><html><head><meta charset="utf-8"><title>authkit interop login</title></head><body>${body}</body></html>`);
}

function loginPage(res, uid, message) {
  html(res, 200, `<h1>Sign in</h1>${message ? `<p class="error">${message}</p>` : ''}
<form id="login" method="post" action="/interaction/${uid}/login">
<input type="text" name="login" autocomplete="username">
<input type="password" name="password" autocomplete="current-password">
<button type="submit">Sign in</button>
</form>
<form id="abort" method="post" action="/interaction/${uid}/abort">
<button type="submit">Cancel</button>
</form>`);
}

// grantConsent gives a first-party client everything it asked for.
async function grantConsent(req, res, details) {
  const { prompt: { details: missing }, params, session, grantId } = details;
  const grant = grantId
    ? await provider.Grant.find(grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  if (missing.missingResourceScopes) {
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes)) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
  }
  const id = await grant.save();
  const consent = grantId ? {} : { grantId: id };
  await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
}

async function interaction(req, res, url) {
  const m = url.pathname.match(/^\/interaction\/([^/]+)(\/login|\/abort)?$/);
  if (!m) return html(res, 404, 'not found');
  const [, uid, action] = m;
  const login = action === '/login';
  if (action === '/abort' && req.method === 'POST') {
    // The person refuses: the client gets access_denied.
    return provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'End-User aborted interaction',
    }, { mergeWithLastSubmission: false });
  }
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) return html(res, 400, 'interaction mismatch');

  if (!login && req.method === 'GET') {
    if (details.prompt.name === 'login') return loginPage(res, uid);
    if (details.prompt.name === 'consent') return grantConsent(req, res, details);
    return html(res, 400, `unsupported prompt ${details.prompt.name}`);
  }
  if (login && req.method === 'POST') {
    const form = await readForm(req);
    if (form.get('login') !== USER.login || form.get('password') !== USER.password) {
      return loginPage(res, uid, 'Invalid login or password.');
    }
    return provider.interactionFinished(
      req,
      res,
      { login: { accountId: USER.claims.sub } },
      { mergeWithLastSubmission: false },
    );
  }
  res.setHeader('Allow', login ? 'POST' : 'GET');
  return html(res, 405, 'method not allowed');
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url, issuer);
  if (url.pathname.startsWith('/interaction/')) {
    interaction(req, res, url).catch((err) => {
      console.error('interaction error:', err);
      if (!res.headersSent) html(res, 500, 'interaction failed');
      else res.end();
    });
    return;
  }
  providerCallback(req, res);
});

server.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider ${issuer} listening on 127.0.0.1:${port}`);
});

for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
