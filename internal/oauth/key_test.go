package oauth

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
)

func newKey(t *testing.T) (*Key, string) {
	t.Helper()
	raw := make([]byte, 32)
	rand.Read(raw) //nolint:errcheck // never fails
	enc := base64.StdEncoding.EncodeToString(raw)
	k, err := ParseKey(enc)
	if err != nil {
		t.Fatal(err)
	}
	return k, enc
}

func TestParseKey(t *testing.T) {
	raw := bytes.Repeat([]byte{7}, 32)
	for _, tc := range []struct {
		name, value, want string // want: in the error, "" for none
	}{
		{"standard", base64.StdEncoding.EncodeToString(raw), ""},
		{"url, unpadded, with a newline", base64.RawURLEncoding.EncodeToString(raw) + "\n", ""},
		{"unset", "", "not set"},
		{"short", base64.StdEncoding.EncodeToString(raw[:16]), "16 bytes, want 32"},
		{"not base64", "this is not base64!", "not base64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseKey(tc.value)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "HELPDESK_SECRET_KEY: ") {
				t.Errorf("error %v, want one naming the variable and saying %q", err, tc.want)
			}
		})
	}
}

func TestSealOpen(t *testing.T) {
	k, _ := newKey(t)
	other, _ := newKey(t)
	secret := []byte("rt-the refresh token")
	sealed := k.Seal(secret, "mailbox 1 refresh token")
	if bytes.Contains(sealed, secret) {
		t.Fatal("the sealed value holds the plaintext")
	}
	if again := k.Seal(secret, "mailbox 1 refresh token"); bytes.Equal(again, sealed) {
		t.Error("two seals of one value are equal: the nonce is not fresh")
	}
	got, err := k.Open(sealed, "mailbox 1 refresh token")
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("open: %q, %v", got, err)
	}
	damaged := bytes.Clone(sealed)
	damaged[len(damaged)-1] ^= 1
	for name, open := range map[string]func() ([]byte, error){
		"another label":  func() ([]byte, error) { return k.Open(sealed, "mailbox 2 refresh token") },
		"another key":    func() ([]byte, error) { return other.Open(sealed, "mailbox 1 refresh token") },
		"damaged":        func() ([]byte, error) { return k.Open(damaged, "mailbox 1 refresh token") },
		"truncated":      func() ([]byte, error) { return k.Open(sealed[:10], "mailbox 1 refresh token") },
		"nothing stored": func() ([]byte, error) { return k.Open(nil, "mailbox 1 refresh token") },
	} {
		if got, err := open(); err == nil {
			t.Errorf("%s: opened to %q", name, got)
		}
	}
}
