// The Octez authorized-keys flow against the second daemon, whose config has
// server.authorized_keys: [client (ed25519), client2 (p256), client3 (secp256k1), client4 (BLS)]. As octez-client does, the client
// signs 0x04 0x01 ‖ 21-byte pkh of the signing key ‖ payload and sends ?authentication=<sig>.
// Client signatures are made with Taquito's InMemorySigner.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { RemoteSigner } from '@taquito/remote-signer';
import { InMemorySigner } from '@taquito/signer';
import { LocalForger } from '@taquito/local-forging';
import { b58DecodeAndCheckPrefix, PrefixV2, verifySignature } from '@taquito/utils';
import {
  URL_AUTH,
  KEYS,
  http,
  publicKeyOf,
  assertValid,
  signOK,
  signRaw,
  errorMsg,
  consensus,
  authBytes,
} from './lib.mjs';

const signer = KEYS.auth_tz1.pkh;
const blsSigner = KEYS.auth_tz4.pkh;

describe('octez authorized keys', () => {
  let client, intruder, pk, payload;
  before(async () => {
    client = await InMemorySigner.fromSecretKey(KEYS.client.sk);
    intruder = await InMemorySigner.fromSecretKey(KEYS.intruder.sk);
    pk = await publicKeyOf(URL_AUTH, signer); // GET /keys needs no authentication
    payload =
      '03' +
      (await new LocalForger().forge({
        branch: 'BLockGenesisGenesisGenesisGenesisGenesisf79b5d1CoW2',
        contents: [
          {
            kind: 'transaction',
            source: signer,
            fee: '1000',
            counter: '7',
            gas_limit: '1527',
            storage_limit: '0',
            amount: '12',
            destination: 'tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN',
          },
        ],
      }));
  });

  const auth = async (who, pkh, hex) => `authentication=${(await who.sign(authBytes(pkh, hex))).prefixSig}`;

  it('GET /authorized_keys lists the hashes of the authorized keys, in config order', async () => {
    assert.equal(await client.publicKeyHash(), KEYS.client.pkh);
    const res = await http('GET', `${URL_AUTH}/authorized_keys`);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(res.body, {
      authorized_keys: [KEYS.client.pkh, KEYS.client2.pkh, KEYS.client3.pkh, KEYS.client4.pkh],
    });
  });

  it('a request signed by an authorized key is served (200)', async () => {
    const sig = await signOK(URL_AUTH, signer, payload, await auth(client, signer, payload));
    assertValid('tz1', pk, payload, sig);
  });

  for (const [name, curve] of [
    ['client2', 'p256'],
    ['client3', 'secp256k1'],
    ['client4', 'BLS'],
  ]) {
    it(`the ${curve} authorized key is accepted too`, async () => {
      const who = await InMemorySigner.fromSecretKey(KEYS[name].sk);
      assert.equal(await who.publicKeyHash(), KEYS[name].pkh);
      const sig = await signOK(URL_AUTH, signer, payload, await auth(who, signer, payload));
      assertValid('tz1', pk, payload, sig);
    });
  }

  it('an authenticated consensus operation is served', async () => {
    const hex = consensus({ tag: 21, level: 10, round: 0 });
    assertValid('tz1', pk, hex, await signOK(URL_AUTH, signer, hex, await auth(client, signer, hex)));
  });

  it('an unsigned request is refused (401)', async () => {
    const res = await signRaw(URL_AUTH, signer, payload);
    assert.equal(errorMsg(res, 401), 'missing authentication signature field');
  });

  it('Taquito RemoteSigner (which cannot authenticate) gets the 401', async () => {
    await assert.rejects(new RemoteSigner(signer, URL_AUTH).sign(payload), (err) => {
      assert.equal(err.name, 'HttpResponseError', String(err));
      assert.equal(err.status, 401);
      return true;
    });
  });

  it('a request signed by a key that is not authorized is refused (403)', async () => {
    const res = await signRaw(URL_AUTH, signer, payload, await auth(intruder, signer, payload));
    assert.equal(errorMsg(res, 403), 'invalid authentication signature');
  });

  it('wrongly signed requests are refused (403)', async () => {
    const cases = {
      'payload only, without 0x04 0x01 ‖ pkh': (await client.sign(payload)).prefixSig,
      'signed for another signing key': (await client.sign(authBytes(blsSigner, payload))).prefixSig,
      'signed over other bytes': (await client.sign(authBytes(signer, payload + '00'))).prefixSig,
      'request tag 2 instead of 1': (await client.sign('0402' + authBytes(signer, payload).slice(4))).prefixSig,
    };
    for (const [name, sig] of Object.entries(cases)) {
      const res = await signRaw(URL_AUTH, signer, payload, `authentication=${sig}`);
      assert.equal(errorMsg(res, 403), 'invalid authentication signature', name);
    }
  });

  it('an authentication value that is not a signature is refused (400)', async () => {
    const res = await signRaw(URL_AUTH, signer, payload, 'authentication=edsigNOTASIGNATURE');
    errorMsg(res, 400);
  });

  it('the authentication signature does not make a double sign pass the watermark', async () => {
    const a = consensus({ tag: 21, level: 20, round: 0 });
    const b = consensus({ tag: 21, level: 20, round: 0, variant: 1 });
    await signOK(URL_AUTH, signer, a, await auth(client, signer, a));
    const res = await signRaw(URL_AUTH, signer, b, await auth(client, signer, b));
    assert.equal(errorMsg(res, 409), 'watermark validation failed');
  });

  it('GET /bls_prove_possession needs authentication over 0x04 0x01 ‖ pkh (empty message)', async () => {
    let res = await http('GET', `${URL_AUTH}/bls_prove_possession/${blsSigner}`);
    assert.equal(errorMsg(res, 401), 'missing authentication signature field');
    res = await http('GET', `${URL_AUTH}/bls_prove_possession/${blsSigner}?${await auth(intruder, blsSigner, '')}`);
    assert.equal(errorMsg(res, 403), 'invalid authentication signature');
    res = await http('GET', `${URL_AUTH}/bls_prove_possession/${blsSigner}?${await auth(client, blsSigner, '')}`);
    assert.equal(res.status, 200, res.text);
    const blpk = await publicKeyOf(URL_AUTH, blsSigner);
    const pkBytes = b58DecodeAndCheckPrefix(blpk, [PrefixV2.BLS12_381PublicKey])[0];
    assert.equal(verifySignature(pkBytes, blpk, res.body.bls_prove_possession, undefined, true), true);
  });
});
