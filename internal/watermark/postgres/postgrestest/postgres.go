// Package postgrestest runs a scratch PostgreSQL server for tests: a real postgres process on a
// free loopback port (a testdaemon.Service), with its cluster in a temporary directory that is
// removed at the end of the test.
//
// When PostgreSQL is not installed the test is testdaemon.Unavailable: skipped, or failed where
// the test servers are required (CI).
package postgrestest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/signatory-go/signatory/internal/testdaemon"
)

// BinEnv overrides the directory holding initdb and postgres.
const BinEnv = "SIGNATORY_PG_BIN"

// Server is a scratch PostgreSQL server: user "test" with trust authentication, database
// "postgres", listening on 127.0.0.1 only. Stop shuts it down in "fast" mode (open sessions are
// cut, their transactions rolled back); Start (after Stop) and Restart bring it back on the same
// port and data; both come from testdaemon.Service.
type Server struct {
	*testdaemon.Service
	DSN string // postgres://test@127.0.0.1:port/postgres?sslmode=disable
}

// binDir finds the directory holding initdb and postgres: $SIGNATORY_PG_BIN, the newest
// /usr/lib/postgresql/<version>/bin, or the directory of initdb on $PATH.
func binDir() string {
	if d := os.Getenv(BinEnv); d != "" {
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

// Start initialises a cluster in a temporary directory and starts the server on a free port. The
// server is stopped and its directory removed when tb ends. PostgreSQL refuses to run as root, so
// under root the server runs as the "postgres" user.
func Start(tb testing.TB) *Server {
	tb.Helper()
	bin := binDir()
	if _, err := os.Stat(filepath.Join(bin, "postgres")); bin == "" || err != nil {
		testdaemon.Unavailable(tb, "PostgreSQL not found (no initdb and postgres in $%s, /usr/lib/postgresql/*/bin or $PATH)", BinEnv)
	}
	var cred *syscall.Credential
	base := ""
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			testdaemon.Unavailable(tb, "running as root and there is no postgres user to run PostgreSQL as: %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		base = "/tmp" // the postgres user must reach the directory; $TMPDIR may be private to root
	}
	dir, err := os.MkdirTemp(base, "signatory-pg-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) }) // registered first: runs after the server's Stop
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			tb.Fatal(err)
		}
	}
	command := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		if cred != nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		}
		return cmd
	}
	data := filepath.Join(dir, "data")
	if _, err := testdaemon.RunTool(command("initdb", "-D", data, "-U", "test", "--auth=trust",
		"--no-sync", "-E", "UTF8", "--locale=C")); err != nil {
		tb.Fatal(err)
	}
	s := &Server{}
	s.Service = testdaemon.StartService(tb, testdaemon.ServiceSpec{
		Name: "postgres",
		Command: func(ports []string) *exec.Cmd {
			return command("postgres", "-D", data, "-p", ports[0], "-k", dir,
				"-c", "listen_addresses=127.0.0.1", "-c", "max_connections=200")
		},
		// Listening is not enough: the server refuses sessions while it starts up or recovers.
		Ready: func(ctx context.Context, addr string) error {
			ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			c, err := pgx.Connect(ctx, dsn(addr))
			if err != nil {
				return err
			}
			defer c.Close(ctx)
			return c.Ping(ctx)
		},
		StopSignal: syscall.SIGINT, // "fast" shutdown
	})
	s.DSN = dsn(s.Addr)
	return s
}

func dsn(addr string) string {
	return fmt.Sprintf("postgres://test@%s/postgres?sslmode=disable", addr)
}
