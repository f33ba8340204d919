// Package oauth obtains, keeps and renews the OAuth2 tokens mailboxes log
// in with: provider presets (Microsoft, Google) and generic providers, the
// device authorization and client credentials grants, refresh before
// expiry with rotated refresh tokens kept, and the tokens sealed at rest.
package oauth

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// KeyVariable names the environment variable holding the key.
const KeyVariable = "HELPDESK_SECRET_KEY"

// Key seals tokens with AES-256-GCM. Each sealed value is bound to a label
// (the mailbox and which token), so that one cannot be moved to another
// row and still open.
type Key struct{ aead cipher.AEAD }

// sealVersion leads every sealed value, so that another scheme can follow.
const sealVersion = 1

// ParseKey reads the key: 32 bytes, base64 (standard or URL alphabet,
// padded or not), as `openssl rand -base64 32` writes it.
func ParseKey(encoded string) (*Key, error) {
	encoded = strings.TrimSpace(encoded)
	if encoded == "" {
		return nil, fmt.Errorf("%s: not set; generate one with: openssl rand -base64 32", KeyVariable)
	}
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(encoded); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("%s: not base64; generate one with: openssl rand -base64 32", KeyVariable)
	}
	if len(raw) != 32 {
		return nil, fmt.Errorf("%s: %d bytes, want 32; generate one with: openssl rand -base64 32", KeyVariable, len(raw))
	}
	block, err := aes.NewCipher(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KeyVariable, err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", KeyVariable, err)
	}
	return &Key{aead: aead}, nil
}

// Seal encrypts plaintext for label: version, nonce, then ciphertext.
func (k *Key) Seal(plaintext []byte, label string) []byte {
	out := make([]byte, 1+k.aead.NonceSize(), 1+k.aead.NonceSize()+len(plaintext)+k.aead.Overhead())
	out[0] = sealVersion
	rand.Read(out[1:]) //nolint:errcheck // never fails since Go 1.24
	return k.aead.Seal(out, out[1:], plaintext, []byte(label))
}

// errUnsealable is a sealed value that this key cannot open: sealed under
// another key (it was changed), for another label, or damaged.
var errUnsealable = errors.New("sealed under another key (was " + KeyVariable + " changed?) or damaged")

// Open decrypts what Seal sealed for the same label.
func (k *Key) Open(sealed []byte, label string) ([]byte, error) {
	n := k.aead.NonceSize()
	if len(sealed) < 1+n+k.aead.Overhead() || sealed[0] != sealVersion {
		return nil, errUnsealable
	}
	plain, err := k.aead.Open(nil, sealed[1:1+n], sealed[1+n:], []byte(label))
	if err != nil {
		return nil, errUnsealable
	}
	return plain, nil
}
