#!/usr/bin/env node
// Mint a scopegate SSO token for the customer logged in to your site.
// Node 18.3+ standard library only (node:crypto, node:util); no npm packages.
//
// v2 (use this one; authenticated):
//   key32 = HMAC-SHA256(key=secure_key, msg="scopegate-sso-v2:" + company_id)
//   nonce = 12 fresh random bytes per token (never reuse one under a key)
//   token = "v2." + base64url_no_padding(nonce[12] || ciphertext || tag[16])
//           where ciphertext, tag = AES-256-GCM(key32, nonce, json, no AAD)
// Legacy (migration only; no MAC, ciphertext bits can be flipped):
//   key16 = SHA1(secure_key + company_id)[:16]
//   token = urlencode(base64(AES-128-CBC(key16, iv=16 zero bytes, PKCS#7(json))))
// json = {first_name, last_name, email, expires, [mobile], [reference]}
//
//   SSO_SECURE_KEY=... node sso_token.js COMPANY_ID [--legacy] \
//       --email E --first-name F --last-name L [--mobile M] [--reference R] [--ttl S]
'use strict';
const crypto = require('node:crypto');
const { parseArgs } = require('node:util');

// The customer's fields plus expires = now + ttl, UTC, e.g. 2027-01-15T09:00:00Z.
function payload(customerHash, ttlSeconds, now) {
  const expires = Math.floor(now ?? Date.now() / 1000) + Number(ttlSeconds);
  const iso = new Date(expires * 1000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  return Buffer.from(JSON.stringify({ ...customerHash, expires: iso }), 'utf8');
}

function mint_v2(companyId, secureKey, customerHash, ttlSeconds = 3600, now = undefined) {
  const key32 = crypto.createHmac('sha256', Buffer.from(secureKey, 'utf8'))
    .update('scopegate-sso-v2:' + companyId, 'utf8').digest();
  const nonce = crypto.randomBytes(12); // CSPRNG, fresh for every token
  const gcm = crypto.createCipheriv('aes-256-gcm', key32, nonce);
  const ct = Buffer.concat([gcm.update(payload(customerHash, ttlSeconds, now)), gcm.final()]);
  return 'v2.' + Buffer.concat([nonce, ct, gcm.getAuthTag()]).toString('base64url'); // no '='
}

function mint_legacy(companyId, secureKey, customerHash, ttlSeconds = 3600, now = undefined) {
  const key16 = crypto.createHash('sha1').update(secureKey + companyId, 'utf8').digest().subarray(0, 16);
  const cbc = crypto.createCipheriv('aes-128-cbc', key16, Buffer.alloc(16)); // PKCS#7 by default
  const ct = Buffer.concat([cbc.update(payload(customerHash, ttlSeconds, now)), cbc.final()]);
  return encodeURIComponent(ct.toString('base64')); // + / = percent-encoded, once
}

function main() {
  const names = ['email', 'first-name', 'last-name', 'mobile', 'reference', 'ttl'];
  const options = { legacy: { type: 'boolean' } };
  for (const n of names) options[n] = { type: 'string' };
  const { values: v, positionals } = parseArgs({ options, allowPositionals: true });
  const opt = (n) => v[n] ?? process.env['SSO_' + n.toUpperCase().replace('-', '_')];
  const secureKey = process.env.SSO_SECURE_KEY; // never on the command line
  const fail = (m) => { console.error(m); process.exit(2); };
  if (positionals.length !== 1) fail('usage: sso_token.js COMPANY_ID [--legacy] --email E ...');
  if (!secureKey) fail('set SSO_SECURE_KEY in the environment');
  if (!opt('email') || !opt('first-name') || !opt('last-name')) fail('--email, --first-name and --last-name are required');
  const customer = { first_name: opt('first-name'), last_name: opt('last-name'), email: opt('email') };
  if (opt('mobile')) customer.mobile = opt('mobile');
  if (opt('reference')) customer.reference = opt('reference');
  const mint = v.legacy ? mint_legacy : mint_v2;
  console.log(mint(positionals[0], secureKey, customer, Number(opt('ttl') ?? 3600)));
}

module.exports = { mint_v2, mint_legacy };
if (require.main === module) main();
