//go:build !race

package pkarrrelay

// raceEnabled reports a build with the race detector, whose instrumented
// allocations make memory measurements meaningless.
const raceEnabled = false
