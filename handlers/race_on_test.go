//go:build race

package handlers

// raceDetector is true in a -race build, whose instrumentation slows the
// code under test several times.
const raceDetector = true
