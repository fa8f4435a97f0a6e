//go:build !race

package yubihsm

const raceEnabled = false
