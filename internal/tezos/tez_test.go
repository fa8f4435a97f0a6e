package tezos

import "testing"

func TestFormatTez(t *testing.T) {
	for m, want := range map[int64]string{0: "0", 1: "0.000001", 500000: "0.5", 1_000_000_001: "1000.000001", -1_500_000: "-1.5"} {
		if got := FormatTez(m); got != want {
			t.Errorf("%d: %q, want %q", m, got, want)
		}
	}
}
