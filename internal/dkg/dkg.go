package dkg

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/ecadlabs/gotez/v2/crypt"

	"github.com/drand/kyber/share"
	kdkg "github.com/drand/kyber/share/dkg"
	"github.com/drand/kyber/sign"
	"github.com/drand/kyber/sign/schnorr"
)

// Options tune a ceremony run.
type Options struct {
	// Listener, when set, is the member's ceremony listener (already bound); otherwise Run
	// listens on the member's Address.
	Listener net.Listener
	// Wait bounds how long a member waits for the others to join (default 10 minutes: members
	// are started by hand on their own machines).
	Wait time.Duration
	// PhaseTimeout bounds each DKG phase when a member is silent (default 30 s); when every
	// member answers, the ceremony moves on as soon as it has everything.
	PhaseTimeout time.Duration
	// Log receives the ceremony's progress (never a secret).
	Log *slog.Logger
	// Client sends the member's messages (default: a client with a 10 s timeout).
	Client *http.Client

	// misbehave, for tests: changes this member's packets before they are sent.
	misbehave *misbehaviour
}

// misbehaviour makes a member cheat, for tests.
type misbehaviour struct {
	// badDealTo: the deals to these members carry a share that does not match the commitments.
	badDealTo []int
	// noJustification: the member does not answer complaints.
	noJustification bool
	// silent: the member joins, then sends nothing.
	silent bool
}

// Result is a member's outcome of a completed ceremony.
type Result struct {
	Ceremony  *Ceremony
	Index     int                  // this member's index
	Share     *crypt.BLSPrivateKey // this member's share: never logged, printed only as written
	Group     *crypt.BLSPublicKey  // the group key (the baker's tz4 key)
	Threshold int
	// Members are the qualified members, by index, with their share public keys: those the
	// coordinator's threshold vault lists.
	Members []ResultMember
	// Excluded are the members left out, with the reason.
	Excluded []Excluded
	// Complaints are the complaints raised against deals, answered or not.
	Complaints []Complaint
	// Transcript binds the ceremony, its run and everything the group key was made of; every
	// honest member prints the same one.
	Transcript [32]byte
	Duration   time.Duration
}

// ResultMember is a qualified member.
type ResultMember struct {
	Index       int
	URL         string
	SharePublic *crypt.BLSPublicKey
}

// Excluded is a member left out of the group.
type Excluded struct {
	Index  int
	Reason string
}

// Complaint is a member's complaint about another's deal.
type Complaint struct {
	Dealer, By int
}

const (
	kindHello         = "hello"
	kindDeal          = "deal"
	kindResponse      = "response"
	kindJustification = "justification"
	kindConfirm       = "confirm"
	maxEnvelope       = 1 << 20
	path              = "/dkg/v1/message"
)

// envelope is what members POST to each other: a message of one kind, encrypted to its
// recipient's identity key (ECIES) and signed with its sender's (Schnorr over G1), bound to the
// ceremony's hash.
type envelope struct {
	From int    `json:"from"`
	To   int    `json:"to"`
	Kind string `json:"kind"`
	Body []byte `json:"body"`
	Sig  []byte `json:"sig"`
}

func signedBytes(ceremony [32]byte, from, to int, kind string, body []byte) []byte {
	var b bytes.Buffer
	b.WriteString("signatory-dkg-envelope-v1\x00")
	b.Write(ceremony[:])
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(from)))
	b.Write(binary.BigEndian.AppendUint32(nil, uint32(to)))
	b.WriteString(kind)
	b.WriteByte(0)
	b.Write(body)
	return b.Bytes()
}

type hello struct {
	Random []byte `json:"random"`
}

type confirm struct {
	Group      []byte `json:"group"`
	Members    []int  `json:"members"`
	Transcript []byte `json:"transcript"`
}

// member is one run of a ceremony at one member.
type member struct {
	c       *Ceremony
	hash    [32]byte
	me      *Member
	id      *Identity
	opts    Options
	log     *slog.Logger
	auth    sign.Scheme
	sends   sync.WaitGroup
	mu      sync.Mutex
	inbox   map[string]map[int][]byte // kind → sender → plaintext (the first one)
	wake    chan struct{}             // closed (and replaced) when a message arrives
	equivoc map[int]bool              // senders that sent two different messages of a kind
}

// Run takes part in the ceremony c as the member whose identity is id, and returns its share
// once every qualified member has confirmed the same group key and transcript. On any error
// nothing is returned: the caller writes nothing, and the ceremony can be run again.
func Run(ctx context.Context, c *Ceremony, id *Identity, opts Options) (*Result, error) {
	start := time.Now()
	var me *Member
	for i := range c.Members {
		if c.Members[i].identity.Equal(id.Public) {
			me = &c.Members[i]
		}
	}
	if me == nil {
		return nil, fmt.Errorf("this identity (%s) is not a member of ceremony %q", id.Public, c.Name)
	}
	if opts.Wait <= 0 {
		opts.Wait = 10 * time.Minute
	}
	if opts.PhaseTimeout <= 0 {
		opts.PhaseTimeout = 30 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: 10 * time.Second}
	}
	m := &member{
		c: c, hash: c.Hash(), me: me, id: id, opts: opts,
		log:     opts.Log.With("ceremony", c.Name, "member", me.Index),
		auth:    schnorr.NewScheme(suite{}),
		inbox:   map[string]map[int][]byte{},
		wake:    make(chan struct{}),
		equivoc: map[int]bool{},
	}
	ln := opts.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", me.Address); err != nil {
			return nil, fmt.Errorf("ceremony listener: %w", err)
		}
	}
	srv := &http.Server{Handler: m, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	go srv.Serve(ln) //nolint:errcheck // Serve returns when Shutdown is called
	ctx, cancel := context.WithCancel(ctx)
	var res *Result
	defer func() {
		// After a success the others may still wait for this member's last messages (its
		// confirmation): deliver them, within a phase's time, then stop listening. After an
		// abort nothing needs delivering.
		if res != nil {
			done := make(chan struct{})
			go func() { m.sends.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(opts.PhaseTimeout):
			}
		}
		cancel()
		m.sends.Wait()
		sctx, scancel := context.WithTimeout(context.Background(), time.Second)
		defer scancel()
		srv.Shutdown(sctx) //nolint:errcheck // best effort: the ceremony's outcome is decided
		ln.Close()
	}()
	res, err := m.run(ctx)
	if err != nil {
		res = nil
		m.log.Error("ceremony aborted: nothing written", "error", err)
		return nil, err
	}
	res.Duration = time.Since(start)
	return res, nil
}

// ServeHTTP receives an envelope: it must come from a member, to this member, signed by the
// sender's identity and decrypt with ours. The first message of each kind from each sender is
// kept; a second, different one is refused and the sender marked as equivocating.
func (m *member) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != path {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	var env envelope
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxEnvelope)).Decode(&env); err != nil {
		http.Error(w, "bad envelope", http.StatusBadRequest)
		return
	}
	from, ok := m.c.member(env.From)
	if !ok || env.To != m.me.Index || from == m.me {
		http.Error(w, "not for this member", http.StatusBadRequest)
		return
	}
	switch env.Kind {
	case kindHello, kindDeal, kindResponse, kindJustification, kindConfirm:
	default:
		http.Error(w, "unknown kind", http.StatusBadRequest)
		return
	}
	pub, err := pointOfKey(from.identity)
	if err != nil {
		http.Error(w, "bad identity", http.StatusBadRequest)
		return
	}
	if m.auth.Verify(pub, signedBytes(m.hash, env.From, env.To, env.Kind, env.Body), env.Sig) != nil {
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	plain, err := decrypt(m.id.secret, env.Body)
	if err != nil {
		http.Error(w, "cannot decrypt", http.StatusBadRequest)
		return
	}
	m.mu.Lock()
	box := m.inbox[env.Kind]
	if box == nil {
		box = map[int][]byte{}
		m.inbox[env.Kind] = box
	}
	prev, seen := box[env.From]
	if !seen {
		box[env.From] = plain
		close(m.wake)
		m.wake = make(chan struct{})
	} else if !bytes.Equal(prev, plain) {
		m.equivoc[env.From] = true
	}
	m.mu.Unlock()
	if seen && !bytes.Equal(prev, plain) {
		m.log.Warn("a member sent two different messages", "from", env.From, "kind", env.Kind)
		http.Error(w, "a different message of this kind was received already", http.StatusConflict)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// send delivers a message to a member in the background, retrying until it is taken or ctx ends.
func (m *member) send(ctx context.Context, to *Member, kind string, plain []byte) {
	pub, err := pointOfKey(to.identity)
	if err != nil {
		m.log.Error("member identity", "to", to.Index, "error", err)
		return
	}
	body, err := encrypt(pub, plain)
	if err != nil {
		m.log.Error("encrypt", "to", to.Index, "error", err)
		return
	}
	sig, err := m.auth.Sign(m.id.secret, signedBytes(m.hash, m.me.Index, to.Index, kind, body))
	if err != nil {
		m.log.Error("sign", "error", err)
		return
	}
	data, _ := json.Marshal(envelope{From: m.me.Index, To: to.Index, Kind: kind, Body: body, Sig: sig})
	m.sends.Add(1)
	go func() {
		defer m.sends.Done()
		delay := 100 * time.Millisecond
		for {
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+to.Address+path, bytes.NewReader(data))
			resp, err := m.opts.Client.Do(req)
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode < 500 {
					if resp.StatusCode != http.StatusOK {
						m.log.Warn("a member refused a message", "to", to.Index, "kind", kind, "status", resp.StatusCode)
					}
					return
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(delay):
			}
			delay = min(2*delay, 2*time.Second)
		}
	}()
}

// broadcast sends a message to each of the given members but this one.
func (m *member) broadcast(ctx context.Context, to []*Member, kind string, plain []byte) {
	for _, t := range to {
		if t != m.me {
			m.send(ctx, t, kind, plain)
		}
	}
}

// collect waits until fn, called under the lock with the inbox, returns true, or until the
// deadline; it returns whether fn did.
func (m *member) collect(ctx context.Context, deadline time.Time, fn func() bool) bool {
	timer := time.NewTimer(time.Until(deadline))
	defer timer.Stop()
	for {
		m.mu.Lock()
		ok, wake := fn(), m.wake
		m.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-timer.C:
			m.mu.Lock()
			ok := fn()
			m.mu.Unlock()
			return ok
		case <-wake:
		}
	}
}

func (m *member) all() []*Member {
	out := make([]*Member, len(m.c.Members))
	for i := range m.c.Members {
		out[i] = &m.c.Members[i]
	}
	return out
}

func (m *member) run(ctx context.Context) (*Result, error) {
	t := m.c.Threshold

	// 1. Join: each member sends the others a fresh random value; the run's nonce is the hash of
	// all of them, so no message of an earlier run can be replayed into this one.
	m.log.Info("ceremony: waiting for the other members", "members", len(m.c.Members), "threshold", t)
	var mine [32]byte
	if _, err := rand.Read(mine[:]); err != nil {
		return nil, err
	}
	hb, _ := json.Marshal(hello{Random: mine[:]})
	m.broadcast(ctx, m.all(), kindHello, hb)
	m.collect(ctx, time.Now().Add(m.opts.Wait), func() bool { return len(m.inbox[kindHello]) == len(m.c.Members)-1 })
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	hellos := maps2(m.inbox[kindHello])
	m.mu.Unlock()
	hellos[m.me.Index] = hb
	var present []*Member
	var excluded []Excluded
	nonce := sha256.New()
	nonce.Write([]byte("signatory-dkg-nonce-v1\x00"))
	nonce.Write(m.hash[:])
	for _, mem := range m.all() {
		b, ok := hellos[mem.Index]
		var h hello
		if ok && json.Unmarshal(b, &h) == nil && len(h.Random) == 32 {
			present = append(present, mem)
			nonce.Write(binary.BigEndian.AppendUint32(nil, uint32(mem.Index)))
			nonce.Write(h.Random)
		} else {
			excluded = append(excluded, Excluded{mem.Index, "did not join"})
		}
	}
	if len(present) < t {
		return nil, fmt.Errorf("only %d of %d members joined: %d are needed for threshold %d (%s)", len(present), len(m.c.Members), t, t, describe(excluded))
	}
	session := nonce.Sum(nil)
	m.log.Info("ceremony: dealing", "joined", indices(present), "absent", excludedIndices(excluded))

	// 2. The DKG among the members present.
	var nodes []kdkg.Node
	for _, mem := range present {
		p, err := pointOfKey(mem.identity)
		if err != nil {
			return nil, err
		}
		nodes = append(nodes, kdkg.Node{Index: uint32(mem.Index - 1), Public: p})
	}
	conf := &kdkg.Config{
		Suite: suite{}, Longterm: m.id.secret, NewNodes: nodes, Threshold: t,
		Nonce: session, Auth: m.auth, FastSync: true,
	}
	board := &board{m: m, ctx: ctx, to: present, deals: make(chan kdkg.DealBundle, len(present)+1),
		resps: make(chan kdkg.ResponseBundle, len(present)+1), justs: make(chan kdkg.JustificationBundle, len(present)+1),
		dealHashes: map[int][]byte{}, complaints: map[Complaint]bool{}}
	pctx, pcancel := context.WithCancel(ctx)
	defer pcancel()
	phaser := kdkg.NewTimePhaserFunc(func(kdkg.Phase) {
		select {
		case <-pctx.Done():
		case <-time.After(m.opts.PhaseTimeout):
		}
	})
	proto, err := kdkg.NewProtocol(conf, board, phaser, false)
	if err != nil {
		return nil, fmt.Errorf("dkg: %w", err)
	}
	go board.pump(pctx)
	go phaser.Start()
	var out kdkg.OptionResult
	select {
	case out = <-proto.WaitEnd():
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if out.Error != nil {
		return nil, fmt.Errorf("dkg: %w", out.Error)
	}
	res := out.Result

	// 3. The qualified set and the outcome.
	qual := map[int]bool{}
	for _, n := range res.QUAL {
		qual[int(n.Index)+1] = true
	}
	if !qual[m.me.Index] {
		return nil, errors.New("this member was excluded from the qualified set")
	}
	if len(qual) < t {
		return nil, fmt.Errorf("only %d members qualified: %d are needed", len(qual), t)
	}
	commits := res.Key.Commits
	if len(commits) != t {
		return nil, fmt.Errorf("dkg: %d commitments for threshold %d", len(commits), t)
	}
	pubPoly := share.NewPubPoly(g1, g1.Point().Base(), commits)
	group, err := publicKeyOf(commits[0])
	if err != nil {
		return nil, err
	}
	secret, err := keyOfScalar(res.Key.Share.V)
	if err != nil {
		return nil, err
	}
	result := &Result{Ceremony: m.c, Index: m.me.Index, Share: secret, Group: group, Threshold: t}
	board.mu.Lock()
	for c := range board.complaints {
		result.Complaints = append(result.Complaints, c)
	}
	board.mu.Unlock()
	slices.SortFunc(result.Complaints, func(a, b Complaint) int { return (a.Dealer-b.Dealer)*1000 + a.By - b.By })
	var qualified []*Member
	transcript := sha256.New()
	transcript.Write([]byte("signatory-dkg-transcript-v1\x00"))
	transcript.Write(m.hash[:])
	transcript.Write(session)
	for _, mem := range present {
		if !qual[mem.Index] {
			excluded = append(excluded, Excluded{mem.Index, "its deal was refused (complaints it did not answer, or no deal)"})
			continue
		}
		qualified = append(qualified, mem)
		pk, err := publicKeyOf(pubPoly.Eval(mem.Index - 1).V)
		if err != nil {
			return nil, err
		}
		result.Members = append(result.Members, ResultMember{Index: mem.Index, URL: mem.URL, SharePublic: pk})
		board.mu.Lock()
		dh := board.dealHashes[mem.Index]
		board.mu.Unlock()
		transcript.Write(binary.BigEndian.AppendUint32(nil, uint32(mem.Index)))
		transcript.Write(dh)
	}
	slices.SortFunc(excluded, func(a, b Excluded) int { return a.Index - b.Index })
	result.Excluded = excluded
	for _, c := range commits {
		cb, _ := c.MarshalBinary()
		transcript.Write(cb)
	}
	copy(result.Transcript[:], transcript.Sum(nil))
	if mine, ok := memberKey(result, m.me.Index); !ok || !secret.Public().Equal(mine) {
		return nil, errors.New("dkg: this member's share does not match the group polynomial")
	}

	// 4. Confirm: nothing is written until every qualified member reports the same group key,
	// members and transcript (a member that dealt differently to different members would show
	// here).
	groupBytes, _ := commits[0].MarshalBinary()
	cb, _ := json.Marshal(confirm{Group: groupBytes, Members: indices(qualified), Transcript: result.Transcript[:]})
	m.broadcast(ctx, qualified, kindConfirm, cb)
	m.log.Info("ceremony: confirming", "group", group.Hash().String(), "transcript", fmt.Sprintf("%x", result.Transcript))
	deadline := time.Now().Add(2 * m.opts.PhaseTimeout)
	m.collect(ctx, deadline, func() bool {
		for _, q := range qualified {
			if _, ok := m.inbox[kindConfirm][q.Index]; !ok && q != m.me {
				return false
			}
		}
		return true
	})
	m.mu.Lock()
	confirms := maps2(m.inbox[kindConfirm])
	equivocated := maps2(m.equivoc)
	m.mu.Unlock()
	for _, q := range qualified {
		if q == m.me {
			continue
		}
		if equivocated[q.Index] {
			return nil, fmt.Errorf("member %d sent two different messages of one kind", q.Index)
		}
		b, ok := confirms[q.Index]
		if !ok {
			return nil, fmt.Errorf("member %d did not confirm the outcome", q.Index)
		}
		if !bytes.Equal(b, cb) {
			return nil, fmt.Errorf("member %d reports a different outcome (group key, members or transcript)", q.Index)
		}
	}
	m.log.Info("ceremony: complete", "group", group.Hash().String(), "members", indices(qualified), "excluded", excludedIndices(excluded), "complaints", len(result.Complaints))
	return result, nil
}

func memberKey(r *Result, index int) (*crypt.BLSPublicKey, bool) {
	for _, mem := range r.Members {
		if mem.Index == index {
			return mem.SharePublic, true
		}
	}
	return nil, false
}

func maps2[K comparable, V any](in map[K]V) map[K]V {
	out := make(map[K]V, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func indices(ms []*Member) []int {
	out := make([]int, len(ms))
	for i, mem := range ms {
		out[i] = mem.Index
	}
	return out
}

func excludedIndices(ex []Excluded) []int {
	out := make([]int, len(ex))
	for i, e := range ex {
		out[i] = e.Index
	}
	return out
}

func describe(ex []Excluded) string {
	var b bytes.Buffer
	for i, e := range ex {
		if i > 0 {
			b.WriteString("; ")
		}
		fmt.Fprintf(&b, "member %d %s", e.Index, e.Reason)
	}
	return b.String()
}
