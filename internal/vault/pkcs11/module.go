package pkcs11

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	p11 "github.com/miekg/pkcs11"
)

// minReinitInterval spaces re-initialisations of a module, so that a token that stays away (or a
// key deleted from it) does not turn every request into a C_Finalize/C_Initialize cycle.
const minReinitInterval = 500 * time.Millisecond

// module is one loaded PKCS#11 library. A library can be initialised only once per process, so
// every vault naming the same file shares one module; it stays loaded (never dlclosed) and is
// finalised when its last vault closes.
type module struct {
	path string
	ctx  *p11.Ctx
	refs int // guarded by registry.mu

	// mu is read-locked around every call into the library and write-locked to (re)initialise,
	// so C_Finalize never runs while another goroutine is inside the library.
	mu       sync.RWMutex
	gen      uint64 // bumped by each C_Initialize: sessions and handles of older gens are dead
	ready    bool   // the last C_Initialize succeeded
	stale    bool   // a call met a lost token or module: re-initialise before the next one
	lastInit time.Time
	initErr  error
	info     p11.Info

	// writeMu serialises object creation (import, generate): SoftHSM2's file store is known to
	// fail concurrent C_CreateObject/C_GenerateKeyPair calls, and no token needs them parallel.
	writeMu sync.Mutex
}

var registry = struct {
	sync.Mutex
	m map[string]*module
}{m: map[string]*module{}}

// acquireModule loads and initialises the library at path, or shares the one already loaded.
func acquireModule(path string) (*module, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(abs); err != nil {
		return nil, fmt.Errorf("PKCS#11 module %s: %w", abs, errors.Unwrap(err))
	} else if fi.IsDir() {
		return nil, fmt.Errorf("PKCS#11 module %s is a directory, not a library", abs)
	}
	key := abs // modules are shared by their real file
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		key = real
	}
	registry.Lock()
	defer registry.Unlock()
	m := registry.m[key]
	if m == nil {
		ctx := p11.New(abs)
		if ctx == nil {
			return nil, fmt.Errorf("PKCS#11 module %s cannot be loaded: not a shared library exporting C_GetFunctionList, or a dependency is missing", abs)
		}
		m = &module{path: abs, ctx: ctx}
		registry.m[key] = m
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.ready {
		if err := m.initLocked(); err != nil {
			return nil, err
		}
	}
	m.refs++
	return m, nil
}

// release drops a reference; the last one finalises the library.
func (m *module) release() {
	registry.Lock()
	defer registry.Unlock()
	m.refs--
	if m.refs > 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ready {
		_ = m.ctx.Finalize()
		m.ready = false
		m.gen++
	}
}

// initLocked runs C_Initialize; m.mu is held.
func (m *module) initLocked() error {
	m.lastInit = time.Now()
	m.gen++
	err := m.ctx.Initialize()
	if rvIs(err, p11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		err = nil // initialised by another library binding in this process
	}
	if err != nil {
		m.ready = false
		m.initErr = fmt.Errorf("PKCS#11 module %s: C_Initialize failed (%s): check the module's own configuration "+
			"(SOFTHSM2_CONF and its token directory for SoftHSM2, the vendor client's config for an HSM) and that the device is reachable",
			m.path, rvText(err))
		return m.initErr
	}
	m.ready, m.stale, m.initErr = true, false, nil
	if info, err := m.ctx.GetInfo(); err == nil {
		m.info = info
	}
	return nil
}

// state returns the current generation and whether the module must be (re)initialised first.
func (m *module) state() (gen uint64, needInit bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.gen, !m.ready || m.stale
}

// markStale asks for a re-initialisation before the next call, unless one already happened
// since generation gen.
func (m *module) markStale(gen uint64) {
	m.mu.RLock()
	current := m.gen == gen && m.ready
	m.mu.RUnlock()
	if !current {
		return
	}
	m.mu.Lock()
	if m.gen == gen {
		m.stale = true
	}
	m.mu.Unlock()
}

// reinit finalises and initialises the library again if it is stale or not initialised, at most
// once per minReinitInterval. It returns the error that keeps the module unusable, if any.
func (m *module) reinit(log *slog.Logger) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ready && !m.stale {
		return nil // healthy, or someone else re-initialised it already
	}
	if time.Since(m.lastInit) < minReinitInterval {
		if m.initErr != nil {
			return m.initErr
		}
		if m.ready {
			return nil // too soon to cycle a working module again; the caller retries on it
		}
	}
	if m.ready {
		_ = m.ctx.Finalize()
		m.ready = false
	}
	err := m.initLocked()
	if log != nil {
		if err != nil {
			log.Error("PKCS#11 module re-initialisation failed", "module", m.path, "err", err)
		} else {
			log.Warn("PKCS#11 module re-initialised after a lost token or session", "module", m.path)
		}
	}
	return err
}

// errNotReady is returned for a call on a module that could not be initialised.
func (m *module) errNotReady() error {
	if m.initErr != nil {
		return m.initErr
	}
	return fmt.Errorf("PKCS#11 module %s is not initialised", m.path)
}

// call runs fn with the library read-locked; gen is the generation fn's handles belong to.
func (m *module) call(fn func(ctx *p11.Ctx, gen uint64) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.ready {
		return m.errNotReady()
	}
	return fn(m.ctx, m.gen)
}

// vendor names the library for messages, e.g. "SoftHSM 2.6", or "" before C_GetInfo.
func (m *module) vendor() string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.info.ManufacturerID == "" {
		return ""
	}
	return fmt.Sprintf("%s %d.%d", strings.TrimSpace(m.info.ManufacturerID), m.info.LibraryVersion.Major, m.info.LibraryVersion.Minor)
}

// rvIs reports whether err is the PKCS#11 return value rv.
func rvIs(err error, rv uint) bool {
	var e p11.Error
	return errors.As(err, &e) && uint(e) == rv
}

// rvText is an error's text without the binding's "pkcs11: 0x..:" prefix.
func rvText(err error) string {
	var e p11.Error
	if errors.As(err, &e) {
		s := e.Error()
		if i := strings.LastIndex(s, ": "); i >= 0 {
			return s[i+2:]
		}
		return s
	}
	return err.Error()
}

// sessionLost reports whether err means the session is unusable (drop it, open another).
func sessionLost(err error) bool {
	for _, rv := range []uint{p11.CKR_SESSION_HANDLE_INVALID, p11.CKR_SESSION_CLOSED,
		p11.CKR_USER_NOT_LOGGED_IN, p11.CKR_OPERATION_ACTIVE} {
		if rvIs(err, rv) {
			return true
		}
	}
	return handleLost(err) || deviceLost(err)
}

// handleLost reports whether err means an object handle is no longer valid.
func handleLost(err error) bool {
	return rvIs(err, p11.CKR_OBJECT_HANDLE_INVALID) || rvIs(err, p11.CKR_KEY_HANDLE_INVALID)
}

// deviceLost reports whether err means the token or the library itself went away, which calls
// for a re-initialisation.
func deviceLost(err error) bool {
	for _, rv := range []uint{p11.CKR_DEVICE_REMOVED, p11.CKR_DEVICE_ERROR, p11.CKR_TOKEN_NOT_PRESENT,
		p11.CKR_TOKEN_NOT_RECOGNIZED, p11.CKR_SLOT_ID_INVALID, p11.CKR_CRYPTOKI_NOT_INITIALIZED,
		p11.CKR_GENERAL_ERROR, p11.CKR_DEVICE_MEMORY} {
		if rvIs(err, rv) {
			return true
		}
	}
	return false
}
