// Bad input through the real server, seen as Taquito sees it (its error classes) and on the wire
// (status and the Octez error body).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { RemoteSigner } from '@taquito/remote-signer';
import { LocalForger } from '@taquito/local-forging';
import { URL_MAIN, KEYS, http, publicKeyOf, assertValid, signOK, signRaw, errorMsg, consensus, block } from './lib.mjs';

const BRANCH = 'BLockGenesisGenesisGenesisGenesisGenesisf79b5d1CoW2';
const DEST = 'tz1gjaF81ZRRvdzjobyfVNsAeSC6PScjfQwN';
const GENERIC = new Uint8Array([3]);
const forger = new LocalForger();

const manager = (source, counter) => ({ source, fee: '1000', counter: String(counter), gas_limit: '2000', storage_limit: '0' });
const forge = (contents) => forger.forge({ branch: BRANCH, contents });
const transaction = (source, counter = 1) => ({ kind: 'transaction', ...manager(source, counter), amount: '5', destination: DEST });
const delegation = (source, counter = 2) => ({ kind: 'delegation', ...manager(source, counter), delegate: DEST });

/** Asserts a RemoteSigner rejection: Taquito error name and the HTTP status and message behind it. */
function taquitoError(name, status, msg) {
  return (err) => {
    assert.equal(err.name, name, `${err.name}: ${err.message}`);
    assert.equal(err.cause?.status, status, `cause: ${err.cause}`);
    if (msg !== undefined) {
      assert.deepEqual(JSON.parse(err.cause.body), [{ id: 'failure', kind: 'temporary', msg }]);
    }
    return true;
  };
}

describe('bad input through the real server', () => {
  it('a pkh in no vault: publicKey() gives PublicKeyNotFoundError (404)', async () => {
    const { pkh } = KEYS.unknown;
    await assert.rejects(new RemoteSigner(pkh, URL_MAIN).publicKey(), taquitoError('PublicKeyNotFoundError', 404));
    const res = await http('GET', `${URL_MAIN}/keys/${pkh}`);
    assert.equal(errorMsg(res, 404), 'this key not found in any vault');
  });

  it('a pkh in no vault and not in the config: signing is refused (403, policy is checked first)', async () => {
    const { pkh } = KEYS.unknown;
    const forged = await forge([transaction(pkh)]);
    await assert.rejects(
      new RemoteSigner(pkh, URL_MAIN).sign(forged, GENERIC),
      taquitoError('OperationNotAuthorized', 403, `${pkh} is not listed in config`),
    );
  });

  it('a key in the vault but not under tezos: its public key is served, signing is refused (403)', async () => {
    const { pkh } = KEYS.unlisted;
    const signer = new RemoteSigner(pkh, URL_MAIN);
    assert.ok((await signer.publicKey()).startsWith('edpk'));
    const forged = await forge([transaction(pkh)]);
    await assert.rejects(signer.sign(forged, GENERIC), taquitoError('OperationNotAuthorized', 403, `${pkh} is not listed in config`));
    // Consensus payloads too.
    const res = await signRaw(URL_MAIN, pkh, consensus({ tag: 21, level: 1, round: 0 }));
    assert.equal(errorMsg(res, 403), `${pkh} is not listed in config`);
  });

  it("a disallowed operation kind: 403 operation `X' is not allowed", async () => {
    const { pkh } = KEYS.restricted; // allow: generic: [transaction]
    const signer = new RemoteSigner(pkh, URL_MAIN);
    const pk = await signer.publicKey();
    // The allowed kind works …
    const ok = await signer.sign(await forge([transaction(pkh)]), GENERIC);
    assertValid('tz1', pk, '03' + ok.bytes, ok.prefixSig);
    // … a delegation does not, alone or hidden in a batch after an allowed transaction.
    await assert.rejects(
      signer.sign(await forge([delegation(pkh)]), GENERIC),
      taquitoError('OperationNotAuthorized', 403, "operation `delegation' is not allowed"),
    );
    await assert.rejects(
      signer.sign(await forge([transaction(pkh, 3), delegation(pkh, 4)]), GENERIC),
      taquitoError('OperationNotAuthorized', 403, "operation `delegation' is not allowed"),
    );
    const reveal = { kind: 'reveal', ...manager(pkh, 5), public_key: pk };
    await assert.rejects(
      signer.sign(await forge([reveal]), GENERIC),
      taquitoError('OperationNotAuthorized', 403, "operation `reveal' is not allowed"),
    );
    // A request kind that is not allowed at all.
    const res = await signRaw(URL_MAIN, pkh, block({ level: 1, round: 0 }));
    assert.equal(errorMsg(res, 403), "request kind `block' is not allowed");
  });

  it("tz4 key allowed only reveal among generic operations: a transaction is 403", async () => {
    const { pkh } = KEYS.tz4;
    const res = await signRaw(URL_MAIN, pkh, '03' + (await forge([transaction(pkh)])));
    assert.equal(errorMsg(res, 403), "operation `transaction' is not allowed");
  });

  it('undecodable bytes: Taquito BadSigningData (400)', async () => {
    const signer = new RemoteSigner(KEYS.tz1.pkh, URL_MAIN);
    await assert.rejects(signer.sign('deadbeef'), taquitoError('BadSigningData', 400));
    // An authentication payload (0x04) and legacy Emmy magic bytes are not signable messages.
    for (const hex of ['0401' + '00'.repeat(21), '01' + '00'.repeat(40), '02' + '00'.repeat(40)]) {
      errorMsg(await signRaw(URL_MAIN, KEYS.tz1.pkh, hex), 400);
    }
    // Generic operations with junk after the last content.
    const forged = await forge([transaction(KEYS.tz1.pkh)]);
    errorMsg(await signRaw(URL_MAIN, KEYS.tz1.pkh, '03' + forged + 'ff'), 400);
    // And the clean one still signs.
    assertValid('tz1', KEYS.tz1.pk, '03' + forged, await signOK(URL_MAIN, KEYS.tz1.pkh, '03' + forged));
  });

  it('malformed requests: 400 with the Octez error body', async () => {
    const url = `${URL_MAIN}/keys/${KEYS.tz1.pkh}`;
    assert.equal(errorMsg(await http('POST', url, ''), 400), 'unexpected end of JSON input');
    errorMsg(await http('POST', url, '03aa'), 400); // hex that is not a JSON string
    assert.equal(errorMsg(await http('POST', url, '"zz"'), 400), "encoding/hex: invalid byte: U+007A 'z'");
    errorMsg(await http('POST', `${URL_MAIN}/keys/tz1notakeyhash`, '"03"'), 400);
    errorMsg(await http('GET', `${URL_MAIN}/keys/tz1notakeyhash`), 400);
  });

  it('the body is standard JSON: surrounding whitespace and uppercase hex are accepted', async () => {
    const { pkh, pk } = KEYS.tz1;
    const hex = '03' + (await forge([transaction(pkh, 9)]));
    const res = await http('POST', `${URL_MAIN}/keys/${pkh}`, ` \n ${JSON.stringify(hex.toUpperCase())} \n`);
    assert.equal(res.status, 200, res.text);
    // The success body is exactly what Go's json.Encoder writes.
    assert.equal(res.text, JSON.stringify({ signature: res.body.signature }) + '\n');
    assertValid('tz1', pk, hex, res.body.signature);
    assert.equal(await signOK(URL_MAIN, pkh, hex), res.body.signature, 'same bytes, same ed25519 signature');
  });

  it('GET /authorized_keys on a daemon without authentication is {}', async () => {
    const res = await http('GET', `${URL_MAIN}/authorized_keys`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.body, {});
  });

  it('an unknown path is 404', async () => {
    assert.equal((await http('GET', `${URL_MAIN}/no_such_path`)).status, 404);
    assert.equal((await publicKeyOf(URL_MAIN, KEYS.tz1.pkh)).slice(0, 4), 'edpk');
  });
});
