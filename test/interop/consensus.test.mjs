// Baker payloads over plain HTTP, built here from their encodings (docs/protocol.md, "Payloads"):
// blocks (0x11), preattestations (0x12, tag 20), attestations (0x13, tag 21) and attestations
// with DAL content (tag 23), at rising levels and rounds, with the watermark's refusals.
// Every signature is checked with Taquito's verifier.
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  URL_MAIN,
  KEYS,
  publicKeyOf,
  assertValid,
  signOK,
  signRaw,
  errorMsg,
  block,
  consensus,
  CHAIN_MAIN,
  CHAIN_TEST,
} from './lib.mjs';

const WATERMARK_MSG = 'watermark validation failed';

const builders = {
  block: (a) => block(a),
  preattestation: (a) => consensus({ tag: 20, ...a }),
  attestation: (a) => consensus({ tag: 21, ...a }),
};

for (const kind of ['tz1', 'tz2', 'tz3']) {
  describe(`consensus payloads for a ${kind} key`, () => {
    const { pkh } = KEYS[kind];
    let pk;
    before(async () => {
      pk = await publicKeyOf(URL_MAIN, pkh);
    });

    const ok = async (hex) => {
      const sig = await signOK(URL_MAIN, pkh, hex);
      assertValid(kind, pk, hex, sig);
      return sig;
    };
    const refused = async (hex) => {
      const res = await signRaw(URL_MAIN, pkh, hex);
      assert.equal(errorMsg(res, 409), WATERMARK_MSG);
    };

    for (const [name, build] of Object.entries(builders)) {
      it(`${name}: rising levels and rounds are signed, a double sign is refused`, async () => {
        await ok(build({ level: 100, round: 0 }));
        await ok(build({ level: 100, round: 1 }));
        const hex = build({ level: 101, round: 0 });
        const first = await ok(hex);

        // Same level and round, different bytes: the double-signing case.
        await refused(build({ level: 101, round: 0, variant: 1 }));

        // Identical bytes again: served; ed25519 is deterministic, so the same signature.
        const again = await ok(hex);
        if (kind === 'tz1') assert.equal(again, first);

        // Lower level with a higher round, lower round at the same level: refused.
        await refused(build({ level: 100, round: 5 }));
        await ok(build({ level: 102, round: 3 }));
        await refused(build({ level: 102, round: 2 }));
        // The refused requests did not move the watermark: round 4 of level 102 is still fine.
        await ok(build({ level: 102, round: 4 }));

        // Another chain has its own watermark.
        await ok(build({ chain: CHAIN_TEST, level: 101, round: 0, variant: 1 }));
        await refused(build({ chain: CHAIN_TEST, level: 101, round: 0, variant: 2 }));
      });
    }

    it('block, preattestation and attestation at one level and round are independent classes', async () => {
      for (const build of Object.values(builders)) await ok(build({ level: 300, round: 0 }));
      for (const build of Object.values(builders)) await refused(build({ level: 300, round: 0, variant: 9 }));
    });

    it('attestation and attestation_with_dal share one watermark', async () => {
      await ok(consensus({ tag: 21, level: 400, round: 0 }));
      // A tag-23 with other bytes at the same level and round would be a double attestation.
      await refused(consensus({ tag: 23, level: 400, round: 0 }));
      const dal = consensus({ tag: 23, level: 400, round: 1, dal: 33 });
      const first = await ok(dal);
      const again = await ok(dal); // identical replay
      if (kind === 'tz1') assert.equal(again, first);
      await refused(consensus({ tag: 21, level: 400, round: 1 }));
      await refused(consensus({ tag: 23, level: 400, round: 1, dal: 34 }));
      await ok(consensus({ tag: 21, level: 401, round: 0 }));
      await ok(consensus({ tag: 23, level: 402, round: 0, dal: 1 }));
    });

    it('the preattestation watermark does not follow attestations', async () => {
      await ok(consensus({ tag: 21, level: 500, round: 2 }));
      await ok(consensus({ tag: 20, level: 500, round: 0 }));
      await refused(consensus({ tag: 20, level: 499, round: 9 }));
    });

    it('trailing bytes after a consensus payload are refused (400)', async () => {
      const res = await signRaw(URL_MAIN, pkh, consensus({ tag: 21, level: 600, round: 0 }) + '00');
      errorMsg(res, 400);
      // … and they did not consume the level: the clean payload is still signed.
      await ok(consensus({ tag: 21, level: 600, round: 0 }));
    });
  });
}

describe('consensus payload fixtures', () => {
  it('match the documented layout', () => {
    // 0x13 ‖ chain ‖ branch[32] ‖ tag 21 ‖ slot ‖ level ‖ round ‖ payload hash[32]
    const att = consensus({ tag: 21, level: 0x22, round: 4, slot: 0x15 });
    assert.equal(att.length, 2 * (1 + 4 + 32 + 1 + 2 + 4 + 4 + 32));
    assert.equal(att.slice(0, 10), '13' + CHAIN_MAIN);
    assert.equal(att.slice(74, 96), '15' + '0015' + '00000022' + '00000004');
    const dal = consensus({ tag: 23, level: 1, round: 0, dal: 33 });
    assert.equal(dal.length, att.length + 2);
    assert.equal(dal.slice(-2), '21');
    const bls = consensus({ tag: 41, level: 1, round: 0 });
    assert.equal(bls.length, att.length - 4);
    const pre = consensus({ tag: 20, level: 1, round: 0 });
    assert.equal(pre.slice(0, 2), '12');
    // Block: the round is the last 4 bytes of the fitness.
    const b = block({ level: 0x102, round: 7 });
    assert.equal(b.slice(0, 18), '11' + CHAIN_MAIN + '00000102');
    const fitnessAt = 2 * (1 + 4 + 4 + 1 + 32 + 8 + 1 + 32);
    assert.equal(b.slice(fitnessAt, fitnessAt + 8), '00000021'); // 33 bytes of fitness
    assert.equal(b.slice(fitnessAt + 8 + 66 - 8, fitnessAt + 8 + 66), '00000007');
  });
});
