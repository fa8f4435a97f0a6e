package testdaemon

import (
	"encoding/hex"
	"fmt"

	"github.com/signatory-go/signatory/internal/tezos"
)

// Verify checks that sig is a low-S signature over the hex payload by the key the daemon serves at
// GET /keys/pkh, and that the served key hashes to pkh.
func (d *Daemon) Verify(pkh, payload, sig string) error {
	status, pk := d.PublicKey(pkh)
	if status != 200 {
		return fmt.Errorf("GET /keys/%s: %d %s", pkh, status, pk)
	}
	pub, err := tezos.ParsePublicKey(pk)
	if err != nil {
		return err
	}
	if pub.Hash().String() != pkh {
		return fmt.Errorf("GET /keys/%s served the key of %s", pkh, pub.Hash())
	}
	s, err := tezos.ParseSignature(sig)
	if err != nil {
		return fmt.Errorf("signature %q: %w", sig, err)
	}
	msg, _ := hex.DecodeString(payload)
	if !tezos.IsLowS(s) || !tezos.Verify(pub, s, msg, 2) {
		return fmt.Errorf("signature %s over %s… does not verify (or is high-S)", sig, payload[:8])
	}
	return nil
}
