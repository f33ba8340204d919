package xoauth2

import (
	"bytes"
	"encoding/base64"
	"slices"
	"testing"
)

// The examples of Google's "XOAUTH2 Mechanism" page
// (developers.google.com/gmail/imap/xoauth2-protocol) and Microsoft's
// "Authenticate an IMAP, POP or SMTP connection using OAuth"
// (learn.microsoft.com/exchange/client-developer/legacy-protocols/…), byte
// for byte.
func TestInitialResponseMatchesTheProviders(t *testing.T) {
	for _, tc := range []struct {
		name, user, token, want string
	}{
		{"google", "someuser@example.com", "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg",
			"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRjMk52" +
				"YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ=="},
		{"microsoft", "test@contoso.onmicrosoft.com", "EwBAAl3BAAUFFpUAo7J3Ve0bjLBWZWCclRC3EoAA",
			"dXNlcj10ZXN0QGNvbnRvc28ub25taWNyb3NvZnQuY29tAWF1dGg9QmVhcmVyIEV3QkFBbDNCQUFVRkZwVUFvN0ozVmUwYmpMQldaV0NjbFJDM0VvQUEBAQ=="},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mech, ir, err := NewClient(tc.user, tc.token).Start()
			if err != nil {
				t.Fatal(err)
			}
			if mech != "XOAUTH2" {
				t.Errorf("mechanism %q", mech)
			}
			if got := base64.StdEncoding.EncodeToString(ir); got != tc.want {
				t.Errorf("initial response\n got %s\nwant %s", got, tc.want)
			}
			plain := "user=" + tc.user + "\x01auth=Bearer " + tc.token + "\x01\x01"
			if !bytes.Equal(ir, []byte(plain)) {
				t.Errorf("initial response %q, want %q", ir, plain)
			}
		})
	}
}

// Gmail refuses a bad token with a JSON challenge and expects an empty
// response before it sends its NO.
func TestErrorChallengeIsAnsweredEmpty(t *testing.T) {
	challenge, err := base64.StdEncoding.DecodeString("eyJzdGF0dXMiOiI0MDEiLCJzY2hlbWVzIjoiYmVhcmVyIG1hYyIsInNjb3BlIjoiaHR0cHM6Ly9tYWlsLmdvb2dsZS5jb20vIn0K")
	if err != nil {
		t.Fatal(err)
	}
	c := NewClient("someuser@example.com", "expired")
	if _, _, err := c.Start(); err != nil {
		t.Fatal(err)
	}
	resp, err := c.Next(challenge)
	if err != nil {
		t.Fatal(err)
	}
	if resp == nil || len(resp) != 0 {
		t.Errorf("response %q, want an empty (non-nil) one", resp)
	}
	want := ErrorChallenge{Status: "401", Schemes: "bearer mac", Scope: "https://mail.google.com/"}
	if r := c.Refusal(); r == nil || *r != want {
		t.Errorf("refusal %+v, want %+v", r, want)
	}
	if _, err := c.Next(challenge); err == nil {
		t.Error("a second challenge was answered")
	}
}

func TestRefusalThatIsNotJSON(t *testing.T) {
	c := NewClient("u", "t")
	if _, err := c.Next([]byte("go away")); err != nil {
		t.Fatal(err)
	}
	if r := c.Refusal(); r == nil || r.Status != "unknown" {
		t.Errorf("refusal %+v, want status unknown", r)
	}
}

func TestFieldSeparatorInCredentialsIsRefused(t *testing.T) {
	for _, c := range []*Client{NewClient("a\x01b", "t"), NewClient("u", "t\x01auth=x")} {
		if _, _, err := c.Start(); err == nil {
			t.Errorf("%q/%q: started", c.user, c.token)
		}
	}
}

func TestBearerClient(t *testing.T) {
	c := NewBearerClient("user@example.com", "tok", "imap.example.com", 993)
	mech, ir, err := c.Start()
	if err != nil {
		t.Fatal(err)
	}
	// RFC 7628 §4.1's example shape: GS2 header with the authzid, host,
	// port and the bearer token.
	want := "n,a=user@example.com,\x01host=imap.example.com\x01port=993\x01auth=Bearer tok\x01\x01"
	if mech != "OAUTHBEARER" || string(ir) != want {
		t.Errorf("start %s %q, want OAUTHBEARER %q", mech, ir, want)
	}
	resp, err := c.Next([]byte(`{"status":"invalid_token","scope":"mail"}`))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(resp, []byte{0x01}) {
		t.Errorf("response to the error %q, want ^A", resp)
	}
	if r := c.Refusal(); r == nil || r.Status != "invalid_token" {
		t.Errorf("refusal %+v", r)
	}
}

func TestChoose(t *testing.T) {
	for _, tc := range []struct {
		offered []string
		want    string
	}{
		{[]string{"PLAIN", "XOAUTH2"}, "XOAUTH2"},
		{[]string{"XOAUTH2", "OAUTHBEARER"}, "OAUTHBEARER"},
		{[]string{"PLAIN", "LOGIN"}, ""},
	} {
		offers := func(m string) bool { return slices.Contains(tc.offered, m) }
		c := Choose(offers, "u", "t", "h", 1)
		got := ""
		if c != nil {
			got, _, _ = c.Start()
		}
		if got != tc.want {
			t.Errorf("offered %v: chose %q, want %q", tc.offered, got, tc.want)
		}
	}
}
