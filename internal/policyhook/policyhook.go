// Package policyhook asks an external service whether a request may be signed, as the reference implementation's hook does:
// it POSTs the request and, when hook keys are configured, checks the signed reply.
// A hook that does not answer in time means refuse.
package policyhook

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/signatory-go/signatory/internal/fault"
	"github.com/signatory-go/signatory/internal/tezos"
)

// DefaultTimeout bounds a hook call: the reference waits forever, which would let a stuck hook
// hold every request.
const DefaultTimeout = 2 * time.Second

// Hook is a configured policy hook.
type Hook struct {
	Address string
	// Keys verify signed replies; when empty, only the HTTP status counts.
	Keys    []crypt.PublicKey
	Timeout time.Duration
	Client  *http.Client
}

// Request is what the signer asks about.
type Request struct {
	Message   []byte
	Source    string // client IP
	PKH       string
	ClientPKH string // authenticated client, or ""
}

type body struct {
	Request       string `json:"request"`
	Source        string `json:"source"`
	PublicKeyHash string `json:"public_key_hash"`
	ClientKeyHash string `json:"client_key_hash,omitempty"`
	Nonce         string `json:"nonce"`
}

// ReplyPayload is the signed part of a hook reply.
type ReplyPayload struct {
	Status        int    `json:"status"`
	Error         string `json:"error"`
	PublicKeyHash string `json:"public_key_hash"`
	Nonce         string `json:"nonce"`
}

type reply struct {
	Payload   json.RawMessage `json:"payload"`
	Signature string          `json:"signature"`
}

// Violation marks refusals for the policy_violation_total{violation_type="policy_hook"} metric.
type Violation struct{ Err error }

func (v *Violation) Error() string { return v.Err.Error() }
func (v *Violation) Unwrap() error { return v.Err }

// fail is a refusal by the hook, or a failure to ask it: a client is told the refusal's reason
// (4xx) or only that the hook failed (5xx), the detail going to the log.
func fail(kind fault.Kind, format string, args ...any) error {
	e := &fault.Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
	if kind.ServerSide() {
		e.Client = "policy hook error"
	}
	return &Violation{Err: e}
}

func statusKind(status int) fault.Kind {
	if status >= 400 && status < 500 {
		return fault.Forbidden
	}
	return fault.Internal
}

// Check calls the hook; nil means allowed.
func (h *Hook) Check(ctx context.Context, r *Request) error {
	timeout := h.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var nonce [32]byte
	_, _ = rand.Read(nonce[:])
	b := body{Request: base64.StdEncoding.EncodeToString(r.Message), Source: r.Source, PublicKeyHash: r.PKH,
		ClientKeyHash: r.ClientPKH, Nonce: base64.StdEncoding.EncodeToString(nonce[:])}
	data, _ := json.Marshal(b)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.Address, bytes.NewReader(data))
	if err != nil {
		return fail(fault.Internal, "policy hook: %v", err)
	}
	req.Header.Set("Content-Type", "application/json")
	client := h.Client
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return fail(fault.Internal, "policy hook: no answer within %s", timeout)
		}
		return fail(fault.Internal, "policy hook: %v", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fail(fault.Internal, "policy hook: %v", err)
	}
	ok := resp.StatusCode >= 200 && resp.StatusCode < 300
	if len(h.Keys) == 0 {
		if ok {
			return nil
		}
		return fail(statusKind(resp.StatusCode), "policy hook: %s", resp.Status)
	}
	var rep reply
	if err := json.Unmarshal(raw, &rep); err != nil {
		return fail(fault.Internal, "policy hook: invalid reply: %v", err)
	}
	var p ReplyPayload
	if err := json.Unmarshal(rep.Payload, &p); err != nil {
		return fail(fault.Internal, "policy hook: invalid reply payload: %v", err)
	}
	if p.Status != resp.StatusCode {
		return fail(fault.Internal, "the policy hook reply status must match the HTTP header")
	}
	if p.Nonce != b.Nonce {
		return fail(fault.Forbidden, "nonce mismatch")
	}
	pkh, err := tezos.ParsePublicKeyHash(p.PublicKeyHash)
	if err != nil {
		return fail(fault.Forbidden, "%v", err)
	}
	var key crypt.PublicKey
	for _, k := range h.Keys {
		if k.Hash().String() == pkh.String() {
			key = k
		}
	}
	if key == nil {
		return fail(fault.Unauthorized, "public key not found")
	}
	sig, err := tezos.ParseSignature(rep.Signature)
	if err != nil || !tezos.Verify(key, sig, rep.Payload, 2) {
		return fail(fault.Forbidden, "invalid hook reply signature")
	}
	if !ok {
		msg := p.Error
		if msg == "" {
			msg = resp.Status
		}
		return fail(statusKind(resp.StatusCode), "policy hook: %s", msg)
	}
	return nil
}
