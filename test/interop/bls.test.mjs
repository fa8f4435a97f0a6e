// tz4 (BLS) over plain HTTP: RemoteSigner 21.0.0 cannot parse BLsig (its utils reject the
// prefix), so the signing requests are made with fetch and every signature is checked with
// Taquito 24.2.0's own BLS verifier and compared with Taquito's InMemorySigner (BLS signing is
// deterministic).
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { RemoteSigner } from '@taquito/remote-signer';
import { InMemorySigner } from '@taquito/signer';
import { LocalForger } from '@taquito/local-forging';
import {
  verifySignature,
  getPkhfromPk,
  b58DecodeAndCheckPrefix,
  b58Encode,
  PrefixV2,
} from '@taquito/utils';
import { URL_MAIN, KEYS, http, publicKeyOf, assertValid, signOK, signRaw, errorMsg, consensus, sigBytes } from './lib.mjs';

const { pkh, sk } = KEYS.tz4;

describe('tz4 (BLS) key', () => {
  let pk;
  let local;
  before(async () => {
    pk = await publicKeyOf(URL_MAIN, pkh);
    local = await InMemorySigner.fromSecretKey(sk);
  });

  it('GET /keys serves the BLpk of the vault key; RemoteSigner.publicKey() reads it', async () => {
    assert.ok(pk.startsWith('BLpk'), pk);
    assert.equal(pk, await local.publicKey());
    assert.equal(getPkhfromPk(pk), pkh);
    assert.equal(await new RemoteSigner(pkh, URL_MAIN).publicKey(), pk);
  });

  it('tag-41 attestation and tag-40 preattestation: Taquito verifies, and equals InMemorySigner', async () => {
    for (const [tag, level] of [
      [41, 1000],
      [40, 1000],
      [41, 1001],
      [40, 1001],
    ]) {
      const hex = consensus({ tag, level, round: 0 });
      const sig = await signOK(URL_MAIN, pkh, hex);
      assertValid('tz4', pk, hex, sig);
      assert.equal(sigBytes(sig).length, 96);
      assert.equal(sig, (await local.sign(hex)).prefixSig, `tag ${tag}: not Taquito's signature`);
      // The POP ciphersuite is used for signing (version 2), not the POP-proof DST.
      assert.equal(verifySignature(hex, pk, sig, undefined, true), false);
    }
  });

  it('the watermark applies to BLS-mode consensus operations', async () => {
    const hex = consensus({ tag: 41, level: 1100, round: 2 });
    const first = await signOK(URL_MAIN, pkh, hex);
    assert.equal(await signOK(URL_MAIN, pkh, hex), first, 'identical replay: same signature');
    let res = await signRaw(URL_MAIN, pkh, consensus({ tag: 41, level: 1100, round: 2, variant: 1 }));
    assert.equal(errorMsg(res, 409), 'watermark validation failed');
    res = await signRaw(URL_MAIN, pkh, consensus({ tag: 41, level: 1100, round: 1 }));
    assert.equal(errorMsg(res, 409), 'watermark validation failed');
    assertValid('tz4', pk, consensus({ tag: 41, level: 1100, round: 3 }), await signOK(URL_MAIN, pkh, consensus({ tag: 41, level: 1100, round: 3 })));
  });

  it('GET /bls_prove_possession/{pkh}: the proof verifies and equals InMemorySigner.provePossession()', async () => {
    const res = await http('GET', `${URL_MAIN}/bls_prove_possession/${pkh}`);
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(Object.keys(res.body), ['bls_prove_possession']);
    const proof = res.body.bls_prove_possession;
    assert.ok(proof.startsWith('BLsig'), proof);
    const pkBytes = b58DecodeAndCheckPrefix(pk, [PrefixV2.BLS12_381PublicKey])[0];
    assert.equal(pkBytes.length, 48);
    // Taquito's POP check: signature over the 48-byte compressed key with
    // BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_.
    assert.equal(verifySignature(pkBytes, pk, proof, undefined, true), true, 'the proof does not verify');
    assert.equal(verifySignature(pkBytes, pk, proof), false, 'the proof must not be a plain signature');
    const expected = await local.provePossession();
    assert.equal(proof, b58Encode(expected.rawSignature, PrefixV2.BLS12_381Signature));
  });

  it('a tz4 reveal carrying the proof is forged by Taquito and signed', async () => {
    const proof = (await http('GET', `${URL_MAIN}/bls_prove_possession/${pkh}`)).body.bls_prove_possession;
    const forged = await new LocalForger().forge({
      branch: 'BLockGenesisGenesisGenesisGenesisGenesisf79b5d1CoW2',
      contents: [
        { kind: 'reveal', source: pkh, fee: '1000', counter: '1', gas_limit: '3250', storage_limit: '0', public_key: pk, proof },
      ],
    });
    const parsed = await new LocalForger().parse(forged);
    assert.equal(parsed.contents[0].proof, proof);
    const hex = '03' + forged;
    const sig = await signOK(URL_MAIN, pkh, hex);
    assertValid('tz4', pk, hex, sig);
    assert.equal(sig, (await local.sign(forged, new Uint8Array([3]))).prefixSig);
  });

  it('a non-BLS key cannot prove possession (400); a key not in the config is refused (403)', async () => {
    let res = await http('GET', `${URL_MAIN}/bls_prove_possession/${KEYS.tz1.pkh}`);
    assert.equal(errorMsg(res, 400), 'proof of possession is not supported');
    res = await http('GET', `${URL_MAIN}/bls_prove_possession/${KEYS.unlisted.pkh}`);
    assert.equal(errorMsg(res, 403), `${KEYS.unlisted.pkh} is not listed in config`);
  });
});
