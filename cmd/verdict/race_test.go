//go:build race

package main

// raceEnabled: the tests run under the race detector, which makes every
// decision several times slower; the heaviest tests run in make test's
// pass without it instead.
const raceEnabled = true
