//go:build race

package testdaemon

// raceEnabled is set when the test binary runs with the race detector: the daemon is then built
// with it too.
const raceEnabled = true
