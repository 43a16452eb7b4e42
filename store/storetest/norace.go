//go:build !race

package storetest

// raceEnabled says the test binary runs with the race detector.
const raceEnabled = false
