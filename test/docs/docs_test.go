// Package docs checks the documentation against the repository: every relative link of the README
// and docs/ points at a file that exists (and, with an anchor, at one of its headings).
package docs

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// root is the repository, two levels up from this package.
const root = "../.."

// mdFiles are the README and every page under docs/.
func mdFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	return append([]string{filepath.Join(root, "README.md")}, files...)
}

var (
	linkRE    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headingRE = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
	fenceRE   = regexp.MustCompile("(?ms)^```.*?^```")
)

// slug is GitHub's anchor for a heading: lower case, punctuation other than - and _ dropped,
// spaces made -.
func slug(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(heading) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r > 0x7f && r != '—' && r != '–' && r != '’' && r != '→' && r != '×':
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors are the heading anchors of a markdown file.
func anchors(t *testing.T, path string) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, m := range headingRE.FindAllStringSubmatch(fenceRE.ReplaceAllString(string(b), ""), -1) {
		s := slug(m[1])
		for i := 0; out[s]; i++ { // GitHub numbers repeated headings
			s = slug(m[1]) + "-" + string(rune('1'+i))
		}
		out[s] = true
	}
	return out
}

// TestLinks: every relative link resolves to a file of the repository, and every anchor to a
// heading of its target.
func TestLinks(t *testing.T) {
	t.Parallel()
	checked := 0
	for _, file := range mdFiles(t) {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		text := fenceRE.ReplaceAllString(string(b), "")
		for _, m := range linkRE.FindAllStringSubmatch(text, -1) {
			link := m[1]
			if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
				continue
			}
			target, anchor, _ := strings.Cut(link, "#")
			path := file
			if target != "" {
				path = filepath.Join(filepath.Dir(file), target)
			}
			rel, _ := filepath.Rel(root, file)
			if _, err := os.Stat(path); err != nil {
				t.Errorf("%s: link %s: %v", rel, link, err)
				continue
			}
			if anchor != "" {
				if !strings.HasSuffix(path, ".md") {
					t.Errorf("%s: link %s: an anchor into a file that is not markdown", rel, link)
				} else if !anchors(t, path)[anchor] {
					t.Errorf("%s: link %s: no heading has that anchor", rel, link)
				}
			}
			checked++
		}
	}
	if checked < 20 {
		t.Fatalf("only %d links checked: the link pattern no longer matches the docs", checked)
	}
}

// TestSlug: GitHub's anchors for headings of the kinds the docs use.
func TestSlug(t *testing.T) {
	t.Parallel()
	for heading, want := range map[string]string{
		"Checking signatures":                                                   "checking-signatures",
		"The `version` parameter: signing versions":                             "the-version-parameter-signing-versions",
		"How a generic operation is read: the protocol's rules":                 "how-a-generic-operation-is-read-the-protocols-rules",
		"The socket transports (`server.socket_address`, `server.unix_socket`)": "the-socket-transports-serversocket_address-serverunix_socket",
		"Journal (file store, on by default)":                                   "journal-file-store-on-by-default",
	} {
		if got := slug(heading); got != want {
			t.Errorf("slug(%q) = %q, want %q", heading, got, want)
		}
	}
}
