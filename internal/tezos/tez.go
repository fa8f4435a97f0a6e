package tezos

import "fmt"

// FormatTez writes mutez as tez with up to six decimals ("30", "0.5", "1000.000001").
func FormatTez(mutez int64) string {
	sign := ""
	if mutez < 0 {
		sign, mutez = "-", -mutez
	}
	s := fmt.Sprintf("%s%d", sign, mutez/1_000_000)
	if frac := mutez % 1_000_000; frac != 0 {
		f := fmt.Sprintf("%06d", frac)
		for f[len(f)-1] == '0' {
			f = f[:len(f)-1]
		}
		s += "." + f
	}
	return s
}
