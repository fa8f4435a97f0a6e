package servers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Postgres is a scratch PostgreSQL server: user "test" with trust authentication, database
// "postgres", listening on 127.0.0.1 only.
type Postgres struct {
	t    testing.TB
	bin  string // directory holding initdb and postgres
	dir  string // removed at cleanup
	cred *syscall.Credential
	port int

	mu   sync.Mutex
	proc *process
}

// pgBinDir finds the directory holding initdb and postgres: $SIGNATORY_PG_BIN, the newest
// /usr/lib/postgresql/<version>/bin, or the directory of initdb on $PATH.
func pgBinDir() string {
	if d := os.Getenv("SIGNATORY_PG_BIN"); d != "" {
		return d
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int {
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	if p, err := exec.LookPath("initdb"); err == nil {
		return filepath.Dir(p)
	}
	return ""
}

// StartPostgres initialises a cluster in a temporary directory and starts it on a free port. The
// server is stopped and its directory removed when t ends. PostgreSQL refuses to run as root, so
// under root the server runs as the "postgres" user.
func StartPostgres(t testing.TB) *Postgres {
	t.Helper()
	bin := pgBinDir()
	if _, err := os.Stat(filepath.Join(bin, "postgres")); bin == "" || err != nil {
		missing(t, "PostgreSQL not found (no initdb and postgres in $SIGNATORY_PG_BIN, /usr/lib/postgresql/*/bin or $PATH)")
	}
	p := &Postgres{t: t, bin: bin}
	base := ""
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			missing(t, "running as root and there is no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		base = "/tmp" // the postgres user must reach the directory; $TMPDIR may be private to root
	}
	dir, err := os.MkdirTemp(base, "signatory-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p.dir = dir
	t.Cleanup(func() {
		p.Stop()
		os.RemoveAll(dir)
	})
	if p.cred != nil {
		if err := os.Chown(dir, int(p.cred.Uid), int(p.cred.Gid)); err != nil {
			t.Fatal(err)
		}
	}
	initdb := p.command(filepath.Join(bin, "initdb"), "-D", p.dataDir(), "-U", "test", "--auth=trust",
		"--no-sync", "-E", "UTF8", "--locale=C")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	for attempt := 0; ; attempt++ {
		p.port = freePorts(t, 1)[0]
		err := p.start()
		if err == nil {
			return p
		}
		if attempt < 3 && addrInUse(err) {
			continue
		}
		t.Fatal(err)
	}
}

func (p *Postgres) dataDir() string { return filepath.Join(p.dir, "data") }

func (p *Postgres) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if p.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: p.cred}
	}
	return cmd
}

// DSN returns the URL of the server's "postgres" database as user "test".
func (p *Postgres) DSN() string {
	return fmt.Sprintf("postgres://test@127.0.0.1:%d/postgres?sslmode=disable", p.port)
}

// Port returns the TCP port the server listens on.
func (p *Postgres) Port() int { return p.port }

func (p *Postgres) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		return nil
	}
	cmd := p.command(filepath.Join(p.bin, "postgres"), "-D", p.dataDir(), "-p", strconv.Itoa(p.port),
		"-k", p.dir, "-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200")
	proc, err := startProcess(cmd, syscall.SIGQUIT) // SIGQUIT: immediate shutdown
	if err != nil {
		return fmt.Errorf("starting postgres: %w", err)
	}
	err = waitReady(proc, "postgres", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, p.DSN())
		if err != nil {
			return err
		}
		defer c.Close(ctx)
		return c.Ping(ctx)
	})
	if err != nil {
		proc.stop(syscall.SIGQUIT)
		return err
	}
	p.proc = proc
	return nil
}

// Start restarts a stopped server on the same port and data; it is a no-op when it runs.
func (p *Postgres) Start() {
	p.t.Helper()
	if err := p.start(); err != nil {
		p.t.Fatal(err)
	}
}

// Stop shuts the server down ("fast" mode: open sessions are cut, their transactions rolled back)
// and waits for it to exit. It is a no-op when the server is not running.
func (p *Postgres) Stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		p.proc.stop(syscall.SIGINT)
		p.proc = nil
	}
}

// Log returns the end of the server's output, for failure messages.
func (p *Postgres) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return ""
	}
	return p.proc.out.tail(4000)
}
