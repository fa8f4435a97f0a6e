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
	"strconv"
	"strings"
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
	// OnPhase, when set, is told each step as the member enters it: "join", "deal", "confirm",
	// then "complete" or "aborted" (for metrics).
	OnPhase func(phase string)

	// OldShare is this member's share of the previous group, in a resharing.
	OldShare *crypt.BLSPrivateKey

	// misbehave, for tests: changes this member's packets before they are sent.
	misbehave *misbehaviour
}

// misbehaviour makes a member cheat or stop, for tests of the ceremony's failure handling.
type misbehaviour struct {
	// hold: the member stops before this step ("deal" or "confirm") until its context ends,
	// after logging "ceremony: holding before <step>".
	hold string
	// badDealTo: the deals to these members carry a share that does not match the commitments.
	badDealTo []int
	// noJustification: the member does not answer complaints.
	noJustification bool
	// silent: the member joins, then sends nothing.
	silent bool
}

// Misbehave makes this member cheat or stop, for tests of the ceremony's failure handling
// (`signatory threshold dkg --misbehave`, a hidden flag): spec is a ;-separated list of
// "bad-deal-to=<index>,…" (deals to those members that do not match the commitments),
// "no-justification" (complaints unanswered), "silent" (joins, then sends nothing) and
// "hold=deal|confirm" (stops before that step). A cheating member harms only the ceremony it is
// in, which the others detect.
func (o *Options) Misbehave(spec string) error {
	mis := &misbehaviour{}
	for _, part := range strings.Split(spec, ";") {
		key, value, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch key {
		case "bad-deal-to":
			for _, v := range strings.Split(value, ",") {
				i, err := strconv.Atoi(v)
				if err != nil {
					return fmt.Errorf("misbehave: bad-deal-to=%s", value)
				}
				mis.badDealTo = append(mis.badDealTo, i)
			}
		case "no-justification":
			mis.noJustification = true
		case "silent":
			mis.silent = true
		case "hold":
			if value != "deal" && value != "confirm" {
				return fmt.Errorf("misbehave: hold=%s: deal or confirm", value)
			}
			mis.hold = value
		case "":
		default:
			return fmt.Errorf("misbehave: unknown %q", key)
		}
	}
	o.misbehave = mis
	return nil
}

// holdBefore stops the member before step when told to (tests), until ctx ends.
func (m *member) holdBefore(ctx context.Context, step string) error {
	if mis := m.opts.misbehave; mis != nil && mis.hold == step {
		m.sends.Wait() // what it sent before has arrived: it stops between two steps
		m.log.Warn("ceremony: holding before " + step)
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
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
	// Leaving: this member was only in the previous group of a resharing. It holds no share
	// of the new group (Share is nil, Members have no share keys) and must erase its old one.
	Leaving bool
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

// participant is a member of the ceremony's new group, of the previous group (a resharing), or
// of both: one identity, one address. Envelopes name participants by their ID.
type participant struct {
	ID       int // 1 … : position among the participants
	OldIndex int // index in the previous group (0: not in it)
	NewIndex int // index in the new group (0: leaving)
	URL      string
	Address  string
	identity *crypt.BLSPublicKey
	oldShare *crypt.BLSPublicKey
}

// participants lists the ceremony's participants: the new group's members by index, then the
// leaving members of the previous group by index.
func participants(c *Ceremony) []*participant {
	var out []*participant
	byIdentity := map[string]*participant{}
	for _, m := range c.Members {
		p := &participant{NewIndex: m.Index, URL: m.URL, Address: m.Address, identity: m.identity}
		out = append(out, p)
		byIdentity[m.Identity] = p
	}
	if c.Previous != nil {
		for _, m := range c.Previous.Members {
			p := byIdentity[m.Identity]
			if p == nil {
				p = &participant{Address: m.Address, identity: m.identity}
				out = append(out, p)
			}
			p.OldIndex, p.oldShare = m.Index, m.share
		}
	}
	for i, p := range out {
		p.ID = i + 1
	}
	return out
}

// member is one run of a ceremony at one participant.
type member struct {
	c       *Ceremony
	hash    [32]byte
	all     []*participant
	me      *participant
	id      *Identity
	opts    Options
	log     *slog.Logger
	auth    sign.Scheme
	sends   sync.WaitGroup
	mu      sync.Mutex
	inbox   map[string]map[int][]byte // kind → sender's ID → plaintext (the first one)
	wake    chan struct{}             // closed (and replaced) when a message arrives
	equivoc map[int]bool              // senders that sent two different messages of a kind
}

// Run takes part in the ceremony c as the participant whose identity is id, and returns its
// share once every qualified member has confirmed the same group key and transcript. In a
// resharing, a member of the previous group gives its share in opts.OldShare; a member that
// leaves gets a Result without a share. On any error nothing is returned: the caller writes
// nothing, and the ceremony can be run again.
func Run(ctx context.Context, c *Ceremony, id *Identity, opts Options) (*Result, error) {
	start := time.Now()
	all := participants(c)
	var me *participant
	for _, p := range all {
		if p.identity.Equal(id.Public) {
			me = p
		}
	}
	if me == nil {
		return nil, fmt.Errorf("this identity (%s) is not a member of ceremony %q", id.Public, c.Name)
	}
	if c.Previous != nil && me.OldIndex != 0 {
		if opts.OldShare == nil {
			return nil, fmt.Errorf("this identity is member %d of the previous group: its share is needed to deal it again", me.OldIndex)
		}
		if !opts.OldShare.Public().Equal(me.oldShare) {
			return nil, fmt.Errorf("the share given is not member %d's share of the previous group (%s)", me.OldIndex, me.oldShare.Hash())
		}
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
		c: c, hash: c.Hash(), all: all, me: me, id: id, opts: opts,
		log:     opts.Log.With("ceremony", c.Name, "participant", me.ID, "new_index", me.NewIndex, "old_index", me.OldIndex),
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
		m.phase("aborted")
		m.log.Error("ceremony aborted: nothing written", "error", err, "duration", time.Since(start))
		return nil, err
	}
	res.Duration = time.Since(start)
	m.phase("complete")
	return res, nil
}

func (m *member) phase(p string) {
	if m.opts.OnPhase != nil {
		m.opts.OnPhase(p)
	}
}

func (m *member) participant(id int) (*participant, bool) {
	if id < 1 || id > len(m.all) {
		return nil, false
	}
	return m.all[id-1], true
}

// ServeHTTP receives an envelope: it must come from a participant, to this one, signed by the
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
	from, ok := m.participant(env.From)
	if !ok || env.To != m.me.ID || from == m.me {
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
		m.log.Warn("a participant sent two different messages", "from", env.From, "kind", env.Kind)
		http.Error(w, "a different message of this kind was received already", http.StatusConflict)
		return
	}
	w.WriteHeader(http.StatusOK)
}

// send delivers a message to a participant in the background, retrying until it is taken or ctx
// ends.
func (m *member) send(ctx context.Context, to *participant, kind string, plain []byte) {
	pub, err := pointOfKey(to.identity)
	if err != nil {
		m.log.Error("participant identity", "to", to.ID, "error", err)
		return
	}
	body, err := encrypt(pub, plain)
	if err != nil {
		m.log.Error("encrypt", "to", to.ID, "error", err)
		return
	}
	sig, err := m.auth.Sign(m.id.secret, signedBytes(m.hash, m.me.ID, to.ID, kind, body))
	if err != nil {
		m.log.Error("sign", "error", err)
		return
	}
	data, _ := json.Marshal(envelope{From: m.me.ID, To: to.ID, Kind: kind, Body: body, Sig: sig})
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
						m.log.Warn("a participant refused a message", "to", to.ID, "kind", kind, "status", resp.StatusCode)
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

// broadcast sends a message to each of the given participants but this one.
func (m *member) broadcast(ctx context.Context, to []*participant, kind string, plain []byte) {
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

func (m *member) run(ctx context.Context) (*Result, error) {
	t := m.c.Threshold
	prev := m.c.Previous

	// 1. Join: each participant sends the others a fresh random value; the run's nonce is the
	// hash of all of them, so no message of an earlier run can be replayed into this one.
	m.phase("join")
	m.log.Info("ceremony: waiting for the other participants", "participants", len(m.all), "threshold", t, "resharing", prev != nil)
	var mine [32]byte
	if _, err := rand.Read(mine[:]); err != nil {
		return nil, err
	}
	hb, _ := json.Marshal(hello{Random: mine[:]})
	m.broadcast(ctx, m.all, kindHello, hb)
	m.collect(ctx, time.Now().Add(m.opts.Wait), func() bool { return len(m.inbox[kindHello]) == len(m.all)-1 })
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	hellos := cloneMap(m.inbox[kindHello])
	m.mu.Unlock()
	hellos[m.me.ID] = hb
	var present []*participant
	var excluded []Excluded
	nonce := sha256.New()
	nonce.Write([]byte("signatory-dkg-nonce-v1\x00"))
	nonce.Write(m.hash[:])
	var newPresent, oldPresent int
	for _, p := range m.all {
		b, ok := hellos[p.ID]
		var h hello
		if ok && json.Unmarshal(b, &h) == nil && len(h.Random) == 32 {
			present = append(present, p)
			nonce.Write(binary.BigEndian.AppendUint32(nil, uint32(p.ID)))
			nonce.Write(h.Random)
			if p.NewIndex != 0 {
				newPresent++
			}
			if p.OldIndex != 0 {
				oldPresent++
			}
		} else if p.NewIndex != 0 {
			excluded = append(excluded, Excluded{p.NewIndex, "did not join"})
		}
	}
	if newPresent < t {
		return nil, fmt.Errorf("only %d of %d members joined: %d are needed for threshold %d (%s)", newPresent, len(m.c.Members), t, t, describe(excluded))
	}
	if prev != nil && oldPresent < prev.Threshold {
		return nil, fmt.Errorf("only %d of the previous group's %d members joined: %d are needed to deal its key again", oldPresent, len(prev.Members), prev.Threshold)
	}
	session := nonce.Sum(nil)
	m.log.Info("ceremony: dealing", "joined", len(present), "absent", excludedIndices(excluded))

	// 2. The DKG (or the resharing) among the participants present.
	if err := m.holdBefore(ctx, "deal"); err != nil {
		return nil, err
	}
	m.phase("deal")
	conf := &kdkg.Config{Suite: suite{}, Longterm: m.id.secret, Threshold: t, Nonce: session, Auth: m.auth, FastSync: true}
	for _, p := range present {
		pt, err := pointOfKey(p.identity)
		if err != nil {
			return nil, err
		}
		if p.NewIndex != 0 {
			conf.NewNodes = append(conf.NewNodes, kdkg.Node{Index: uint32(p.NewIndex - 1), Public: pt})
		}
		if p.OldIndex != 0 {
			conf.OldNodes = append(conf.OldNodes, kdkg.Node{Index: uint32(p.OldIndex - 1), Public: pt})
		}
	}
	if prev != nil {
		conf.OldThreshold = prev.Threshold
		if m.me.OldIndex != 0 {
			conf.Share = &kdkg.DistKeyShare{Commits: m.c.oldCommits, Share: &share.PriShare{I: m.me.OldIndex - 1, V: scalarOfKey(m.opts.OldShare)}}
		} else {
			conf.PublicCoeffs = m.c.oldCommits
		}
	}
	board := &board{m: m, ctx: ctx, to: present, deals: make(chan kdkg.DealBundle, len(present)+1),
		resps: make(chan kdkg.ResponseBundle, len(present)+1), justs: make(chan kdkg.JustificationBundle, len(present)+1),
		complaints: map[Complaint]bool{}}
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
	if m.me.NewIndex == 0 {
		return m.leave(ctx, proto, board, present)
	}
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
	if res == nil {
		return nil, errors.New("dkg: no outcome")
	}

	// 3. The qualified set and the outcome.
	qual := map[int]bool{}
	for _, n := range res.QUAL {
		qual[int(n.Index)+1] = true
	}
	if !qual[m.me.NewIndex] {
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
	if prev != nil && !group.Equal(prev.group) {
		return nil, fmt.Errorf("dkg: the resharing came to another group key (%s, not %s)", group.Hash(), prev.group.Hash())
	}
	secret, err := keyOfScalar(res.Key.Share.V)
	if err != nil {
		return nil, err
	}
	result := &Result{Ceremony: m.c, Index: m.me.NewIndex, Share: secret, Group: group, Threshold: t}
	board.mu.Lock()
	for c := range board.complaints {
		result.Complaints = append(result.Complaints, c)
	}
	board.mu.Unlock()
	slices.SortFunc(result.Complaints, func(a, b Complaint) int { return (a.Dealer-b.Dealer)*1000 + a.By - b.By })
	var qualified []*participant
	for _, p := range present {
		if p.NewIndex == 0 {
			continue
		}
		if !qual[p.NewIndex] {
			excluded = append(excluded, Excluded{p.NewIndex, "its deal was refused (complaints it did not answer, or no deal)"})
			continue
		}
		qualified = append(qualified, p)
		pk, err := publicKeyOf(pubPoly.Eval(p.NewIndex - 1).V)
		if err != nil {
			return nil, err
		}
		result.Members = append(result.Members, ResultMember{Index: p.NewIndex, URL: p.URL, SharePublic: pk})
	}
	slices.SortFunc(excluded, func(a, b Excluded) int { return a.Index - b.Index })
	result.Excluded = excluded
	// The transcript: the ceremony, this run, the qualified members and the group's public
	// polynomial, from which every share key follows. Members that used different deals would
	// come to different polynomials.
	transcript := sha256.New()
	transcript.Write([]byte("signatory-dkg-transcript-v1\x00"))
	transcript.Write(m.hash[:])
	transcript.Write(session)
	for _, p := range qualified {
		transcript.Write(binary.BigEndian.AppendUint32(nil, uint32(p.NewIndex)))
	}
	for _, c := range commits {
		cb, _ := c.MarshalBinary()
		transcript.Write(cb)
	}
	copy(result.Transcript[:], transcript.Sum(nil))
	if mine, ok := memberKey(result, m.me.NewIndex); !ok || !secret.Public().Equal(mine) {
		return nil, errors.New("dkg: this member's share does not match the group polynomial")
	}

	// 4. Confirm: nothing is written until every qualified member reports the same group key,
	// members and transcript. Leaving members wait for these too.
	groupBytes, _ := commits[0].MarshalBinary()
	var qualIdx []int
	for _, p := range qualified {
		qualIdx = append(qualIdx, p.NewIndex)
	}
	cb, _ := json.Marshal(confirm{Group: groupBytes, Members: qualIdx, Transcript: result.Transcript[:]})
	if err := m.holdBefore(ctx, "confirm"); err != nil {
		return nil, err
	}
	m.phase("confirm")
	m.broadcast(ctx, present, kindConfirm, cb)
	m.log.Info("ceremony: confirming", "group", group.Hash().String(), "transcript", fmt.Sprintf("%x", result.Transcript))
	if err := m.confirmed(ctx, qualified, cb); err != nil {
		return nil, err
	}
	m.log.Info("ceremony: complete", "group", group.Hash().String(), "members", qualIdx, "excluded", excludedIndices(excluded), "complaints", len(result.Complaints))
	return result, nil
}

// confirmed waits for the confirmations of every participant in from and checks each is want
// (nil: all the same as each other), returning the agreed one.
func (m *member) confirmed(ctx context.Context, from []*participant, want []byte) error {
	m.collect(ctx, time.Now().Add(2*m.opts.PhaseTimeout), func() bool {
		for _, q := range from {
			if _, ok := m.inbox[kindConfirm][q.ID]; !ok && q != m.me {
				return false
			}
		}
		return true
	})
	m.mu.Lock()
	confirms := cloneMap(m.inbox[kindConfirm])
	equivocated := cloneMap(m.equivoc)
	m.mu.Unlock()
	for _, q := range from {
		if q == m.me {
			continue
		}
		if equivocated[q.ID] {
			return fmt.Errorf("member %d sent two different messages of one kind", q.NewIndex)
		}
		b, ok := confirms[q.ID]
		if !ok {
			return fmt.Errorf("member %d did not confirm the outcome", q.NewIndex)
		}
		if !bytes.Equal(b, want) {
			return fmt.Errorf("member %d reports a different outcome (group key, members or transcript)", q.NewIndex)
		}
	}
	return nil
}

// leave is a resharing's end for a member of the previous group only: it has dealt (and
// answered complaints); it waits for every new member present to confirm the same outcome, with
// the group key unchanged, and returns a Result without a share.
func (m *member) leave(ctx context.Context, proto *kdkg.Protocol, b *board, present []*participant) (*Result, error) {
	m.phase("confirm")
	var newMembers []*participant
	for _, p := range present {
		if p.NewIndex != 0 {
			newMembers = append(newMembers, p)
		}
	}
	// The new members confirm after the justification phase at the latest.
	var agreed []byte
	m.collect(ctx, time.Now().Add(5*m.opts.PhaseTimeout), func() bool {
		for _, q := range newMembers {
			if _, ok := m.inbox[kindConfirm][q.ID]; !ok {
				return false
			}
		}
		return true
	})
	m.mu.Lock()
	confirms := cloneMap(m.inbox[kindConfirm])
	m.mu.Unlock()
	var qualified []*participant
	for _, q := range newMembers {
		if b, ok := confirms[q.ID]; ok && agreed == nil {
			agreed = b
		}
	}
	if agreed == nil {
		return nil, errors.New("no new member confirmed an outcome")
	}
	var c confirm
	if err := json.Unmarshal(agreed, &c); err != nil {
		return nil, err
	}
	for _, q := range newMembers {
		if slices.Contains(c.Members, q.NewIndex) {
			qualified = append(qualified, q)
		}
	}
	if err := m.confirmed(ctx, qualified, agreed); err != nil {
		return nil, err
	}
	gp, err := pointOfKey(m.c.Previous.group)
	if err != nil {
		return nil, err
	}
	if want, _ := gp.MarshalBinary(); !bytes.Equal(c.Group, want) {
		return nil, errors.New("the new members report another group key")
	}
	res := &Result{Ceremony: m.c, Group: m.c.Previous.group, Threshold: m.c.Threshold, Leaving: true}
	copy(res.Transcript[:], c.Transcript)
	for _, q := range qualified {
		res.Members = append(res.Members, ResultMember{Index: q.NewIndex, URL: q.URL})
	}
	m.log.Info("ceremony: complete; this member has left the group: erase its share", "group", res.Group.Hash().String())
	return res, nil
}

func memberKey(r *Result, index int) (*crypt.BLSPublicKey, bool) {
	for _, mem := range r.Members {
		if mem.Index == index {
			return mem.SharePublic, true
		}
	}
	return nil, false
}

// cloneMap copies a map; unlike maps.Clone it never returns nil (the copies are written to).
func cloneMap[K comparable, V any](in map[K]V) map[K]V {
	out := make(map[K]V, len(in))
	for k, v := range in {
		out[k] = v
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
