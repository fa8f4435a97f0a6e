// Shared helpers for the interop suite: the environment the Go test passes, plain-HTTP calls to
// the signer, payload builders for the consensus encodings (docs/protocol.md) and signature checks
// done with Taquito's own code.
import assert from 'node:assert/strict';
import {
  verifySignature,
  b58DecodeAndCheckPrefix,
  b58DecodePublicKeyHash,
  buf2hex,
  hex2buf,
  PrefixV2,
} from '@taquito/utils';

function env(name) {
  const v = process.env[name];
  if (!v) {
    throw new Error(`${name} is not set: run this suite through "go test ./test/interop/" (interop_test.go)`);
  }
  return v;
}

/** Root URL of the signer without authentication, e.g. http://127.0.0.1:41234 */
export const URL_MAIN = env('SIGNATORY_URL');
/** Root URL of the second signer, whose config has server.authorized_keys. */
export const URL_AUTH = env('SIGNATORY_AUTH_URL');
/** Keys of both daemons: see interop_test.go for the roles. */
export const KEYS = JSON.parse(env('SIGNATORY_INTEROP_KEYS'));

/** Per-request timeout, so that a hung daemon fails the test instead of stalling it. */
const TIMEOUT_MS = 15_000;

/**
 * Plain-HTTP call. Returns {status, body (parsed JSON or text), text, contentType}.
 */
export async function http(method, url, body) {
  const res = await fetch(url, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body,
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const text = await res.text();
  let parsed = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // not JSON: keep the text
  }
  return { status: res.status, body: parsed, text, contentType: res.headers.get('content-type') };
}

/** POST /keys/{pkh} with the hex as a JSON string; query is appended as is (e.g. "authentication=…"). */
export function signRaw(root, pkh, hex, query = '') {
  return http('POST', `${root}/keys/${pkh}${query ? `?${query}` : ''}`, JSON.stringify(hex));
}

/** Asserts the Octez error shape and returns the message. */
export function errorMsg(res, status) {
  assert.equal(res.status, status, `want HTTP ${status}, got ${res.status}: ${res.text}`);
  assert.ok(Array.isArray(res.body) && res.body.length === 1, `error body is not a one-element array: ${res.text}`);
  const [e] = res.body;
  assert.equal(e.id, 'failure', res.text);
  assert.equal(e.kind, 'temporary', res.text);
  assert.equal(typeof e.msg, 'string', res.text);
  return e.msg;
}

/** Signs and asserts 200; returns the base58 signature. */
export async function signOK(root, pkh, hex, query = '') {
  const res = await signRaw(root, pkh, hex, query);
  assert.equal(res.status, 200, `sign ${hex.slice(0, 12)}… for ${pkh}: HTTP ${res.status}: ${res.text}`);
  assert.match(res.contentType ?? '', /^application\/json/);
  assert.deepEqual(Object.keys(res.body), ['signature'], res.text);
  return res.body.signature;
}

/** GET /keys/{pkh} and return the public key. */
export async function publicKeyOf(root, pkh) {
  const res = await http('GET', `${root}/keys/${pkh}`);
  assert.equal(res.status, 200, res.text);
  return res.body.public_key;
}

// ---------------------------------------------------------------------------------------------
// Signature checks

const SIG_PREFIX = { tz1: 'edsig', tz2: 'spsig1', tz3: 'p2sig', tz4: 'BLsig' };

/** Curve orders, for the low-S check (Taquito's p256 verifier accepts high-S, so check it here). */
const ORDER = {
  tz2: 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n,
  tz3: 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n,
};

/** Raw signature bytes of a base58 signature (any of edsig/spsig1/p2sig/sig/BLsig). */
export function sigBytes(sig) {
  const [bytes] = b58DecodeAndCheckPrefix(sig, [
    PrefixV2.Ed25519Signature,
    PrefixV2.Secp256k1Signature,
    PrefixV2.P256Signature,
    PrefixV2.GenericSignature,
    PrefixV2.BLS12_381Signature,
  ]);
  return bytes;
}

export function isLowS(kind, sig) {
  const b = sigBytes(sig);
  assert.equal(b.length, 64);
  const s = BigInt('0x' + buf2hex(b.slice(32)));
  return s <= ORDER[kind] / 2n;
}

/**
 * Asserts that sig is a signature by the key `pk` of type `kind` (tz1…tz4) over the hex bytes
 * (watermark/magic byte included), with Taquito's verifySignature; for tz2 and tz3 it also asserts
 * low-S.
 */
export function assertValid(kind, pk, hex, sig) {
  assert.ok(sig.startsWith(SIG_PREFIX[kind]), `${kind} signature ${sig} lacks prefix ${SIG_PREFIX[kind]}`);
  assert.equal(verifySignature(hex, pk, sig), true, `Taquito does not verify ${sig} by ${pk} over ${hex}`);
  if (kind === 'tz2' || kind === 'tz3') {
    assert.ok(isLowS(kind, sig), `${kind} signature ${sig} is high-S`);
  }
  // And the same signature over other bytes must not verify (guards against a verifier that says yes).
  const other = hex.slice(0, -2) + (hex.slice(-2) === 'ff' ? '00' : 'ff');
  assert.equal(verifySignature(other, pk, sig), false, 'signature verifies over altered bytes');
}

// ---------------------------------------------------------------------------------------------
// Consensus payloads (docs/protocol.md, "Payloads"). All integers big-endian.

export const CHAIN_MAIN = '7a06a770'; // NetXdQprcVkpaWU (mainnet)
export const CHAIN_TEST = 'b3d79f99'; // NetXo5iVw1vBoxM

const u8 = (v) => [v & 0xff];
const u16 = (v) => [(v >>> 8) & 0xff, v & 0xff];
const i32 = (v) => [(v >>> 24) & 0xff, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff];
const i64 = (v) => [...i32(Math.floor(v / 2 ** 32)), ...i32(v >>> 0)];
const bytes32 = (fill) => new Array(32).fill(fill & 0xff);
const withLen = (arr) => [...i32(arr.length), ...arr];

/** Zarith natural (also a valid Z for values < 64). */
function zarith(v) {
  const out = [];
  let n = BigInt(v);
  if (n < 64n) return [Number(n)];
  // Z encoding: first byte carries 6 bits and the sign bit.
  out.push(Number(n & 0x3fn) | 0x80);
  n >>= 6n;
  while (n > 0n) {
    const b = Number(n & 0x7fn);
    n >>= 7n;
    out.push(n > 0n ? b | 0x80 : b);
  }
  return out;
}

const toHex = (arr) => buf2hex(new Uint8Array(arr));

/**
 * Tenderbake block header, magic 0x11. variant changes the payload hash and timestamp so that
 * two variants at one level and round are different payloads.
 */
export function block({ chain = CHAIN_MAIN, level, round, variant = 0 }) {
  const fitness = [
    ...withLen([0x02]), // version
    ...withLen(i32(level)),
    ...withLen([]), // locked round: none
    ...withLen(i32(-1)), // predecessor round 0, stored as -r-1
    ...withLen(i32(round)),
  ];
  return toHex([
    0x11,
    ...hex2buf(chain),
    ...i32(level),
    ...u8(1), // proto
    ...bytes32(0xaa), // predecessor
    ...i64(1_760_000_000 + level * 8 + round + variant), // timestamp
    ...u8(4), // validation passes
    ...bytes32(0xbb), // operations hash
    ...withLen(fitness),
    ...bytes32(0xcc), // context
    ...bytes32(variant), // payload hash
    ...i32(0), // payload round
    ...new Array(8).fill(0x11), // proof of work nonce
    0x00, // seed_nonce_hash: none
    0x02, // per_block_votes: pass
  ]);
}

/**
 * A consensus operation. magic 0x12 (preattestation) or 0x13 (attestation); tag 20/21/23 (with
 * slot), 40/41 (BLS, no slot). dal is the DAL bitset for tag 23.
 */
export function consensus({ tag, chain = CHAIN_MAIN, level, round, variant = 0, slot = 7, dal = 5 }) {
  const magic = tag === 20 || tag === 40 ? 0x12 : 0x13;
  const body = [];
  if (tag === 20 || tag === 21 || tag === 23) body.push(...u16(slot));
  body.push(...i32(level), ...i32(round), ...bytes32(0x40 + variant)); // block payload hash
  if (tag === 23) body.push(...zarith(dal));
  return toHex([magic, ...hex2buf(chain), ...bytes32(0x0b), tag, ...body]);
}

/** 21-byte binary public key hash: tag (0 tz1, 1 tz2, 2 tz3, 3 tz4) ‖ 20-byte hash. */
export function pkhBytes(pkh) {
  return hex2buf(b58DecodePublicKeyHash(pkh));
}

/** The bytes an Octez client signs to authenticate a sign request: 0x04 0x01 ‖ pkh ‖ message. */
export function authBytes(pkh, messageHex) {
  return '0401' + buf2hex(pkhBytes(pkh)) + messageHex;
}
