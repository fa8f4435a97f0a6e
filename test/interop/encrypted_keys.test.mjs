// Signatory encrypts secret keys as octez-client does (salt ‖ secretbox under PBKDF2-SHA512);
// Taquito's InMemorySigner, which implements octez's decryption, must open them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InMemorySigner } from '@taquito/signer';

const keys = JSON.parse(process.env.SIGNATORY_ENCRYPTED_KEYS ?? '[]');

test('Taquito decrypts keys encrypted by Signatory', async () => {
  assert.equal(keys.length, 3, 'SIGNATORY_ENCRYPTED_KEYS must hold tz1, tz2 and tz3 keys');
  for (const k of keys) {
    const signer = await InMemorySigner.fromSecretKey(k.encrypted, k.password);
    assert.equal(await signer.publicKeyHash(), k.pkh, `${k.encrypted.slice(0, 5)} key`);
    await assert.rejects(InMemorySigner.fromSecretKey(k.encrypted, 'wrong password'));
  }
});
