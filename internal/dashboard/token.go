package dashboard

import "github.com/treaty-dev/treaty/internal/homedir"

// TokenFile is the dashboard's token in the node's home (mode 0600).
const TokenFile = "dashboard.token"

// minToken is the shortest token accepted from the file.
const minToken = homedir.MinTokenLen

// LoadOrCreateToken returns the token in HOME/dashboard.token, creating it
// on first use (see homedir.LoadOrCreateToken).
func LoadOrCreateToken(home string) (string, error) {
	return homedir.LoadOrCreateToken(home, TokenFile)
}
