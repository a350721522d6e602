//go:build !unix

package transport

// openFileLimit is unknown outside unix; fdBudget assumes a common default.
func openFileLimit() int { return 0 }
