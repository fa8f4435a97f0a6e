//go:build race

package yubihsm

// raceEnabled builds the daemon with the race detector when the tests run with -race.
const raceEnabled = true
