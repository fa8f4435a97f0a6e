// Taquito's RemoteSigner (the client dApps and wallets use) against the real daemon: public key,
// key hash and signatures of Taquito-forged manager operations for tz1, tz2 and tz3 keys, and a
// byte-for-byte known answer against Taquito's InMemorySigner.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RemoteSigner } from '@taquito/remote-signer';
import { InMemorySigner } from '@taquito/signer';
import { LocalForger } from '@taquito/local-forging';
import { verifySignature, getPkhfromPk } from '@taquito/utils';
import { URL_MAIN, URL_AUTH, KEYS, publicKeyOf, assertValid, isLowS, signOK } from './lib.mjs';

const BRANCH = 'BLockGenesisGenesisGenesisGenesisGenesisf79b5d1CoW2';
const DEST = 'tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN'; // sandbox bootstrap2
const GENERIC = new Uint8Array([3]);

const forger = new LocalForger(); // default protocol of local-forging 24.2.0: PtTALLiN (024)

const manager = (source, counter) => ({
  source,
  fee: '1420',
  counter: String(counter),
  gas_limit: '10600',
  storage_limit: '300',
});

// A contract that stores an int and ignores its unit parameter.
const SCRIPT = {
  code: [
    { prim: 'parameter', args: [{ prim: 'unit' }] },
    { prim: 'storage', args: [{ prim: 'int' }] },
    { prim: 'code', args: [[{ prim: 'CDR' }, { prim: 'NIL', args: [{ prim: 'operation' }] }, { prim: 'PAIR' }]] },
  ],
  storage: { int: '42' },
};

function operations(source, publicKey) {
  return {
    transaction: [{ kind: 'transaction', ...manager(source, 11), amount: '1000000', destination: DEST }],
    delegation: [{ kind: 'delegation', ...manager(source, 12), delegate: DEST }],
    reveal: [{ kind: 'reveal', ...manager(source, 13), public_key: publicKey }],
    origination: [{ kind: 'origination', ...manager(source, 14), balance: '0', script: SCRIPT }],
    batch: [
      { kind: 'reveal', ...manager(source, 15), public_key: publicKey },
      { kind: 'transaction', ...manager(source, 16), amount: '1', destination: DEST },
      { kind: 'delegation', ...manager(source, 17), delegate: DEST },
      { kind: 'origination', ...manager(source, 18), balance: '5', script: SCRIPT },
    ],
  };
}

for (const kind of ['tz1', 'tz2', 'tz3']) {
  describe(`RemoteSigner with a ${kind} key`, () => {
    const { pkh } = KEYS[kind];
    const signer = new RemoteSigner(pkh, `${URL_MAIN}/`); // a trailing slash is what users often type

    it('publicKeyHash() and publicKey()', async () => {
      assert.equal(await signer.publicKeyHash(), pkh);
      const pk = await signer.publicKey();
      assert.equal(pk, await publicKeyOf(URL_MAIN, pkh));
      assert.equal(pk, KEYS[kind].pk);
      assert.equal(getPkhfromPk(pk), pkh, 'the served public key hashes to the requested pkh');
    });

    it('GET /keys/{pkh} has the reference body and content type', async () => {
      const res = await fetch(`${URL_MAIN}/keys/${pkh}`, { signal: AbortSignal.timeout(15_000) });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get('content-type'), 'application/json; charset=utf-8');
      const pk = await signer.publicKey();
      assert.equal(await res.text(), JSON.stringify({ public_key: pk }) + '\n');
    });

    for (const [name, ops] of Object.entries(operations(pkh, KEYS[kind].pk))) {
      it(`signs a Taquito-forged ${name}`, async () => {
        const pk = await signer.publicKey();
        const forged = await forger.forge({ branch: BRANCH, contents: ops });
        // The forged bytes decode back to the same operation kinds (sanity check of the fixture).
        const parsed = await forger.parse(forged);
        assert.deepEqual(parsed.contents.map((c) => c.kind), ops.map((c) => c.kind));

        const res = await signer.sign(forged, GENERIC); // RemoteSigner itself verifies too
        assert.equal(res.bytes, forged);
        assert.equal(res.sbytes.slice(0, forged.length), forged);
        assert.equal(res.sbytes.length, forged.length + 128, 'sbytes = bytes ‖ 64-byte signature');
        assertValid(kind, pk, '03' + forged, res.prefixSig);
        assert.ok(res.sig.startsWith('sig'), res.sig);
        assert.equal(verifySignature(forged, pk, res.sig, GENERIC), true, 'the generic sig… form verifies too');
      });
    }
  });
}

describe('known answers against Taquito InMemorySigner', () => {
  // Fixed inputs, so the signature is reproducible (ed25519 is deterministic).
  const KAT_FORGED =
    '8fcf233671b6a04fcf679d2a381c2544ea6c1ea29ba6157776ed8424c7ccd00b6c0002298c03ed7d454a101eb7022bc95f7e5f41ac788c0b01f70b8102c0843d0000e7670f32038107a59a2b9cfefae36ea21f5aa63c00';
  const KAT_SIG =
    'edsigtcDqdhD8dPN1t5C16FLCr8g18Z9mH6A8n2XTqSxpvY3c5kJHcJzoWuCuE8BRD11h9mzfysaSFQNMAqkXJvCPhEZ4DBCaZ6';

  it('tz1: the signature equals InMemorySigner byte for byte', async () => {
    const { pkh, sk } = KEYS.tz1;
    assert.equal(pkh, 'tz1KqTpEZ7Yob7QbPE4Hy4Wo8fHG8LhKxZSx', 'the Go test must use the fixed sandbox key');
    const forged = await forger.forge({
      branch: BRANCH,
      contents: [
        {
          kind: 'transaction',
          source: pkh,
          fee: '1420',
          counter: '1',
          gas_limit: '1527',
          storage_limit: '257',
          amount: '1000000',
          destination: DEST,
        },
      ],
    });
    assert.equal(forged, KAT_FORGED);
    const local = await (await InMemorySigner.fromSecretKey(sk)).sign(forged, GENERIC);
    const remote = await new RemoteSigner(pkh, URL_MAIN).sign(forged, GENERIC);
    assert.equal(local.prefixSig, KAT_SIG);
    assert.equal(remote.prefixSig, local.prefixSig);
    assert.equal(remote.sig, local.sig);
    assert.equal(remote.sbytes, local.sbytes);
  });

  for (const kind of ['tz2', 'tz3']) {
    it(`${kind}: 24 signatures all verify with Taquito and are low-S`, async () => {
      // Without normalisation half of the ECDSA signatures would be high-S: 24 draws miss that
      // with probability 2^-24.
      const { pkh } = KEYS[kind];
      const pk = await publicKeyOf(URL_MAIN, pkh);
      const signer = new RemoteSigner(pkh, URL_MAIN);
      for (let i = 0; i < 24; i++) {
        const forged = await forger.forge({
          branch: BRANCH,
          contents: [{ kind: 'transaction', ...manager(pkh, 100 + i), amount: String(1 + i), destination: DEST }],
        });
        const hex = '03' + forged;
        const sig = i % 2 === 0 ? (await signer.sign(forged, GENERIC)).prefixSig : await signOK(URL_MAIN, pkh, hex);
        assert.ok(isLowS(kind, sig), `signature ${i} is high-S: ${sig}`);
        assertValid(kind, pk, hex, sig);
      }
    });
  }
});

describe('GET /known_keys (octez-signer --allow-list-known-keys)', () => {
  it('lists the keys under tezos: when allowed, in the config order; 404 when not', async () => {
    const res = await fetch(`${URL_MAIN}/known_keys`);
    assert.equal(res.status, 200);
    const { known_keys } = await res.json();
    assert.deepEqual(known_keys, [KEYS.tz1.pkh, KEYS.tz2.pkh, KEYS.tz3.pkh, KEYS.tz4.pkh, KEYS.restricted.pkh, KEYS.tz5.pkh]);
    assert.ok(!known_keys.includes(KEYS.unlisted.pkh), 'a key in the vault but not under tezos: is listed');
    const off = await fetch(`${URL_AUTH}/known_keys`);
    assert.equal(off.status, 404);
  });
});
