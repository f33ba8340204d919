package dovecot

import (
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

func TestConnectionsCountsLoggedInClients(t *testing.T) {
	t.Parallel()
	ctx := testCtx(t)
	users := map[string]string{}
	for _, u := range []string{"u1", "u2", "u3"} {
		users[u] = u + "-pass"
	}
	s := StartT(t, Options{Users: users})
	count := func(want int) {
		t.Helper()
		got, err := s.Connections()
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Fatalf("%d connections, want %d", got, want)
		}
	}
	count(0)
	var clients []*imapclient.Client
	for _, u := range []string{"u1", "u2", "u3"} {
		c, err := s.Login(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	count(3)
	if err := clients[0].Logout().Wait(); err != nil {
		t.Fatal(err)
	}
	// The server closes its end once it has answered the logout.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := s.Connections()
		if err != nil {
			t.Fatal(err)
		}
		if got == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections after a logout, want 2", got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
