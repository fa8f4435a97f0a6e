package server

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	tv "github.com/signatory-go/signatory/internal/testvectors"
)

var (
	fuzzOnce    sync.Once
	fuzzHandler http.Handler
)

// FuzzHTTP sends arbitrary paths, queries, headers and bodies to the signing port's handler (a
// mem vault and a mem watermark): nothing panics, every answer is one of the API's statuses, and
// no answer is large (nothing of the request is echoed back in bulk).
func FuzzHTTP(f *testing.F) {
	f.Add("POST", "/keys/"+tv.K1PKH, "version=1", "application/json", `"`+tv.LoadPolicyHex()["transaction ok"]+`"`)
	f.Add("GET", "/keys/"+tv.K1PKH, "", "", "")
	f.Add("POST", "/keys/tz1", "authentication=sigXXX", "text/plain", `"03"`)
	f.Add("GET", "/bls_prove_possession/"+tv.K7PKH, "", "", "")
	f.Add("GET", "/authorized_keys", "", "", "")
	f.Fuzz(func(t *testing.T, method, path, query, ctype, body string) {
		fuzzOnce.Do(func() {
			s, m, log := newEnvSigner(t, nil, nil)
			fuzzHandler = New(Config{}, s, m, log).Handler()
		})
		if !strings.HasPrefix(path, "/") || len(path) > 4096 || len(query) > 4096 {
			return
		}
		u := &url.URL{Path: path, RawQuery: query}
		req, err := http.NewRequest(method, u.String(), strings.NewReader(body))
		if err != nil {
			return
		}
		req.Header.Set("Content-Type", ctype)
		rec := httptest.NewRecorder()
		fuzzHandler.ServeHTTP(rec, req)
		switch rec.Code {
		case 200, 400, 401, 403, 404, 405, 409, 413, 500, 503,
			301, 307, 308: // the mux redirects an unclean path to its clean form
		default:
			t.Fatalf("%s %s?%s: status %d", method, path, query, rec.Code)
		}
		if n := rec.Body.Len(); n > 4096 {
			t.Fatalf("%s %s: %d-byte answer", method, path, n)
		}
	})
}
