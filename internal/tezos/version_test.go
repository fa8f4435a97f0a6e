package tezos

import (
	"errors"
	"testing"
)

// TestCheckVersion is the table of which key types sign with which signing version.
func TestCheckVersion(t *testing.T) {
	t.Parallel()
	for _, c := range Curves {
		for v := -1; v <= MaxVersion+1; v++ {
			err := CheckVersion(c, v)
			want := v >= 0 && v <= MaxVersion && !(c == BLS && v == 0) && !(c == MLDSA44 && v < 3)
			if (err == nil) != want {
				t.Errorf("CheckVersion(%s, %d) = %v, want allowed %v", c, v, err, want)
			}
		}
	}
	if err := CheckVersion(BLS, 0); !errors.Is(err, ErrBLSVersion0) {
		t.Errorf("BLS version 0: %v", err)
	}
	if err := CheckVersion(MLDSA44, 2); !errors.Is(err, ErrMLDSA44Version) {
		t.Errorf("tz5 version 2: %v", err)
	}
	if VersionLatest != 3 || MaxVersion != 3 {
		t.Errorf("latest %d, max %d", VersionLatest, MaxVersion)
	}
}
