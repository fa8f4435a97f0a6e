// octez-signer's socket protocol (`launch socket signer`, `launch local signer`), spoken by a
// client written here in JavaScript from octez's definitions, against the real binary's TCP port
// and Unix socket (server.socket_address, server.unix_socket):
//
//   frame    = uint16 big-endian length ‖ payload                 (src/lib_base/unix/socket.ml)
//   request  = uint8 tag ‖ fields                                 (src/lib_signer_services/signer_messages.ml)
//   response = 0x00 ‖ result  |  0x01 ‖ uint32 length ‖ errors    (src/lib_error_monad/monad_maker.ml)
//
// Every request kind, every curve, with and without authentication; the answers are compared
// with the HTTP port's for the same requests, and deterministic nonces with HMAC-SHA256 computed
// here by Node's crypto from octez's definition (src/lib_crypto/ed25519.ml: the HMAC key is the
// secret key's base58 payload, decoded by Taquito).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createHmac } from 'node:crypto';
import blake from 'blakejs';
import bs58check from 'bs58check';
import { InMemorySigner } from '@taquito/signer';
import { b58DecodeAndCheckPrefix, b58DecodePublicKey, buf2hex, hex2buf, PrefixV2, verifySignature, b58Encode } from '@taquito/utils';
import { URL_MAIN, URL_AUTH, KEYS, http, signOK, sigBytes, block, consensus, pkhBytes, authBytes, CHAIN_TEST } from './lib.mjs';

function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: run this suite through "go test ./test/interop/"`);
  return v;
}
const TCP_MAIN = env('SIGNATORY_SOCKET');
const UNIX_MAIN = env('SIGNATORY_UNIX_SOCKET');
const TCP_AUTH = env('SIGNATORY_AUTH_SOCKET');

const TAG = { sign: 0, publicKey: 1, authorizedKeys: 2, nonce: 3, nonceHash: 4, supportsNonces: 5, knownKeys: 6, pop: 7 };

const u32 = (n) => Buffer.from([(n >>> 24) & 0xff, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff]);

/** A connection that sends frames and reads the answers, one at a time. */
class Conn {
  static open(where) {
    return new Promise((resolve, reject) => {
      const opts = where.includes('/') ? { path: where } : { host: where.split(':')[0], port: Number(where.split(':')[1]) };
      const sock = net.connect(opts, () => resolve(new Conn(sock)));
      sock.once('error', reject);
    });
  }
  constructor(sock) {
    this.sock = sock;
    this.buf = Buffer.alloc(0);
    this.waiting = null;
    this.closed = false;
    sock.on('data', (d) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.pump();
    });
    sock.on('close', () => {
      this.closed = true;
      this.pump();
    });
    sock.on('error', () => {});
  }
  pump() {
    if (!this.waiting) return;
    if (this.buf.length >= 2) {
      const n = this.buf.readUInt16BE(0);
      if (this.buf.length >= 2 + n) {
        const payload = this.buf.subarray(2, 2 + n);
        this.buf = this.buf.subarray(2 + n);
        const w = this.waiting;
        this.waiting = null;
        w.resolve(payload);
        return;
      }
    }
    if (this.closed) {
      const w = this.waiting;
      this.waiting = null;
      w.resolve(null); // closed without an answer
    }
  }
  /** Sends one request payload; resolves to the answer's payload, or null if the server closed. */
  ask(payload) {
    return new Promise((resolve) => {
      this.waiting = { resolve };
      const len = Buffer.alloc(2);
      len.writeUInt16BE(payload.length);
      this.sock.write(Buffer.concat([len, payload]));
      this.pump();
    });
  }
  close() {
    this.sock.destroy();
  }
}

async function once(where, payload) {
  const c = await Conn.open(where);
  try {
    return await c.ask(payload);
  } finally {
    c.close();
  }
}

// Taquito has no tz5 prefixes: a tz5 hash is decoded with bs58check (a 3-byte prefix, then 20
// bytes) and tagged 0x04, as signature_v3.ml's Public_key_hash encoding does.
const pkh21 = (pkh) =>
  pkh.startsWith('tz5') ? Buffer.concat([Buffer.from([4]), Buffer.from(bs58check.decode(pkh).subarray(3))]) : Buffer.from(pkhBytes(pkh));

/** Sign request: tz1–tz3 as pkh_encoding cases 0–2; tz4 as case 3 (pkh with its tag, version). */
function signRequest(pkh, hex, { version = 3, auth } = {}) {
  const key = pkh.startsWith('tz4') ? Buffer.concat([Buffer.from([3]), pkh21(pkh), Buffer.from([version])]) : pkh21(pkh);
  const data = Buffer.from(hex2buf(hex));
  return Buffer.concat([Buffer.from([TAG.sign]), key, u32(data.length), data, auth ?? Buffer.alloc(0)]);
}

function nonceRequest(tag, pkh, data, auth) {
  return Buffer.concat([Buffer.from([tag]), pkh21(pkh), u32(data.length), data, auth ?? Buffer.alloc(0)]);
}

/** The message of an error answer: the BSON document's "msg" string. */
function errorOf(resp) {
  assert.ok(resp, 'the connection was closed without an answer');
  assert.equal(resp[0], 1, `not an error: ${resp.toString('hex')}`);
  const i = resp.indexOf(Buffer.from('msg\0'));
  assert.ok(i > 0, 'no msg field');
  const n = resp.readUInt32LE(i + 4);
  return resp.subarray(i + 8, i + 8 + n - 1).toString();
}

function ok(resp) {
  assert.ok(resp, 'the connection was closed without an answer');
  assert.equal(resp[0], 0, resp[0] === 1 ? `error: ${errorOf(resp)}` : `not ok: ${resp.toString('hex')}`);
  return resp.subarray(1);
}

const SIG_PREFIX = { tz1: PrefixV2.Ed25519Signature, tz2: PrefixV2.Secp256k1Signature, tz3: PrefixV2.P256Signature, tz4: PrefixV2.BLS12_381Signature };
const SK_PREFIXES = [PrefixV2.Ed25519Seed, PrefixV2.Secp256k1SecretKey, PrefixV2.P256SecretKey, PrefixV2.BLS12_381SecretKey];

const curves = ['tz1', 'tz2', 'tz3', 'tz4'];

for (const [transport, where] of [
  ['TCP', TCP_MAIN],
  ['Unix socket', UNIX_MAIN],
]) {
  describe(`socket protocol over ${transport}`, () => {
    it('Authorized_keys: no authentication required (0x00)', async () => {
      assert.deepEqual(ok(await once(where, Buffer.from([TAG.authorizedKeys]))), Buffer.from([0]));
    });

    it('Known_keys: the keys of GET /known_keys, as 21-byte hashes', async () => {
      const res = await http('GET', `${URL_MAIN}/known_keys`);
      assert.equal(res.status, 200, res.text);
      const list = ok(await once(where, Buffer.from([TAG.knownKeys])));
      const want = Buffer.concat(res.body.known_keys.map(pkh21));
      assert.deepEqual(list, Buffer.concat([u32(want.length), want]));
    });

    for (const c of curves) {
      it(`Public_key of ${c}: the key's tag and bytes, as Taquito encodes it`, async () => {
        const res = await http('GET', `${URL_MAIN}/keys/${KEYS[c].pkh}`);
        assert.equal(res.status, 200, res.text);
        const got = ok(await once(where, Buffer.concat([Buffer.from([TAG.publicKey]), pkh21(KEYS[c].pkh)])));
        assert.equal(got.toString('hex'), b58DecodePublicKey(res.body.public_key));
      });
    }

    it('Public_key of a key in no vault: an error answer', async () => {
      const msg = errorOf(await once(where, Buffer.concat([Buffer.from([TAG.publicKey]), pkh21(KEYS.unknown.pkh)])));
      assert.match(msg, /not found/);
    });

    const base = transport === 'TCP' ? 300 : 400;
    for (const [i, c] of curves.entries()) {
      it(`Sign, ${c}: a block signed over the socket is the HTTP port's too (same watermark)`, async () => {
        const level = base + i;
        const hex = block({ chain: CHAIN_TEST, level, round: 0 });
        const raw = ok(await once(where, signRequest(KEYS[c].pkh, hex, { version: 2 })));
        assert.equal(raw.length, c === 'tz4' ? 96 : 64);
        const sig = b58Encode(raw, SIG_PREFIX[c]);
        const pk = (await http('GET', `${URL_MAIN}/keys/${KEYS[c].pkh}`)).body.public_key;
        assert.equal(verifySignature(hex, pk, sig), true, `Taquito does not verify ${sig}`);
        // The same bytes over HTTP: the stored signature, byte for byte.
        const again = await signOK(URL_MAIN, KEYS[c].pkh, hex, c === 'tz4' ? 'version=2' : '');
        assert.deepEqual(Buffer.from(sigBytes(again)), raw);
        // Other bytes at that level and round, over HTTP then over the socket: refused.
        const other = block({ chain: CHAIN_TEST, level, round: 0, variant: 1 });
        const res = await http('POST', `${URL_MAIN}/keys/${KEYS[c].pkh}`, JSON.stringify(other));
        assert.equal(res.status, 409, res.text);
        assert.match(errorOf(await once(where, signRequest(KEYS[c].pkh, other, { version: 2 }))), /watermark/);
      });
    }

    it('Sign, tz4: version 1 (augmented) signs other bytes than version 2, as over HTTP', async () => {
      const hex = consensus({ tag: 41, chain: CHAIN_TEST, level: base + 10, round: 0 });
      const v1 = ok(await once(where, signRequest(KEYS.tz4.pkh, hex, { version: 1 })));
      const pk = (await http('GET', `${URL_MAIN}/keys/${KEYS.tz4.pkh}`)).body.public_key;
      assert.equal(v1.length, 96);
      // Version 2 of the same bytes is a second, different signature: refused by the watermark.
      assert.match(errorOf(await once(where, signRequest(KEYS.tz4.pkh, hex, { version: 2 }))), /version|watermark/);
      assert.ok(pk.startsWith('BLpk'));
    });

    it('Sign: a key the policy does not allow for this kind is refused with the policy\'s reason', async () => {
      const msg = errorOf(await once(where, signRequest(KEYS.restricted.pkh, block({ chain: CHAIN_TEST, level: base + 20, round: 0 }))));
      assert.match(msg, /block|not allowed|policy/i);
    });

    for (const c of curves) {
      it(`Deterministic_nonce and its hash, ${c}: HMAC-SHA256 keyed with the secret key's payload`, async () => {
        const data = Buffer.from([0x00, 0x01, 0xe2, 0x40]); // a level, as the baker sends it
        const [key] = b58DecodeAndCheckPrefix(KEYS[c].sk, SK_PREFIXES);
        const want = createHmac('sha256', Buffer.from(key)).update(data).digest();
        const nonce = ok(await once(where, nonceRequest(TAG.nonce, KEYS[c].pkh, data)));
        assert.deepEqual(nonce, Buffer.concat([u32(32), want]));
        const hash = ok(await once(where, nonceRequest(TAG.nonceHash, KEYS[c].pkh, data)));
        assert.deepEqual(hash, Buffer.concat([u32(32), Buffer.from(blake.blake2b(want, null, 32))]));
        const supports = ok(await once(where, Buffer.concat([Buffer.from([TAG.supportsNonces]), pkh21(KEYS[c].pkh)])));
        assert.deepEqual(supports, Buffer.from([0xff]));
      });
    }

    it('Deterministic_nonce, tz5: HMAC-SHA256 keyed with the 3,872 bytes of its mdsk payload', async () => {
      const data = Buffer.from([0x00, 0x00, 0x10, 0x00]);
      const decoded = bs58check.decode(KEYS.tz5.sk); // the prefix (09 39 74 39: "mdsk") and the payload
      assert.deepEqual(Buffer.from(decoded.subarray(0, 4)), Buffer.from([9, 57, 116, 57]));
      const key = Buffer.from(decoded.subarray(4));
      assert.equal(key.length, 3872);
      const want = createHmac('sha256', key).update(data).digest();
      assert.deepEqual(ok(await once(where, nonceRequest(TAG.nonce, KEYS.tz5.pkh, data))), Buffer.concat([u32(32), want]));
    });

    it('Deterministic_nonce for a key without allow_deterministic_nonce: refused, and not supported', async () => {
      assert.match(errorOf(await once(where, nonceRequest(TAG.nonce, KEYS.restricted.pkh, Buffer.from([1])))), /allow_deterministic_nonce/);
      const supports = ok(await once(where, Buffer.concat([Buffer.from([TAG.supportsNonces]), pkh21(KEYS.restricted.pkh)])));
      assert.deepEqual(supports, Buffer.from([0x00]));
    });

    it('Bls_prove_possession: the proof GET /bls_prove_possession gives', async () => {
      const res = await http('GET', `${URL_MAIN}/bls_prove_possession/${KEYS.tz4.pkh}`);
      assert.equal(res.status, 200, res.text);
      const proof = ok(await once(where, Buffer.concat([Buffer.from([TAG.pop]), pkh21(KEYS.tz4.pkh), Buffer.from([0])])));
      assert.deepEqual(proof, Buffer.from(sigBytes(res.body.bls_prove_possession)));
    });

    it('several requests on one connection, answered in order', async () => {
      const c = await Conn.open(where);
      try {
        for (let i = 0; i < 5; i++) {
          assert.deepEqual(ok(await c.ask(Buffer.from([TAG.authorizedKeys]))), Buffer.from([0]));
          assert.equal(ok(await c.ask(Buffer.concat([Buffer.from([TAG.publicKey]), pkh21(KEYS.tz1.pkh)]))).length, 33);
        }
      } finally {
        c.close();
      }
    });

    it('hostile input: an unknown tag, a truncated request, trailing bytes: closed without an answer', async () => {
      for (const bad of [Buffer.from([9]), Buffer.from([TAG.publicKey, 0]), Buffer.concat([Buffer.from([TAG.authorizedKeys]), Buffer.from([0])])]) {
        assert.equal(await once(where, bad), null, `answered ${bad.toString('hex')}`);
      }
      // The signer is unaffected.
      assert.deepEqual(ok(await once(where, Buffer.from([TAG.authorizedKeys]))), Buffer.from([0]));
    });
  });
}

describe('socket protocol with server.authorized_keys', () => {
  const signer = KEYS.auth_tz1.pkh;
  it('Authorized_keys lists the authorized clients', async () => {
    const list = ok(await once(TCP_AUTH, Buffer.from([TAG.authorizedKeys])));
    const want = Buffer.concat([KEYS.client, KEYS.client2, KEYS.client3, KEYS.client4].map((k) => pkh21(k.pkh)));
    assert.deepEqual(list, Buffer.concat([Buffer.from([1]), u32(want.length), want]));
  });

  for (const name of ['client', 'client2', 'client3', 'client4']) {
    it(`a Sign request authenticated by ${name} (its raw signature after the data) is served`, async () => {
      const hex = consensus({ tag: 21, chain: CHAIN_TEST, level: 500 + ['client', 'client2', 'client3', 'client4'].indexOf(name), round: 0 });
      const who = await InMemorySigner.fromSecretKey(KEYS[name].sk);
      const auth = Buffer.from(sigBytes((await who.sign(authBytes(signer, hex))).prefixSig));
      const raw = ok(await once(TCP_AUTH, signRequest(signer, hex, { auth })));
      const pk = (await http('GET', `${URL_AUTH}/keys/${signer}`)).body.public_key;
      assert.equal(verifySignature(hex, pk, b58Encode(raw, PrefixV2.Ed25519Signature)), true);
    });
  }

  it('without authentication, or signed over other bytes, or by an intruder: refused', async () => {
    const hex = consensus({ tag: 21, chain: CHAIN_TEST, level: 510, round: 0 });
    assert.match(errorOf(await once(TCP_AUTH, signRequest(signer, hex))), /missing authentication/);
    const client = await InMemorySigner.fromSecretKey(KEYS.client.sk);
    const wrong = Buffer.from(sigBytes((await client.sign(authBytes(signer, hex + '00'))).prefixSig));
    assert.match(errorOf(await once(TCP_AUTH, signRequest(signer, hex, { auth: wrong }))), /invalid authentication/);
    const intruder = await InMemorySigner.fromSecretKey(KEYS.intruder.sk);
    const theirs = Buffer.from(sigBytes((await intruder.sign(authBytes(signer, hex))).prefixSig));
    assert.match(errorOf(await once(TCP_AUTH, signRequest(signer, hex, { auth: theirs }))), /invalid authentication/);
  });

  it('a flood of connections is cut at the limit (256), and the HTTP port still answers', async () => {
    const conns = await Promise.all(Array.from({ length: 300 }, () => Conn.open(TCP_AUTH)));
    try {
      // Each asks once: those within the limit are answered, those past it were closed unread.
      // No connection arrives after these 300, so at most 256 hold a slot when the requests are
      // read, however slow this machine is.
      const answers = await Promise.all(conns.map((c) => c.ask(Buffer.from([TAG.authorizedKeys]))));
      const served = answers.filter((a) => a !== null).length;
      assert.ok(served <= 256, `${served} of 300 connections served with a limit of 256`);
      assert.ok(served >= 1, 'no connection served');
      const res = await http('GET', `${URL_AUTH}/keys/${signer}`);
      assert.equal(res.status, 200, res.text);
    } finally {
      for (const c of conns) c.close();
    }
    // Once they are gone, a new connection is served.
    let answered = null;
    for (let t = 0; t < 600 && !answered; t++) {
      answered = await once(TCP_AUTH, Buffer.from([TAG.authorizedKeys])).catch(() => null);
      if (!answered) await new Promise((r) => setTimeout(r, 50));
    }
    assert.ok(answered, 'no connection served after the flood');
  });
});
