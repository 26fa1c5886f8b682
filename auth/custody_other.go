//go:build !unix

package auth

// processAlive cannot tell here: a spend record's owner counts as alive
// until the record's deadline.
func processAlive(int) bool { return true }
