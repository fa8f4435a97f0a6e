// Package yubihsm is the vault of keys held by a YubiHSM 2, reached through yubihsm-connector's
// HTTP API in SCP03-authenticated sessions: tz1 (Ed25519, EdDSA), tz2 (secp256k1) and tz3 (P-256)
// (ECDSA over the digest, DER reply), key import and on-device generation.
//
// A few sessions are kept authenticated and each serves one request at a time; a session the
// device or the connector lost is dropped and a new one is authenticated on the next request.
package yubihsm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/certusone/yubihsm-go/commands"
	"gopkg.in/yaml.v3"

	"github.com/signatory-go/signatory/internal/vault"
)

// Driver is the driver name in the config.
const Driver = "yubihsm"

// Vault is a YubiHSM 2 behind yubihsm-connector.
type Vault struct {
	name   string
	cfg    *settings
	log    *slog.Logger
	client *http.Client
	pool   *pool
	life   vault.Lifecycle
}

// New opens the vault described by node (the driver's constructor for the vault table).
func New(ctx context.Context, name string, node *yaml.Node, env vault.Env) (vault.Vault, error) {
	cfg, err := DecodeConfig(node)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", name, err)
	}
	return Open(ctx, name, cfg, env)
}

// Open authenticates a first session, so that an unreachable connector, a wrong password or an
// unknown authentication key is reported at start; configured keys are looked up too.
func Open(ctx context.Context, name string, cfg Config, env vault.Env) (*Vault, error) {
	s, err := cfg.settings()
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", name, err)
	}
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConnsPerHost = s.sessions + 1
	v := &Vault{name: name, cfg: s, log: log, client: &http.Client{Transport: tr}}
	v.pool = newPool(v, s.sessions)
	sess, _, err := v.pool.get(ctx)
	if err != nil {
		tr.CloseIdleConnections()
		return nil, fmt.Errorf("vault %s: %s: %w", name, v.where(), err)
	}
	v.pool.put(sess, true)
	if len(s.keys) > 0 {
		if _, err := v.List(ctx); err != nil {
			v.Close()
			return nil, fmt.Errorf("vault %s: %w", name, err)
		}
	}
	return v, nil
}

// Name implements vault.Vault.
func (v *Vault) Name() string { return v.name }

// Driver implements vault.Vault.
func (v *Vault) Driver() string { return Driver }

// where names the device for messages and logs, as the reference does; never the password.
func (v *Vault) where() string { return "YubiHSM/" + v.cfg.address }

// do sends cmd on a pooled session. A reused session that fails at the session level (expired on
// the device, connector restarted, transport or MAC failure) is dropped, and an idempotent command
// is sent once more on a newly authenticated session. Signing twice is harmless: the watermark
// was taken before the vault was asked.
func (v *Vault) do(ctx context.Context, cmd *commands.CommandMessage, idempotent bool) (commands.Response, error) {
	for attempt := 0; ; attempt++ {
		if v.life.Closed() {
			return nil, vault.ErrClosed
		}
		s, fresh, err := v.pool.get(ctx)
		if err != nil {
			return nil, err
		}
		resp, err := s.send(ctx, cmd)
		healthy := err == nil || s.inner(err)
		v.pool.put(s, healthy)
		if healthy || fresh || !idempotent || attempt > 0 || ctx.Err() != nil {
			return resp, deviceErr(err)
		}
		v.log.Info("YubiHSM session lost; authenticating a new one", "vault", v.name, "err", err.Error())
	}
}

// DeviceError is an error code the device answered with.
type DeviceError struct{ Code commands.ErrorCode }

func (e *DeviceError) Error() string {
	names := map[commands.ErrorCode]string{
		commands.ErrorCodeInvalidCommand: "invalid command", commands.ErrorCodeInvalidData: "invalid data",
		commands.ErrorCodeInvalidSession: "invalid session", commands.ErrorCodeAuthFail: "authentication failed",
		commands.ErrorCodeSessionFull: "sessions full", commands.ErrorCodeSessionFailed: "session failed",
		commands.ErrorCodeStorageFailed: "storage failed", commands.ErrorCodeWrongLength: "wrong length",
		commands.ErrorCodeInvalidPermission: "insufficient permissions", commands.ErrorCodeObjectNotFound: "object not found",
		commands.ErrorCodeInvalidID: "invalid ID", commands.ErrorCodeObjectExists: "object exists",
		0x12: "algorithm disabled", commands.ErrorCodeCommandUnexecuted: "command unexecuted",
	}
	if n, ok := names[e.Code]; ok {
		return fmt.Sprintf("device error: %s (0x%02x)", n, byte(e.Code))
	}
	return fmt.Sprintf("device error 0x%02x", byte(e.Code))
}

// deviceErr replaces yubihsm-go's error codes with DeviceError.
func deviceErr(err error) error {
	var e *commands.Error
	if errors.As(err, &e) {
		return &DeviceError{Code: e.Code}
	}
	return err
}

func isCode(err error, code commands.ErrorCode) bool {
	var e *DeviceError
	return errors.As(err, &e) && e.Code == code
}

// List implements vault.Vault: the configured keys, or every asymmetric key on a Tezos curve the
// authentication key can see (others are skipped with a warning).
func (v *Vault) List(ctx context.Context) ([]vault.Key, error) {
	var keys []*Key
	var err error
	if len(v.cfg.keys) > 0 {
		keys, err = v.configured(ctx)
	} else {
		keys, err = v.discover(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", v.where(), err)
	}
	out := make([]vault.Key, 0, len(keys))
	seen := map[string]uint16{}
	for _, k := range keys {
		pkh := k.pub.Hash().String()
		if first, dup := seen[pkh]; dup {
			v.log.Warn("YubiHSM key listed twice; using the first", "vault", v.name, "pkh", pkh,
				"key", k.ID(), "first", fmt.Sprintf("%04x", first))
			continue
		}
		seen[pkh] = k.id
		out = append(out, k)
	}
	return out, nil
}

// Ready implements vault.ReadinessChecker: an echo through a session.
func (v *Vault) Ready(ctx context.Context) error {
	payload := []byte("signatory")
	cmd, _ := commands.CreateEchoCommand(payload)
	resp, err := v.do(ctx, cmd, true)
	if err != nil {
		return fmt.Errorf("%s: echo: %w", v.where(), err)
	}
	if r, ok := resp.(*commands.EchoResponse); !ok || !bytes.Equal(r.Data, payload) {
		return fmt.Errorf("%s: echo: unexpected reply %T", v.where(), resp)
	}
	return nil
}

// Close implements vault.Vault: idle sessions are closed on the device; sessions in use are
// closed when they are given back.
func (v *Vault) Close() error {
	if !v.life.MarkClosed() {
		return nil
	}
	v.pool.drain()
	v.client.CloseIdleConnections()
	return nil
}

var (
	_ vault.Vault            = (*Vault)(nil)
	_ vault.ReadinessChecker = (*Vault)(nil)
	_ vault.Importer         = (*Vault)(nil)
	_ vault.Generator        = (*Vault)(nil)
	_ vault.Key              = (*Key)(nil)
)
