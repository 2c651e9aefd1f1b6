//go:build !unix

package state

// lockDir is a no-op where flock is unavailable; cdcd is deployed on Linux,
// and this keeps the package building elsewhere for development.
func lockDir(string) (func() error, error) { return func() error { return nil }, nil }
