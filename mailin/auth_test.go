package mailin

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/dkim"
)

// dnsTable is a DNS made of maps: names it does not hold do not exist.
type dnsTable struct {
	txt  map[string][]string
	ip   map[string][]string
	mx   map[string][]string
	fail map[string]error // every lookup of the name fails so
	hang map[string]bool  // every lookup of the name waits for the context to end
}

func (d dnsTable) options() AuthOptions {
	return AuthOptions{
		LookupTXT: func(ctx context.Context, name string) ([]string, error) {
			return tableLookup(ctx, d, name, d.txt)
		},
		LookupIPAddr: func(ctx context.Context, host string) ([]net.IPAddr, error) {
			ips, err := tableLookup(ctx, d, host, d.ip)
			var addrs []net.IPAddr
			for _, ip := range ips {
				addrs = append(addrs, net.IPAddr{IP: net.ParseIP(ip)})
			}
			return addrs, err
		},
		LookupMX: func(ctx context.Context, name string) ([]*net.MX, error) {
			hosts, err := tableLookup(ctx, d, name, d.mx)
			var mxs []*net.MX
			for i, host := range hosts {
				mxs = append(mxs, &net.MX{Host: host, Pref: uint16(10 * (i + 1))})
			}
			return mxs, err
		},
		LookupAddr: func(ctx context.Context, addr string) ([]string, error) {
			return tableLookup(ctx, d, addr, nil)
		},
	}
}

func tableLookup(ctx context.Context, d dnsTable, name string, records map[string][]string) ([]string, error) {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if d.hang[name] {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	if err := d.fail[name]; err != nil {
		return nil, err
	}
	if answer, ok := records[name]; ok {
		return answer, nil
	}
	return nil, &net.DNSError{Err: "no such host", Name: name, IsNotFound: true}
}

// Two keys from fixed seeds: keyA is the one published, keyB a stranger's.
var (
	keyA = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, ed25519.SeedSize))
	keyB = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, ed25519.SeedSize))
)

func dkimKeyRecord(key ed25519.PrivateKey) string {
	return "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(key.Public().(ed25519.PublicKey))
}

// authDNSTable holds a domain for every situation the tests need.
func authDNSTable() dnsTable {
	spfDocumentation := []string{"v=spf1 ip4:192.0.2.0/24 -all"}
	published := []string{dkimKeyRecord(keyA)}
	return dnsTable{
		txt: map[string][]string{
			"example.com":                        {"google-site-verification=abc", spfDocumentation[0]},
			"_dmarc.example.com":                 {"v=DMARC1; p=reject; sp=quarantine; rua=mailto:dmarc@example.com"},
			"sel._domainkey.example.com":         published,
			"mail.example.com":                   spfDocumentation,
			"sel._domainkey.news.example.com":    published,
			"esp.example.net":                    {"v=spf1 ip4:203.0.113.0/24 -all"},
			"sel._domainkey.esp.example.net":     published,
			"mx.example.net":                     {"v=spf1 mx -all"},
			"soft.example.org":                   {"v=spf1 ip4:198.51.100.0/24 ~all"},
			"nodmarc.example.org":                spfDocumentation,
			"tempdmarc.example.org":              spfDocumentation,
			"strict.example":                     spfDocumentation,
			"mail.strict.example":                spfDocumentation,
			"_dmarc.strict.example":              {"v=DMARC1; p=quarantine; aspf=s; adkim=s"},
			"sel._domainkey.strict.example":      published,
			"sel._domainkey.news.strict.example": published,
			"_dmarc.nodmarc.example.org":         {"v=spf1 -all"}, // not a DMARC record
		},
		ip: map[string][]string{"mail.example.net": {"203.0.113.25"}},
		mx: map[string][]string{"mx.example.net": {"mail.example.net"}},
		fail: map[string]error{
			"broken.example.org":              errors.New("server misbehaving"),
			"dnsfail.example.org":             &net.DNSError{Err: "server misbehaving", IsTemporary: true},
			"_dmarc.tempdmarc.example.org":    &net.DNSError{Err: "i/o timeout", IsTimeout: true},
			"slow._domainkey.example.com":     &net.DNSError{Err: "i/o timeout", IsTimeout: true},
			"sel._domainkey.broken.example":   errors.New("refused"),
			"unexpected._domainkey.localhost": errors.New("refused"),
		},
	}
}

// authMail is a mail from the given address, as it arrives (CRLF).
func authMail(from string) string {
	return crlf("From: Alice <" + from + ">\nTo: support@helpdesk.example\nSubject: The printer is on fire\n" +
		"Date: Fri, 27 Nov 2026 09:00:00 +0000\nMessage-ID: <1@example.com>\n\nThe printer is on fire again.\n")
}

// withoutBody is a mail's header alone, without the blank line that would
// start a body.
func withoutBody(raw string) string {
	header, _, _ := strings.Cut(raw, "\r\n\r\n")
	return header + "\r\n"
}

type dkimSigner struct {
	domain, selector string
	key              ed25519.PrivateKey
	relaxed          bool // relaxed canonicalization rather than simple
}

// signMail adds a DKIM signature for each signer, the last one on top.
func signMail(t *testing.T, raw string, signers ...dkimSigner) string {
	t.Helper()
	for _, s := range signers {
		var out strings.Builder
		opts := &dkim.SignOptions{Domain: s.domain, Selector: s.selector, Signer: s.key}
		if s.relaxed {
			opts.HeaderCanonicalization, opts.BodyCanonicalization = dkim.CanonicalizationRelaxed, dkim.CanonicalizationRelaxed
		}
		err := dkim.Sign(&out, strings.NewReader(raw), opts)
		if err != nil {
			t.Fatalf("signing for %s: %v", s.domain, err)
		}
		raw = out.String()
	}
	return raw
}

func TestAuthCheck(t *testing.T) {
	auth := NewAuthenticator(authDNSTable().options())
	fromExample := authMail("alice@example.com")
	signedExample := signMail(t, fromExample, dkimSigner{"example.com", "sel", keyA, false})

	tests := []struct {
		name           string
		ip, helo       string
		mailFrom, from string
		raw            string
		want           AuthResults // Detail checked when wantDetail is set
		wantDetail     string
		wantDetailHas  string
	}{
		// SPF
		{
			name: "spf pass and dmarc pass by the aligned envelope sender",
			ip:   "192.0.2.1", helo: "mail.example.com", mailFrom: "bounce@example.com", from: "alice@example.com", raw: fromExample,
			want:       AuthResults{SPF: "pass", DKIM: "none", DMARC: "pass", Policy: "reject"},
			wantDetail: "spf=pass (mailfrom=example.com ip=192.0.2.1) dkim=none dmarc=pass (from=example.com p=reject)",
		},
		{
			name: "spf fail from an address outside the record",
			ip:   "198.51.100.7", helo: "mail.example.com", mailFrom: "bounce@example.com", from: "alice@example.com", raw: fromExample,
			want: AuthResults{SPF: "fail", DKIM: "none", DMARC: "fail", Policy: "reject"},
		},
		{
			name: "spf softfail",
			ip:   "192.0.2.1", helo: "mail.example.com", mailFrom: "news@soft.example.org", from: "news@soft.example.org", raw: authMail("news@soft.example.org"),
			want: AuthResults{SPF: "softfail", DKIM: "none", DMARC: "none"},
		},
		{
			name: "spf none without a record",
			ip:   "192.0.2.1", helo: "mail.example.com", mailFrom: "a@nospf.example.org", from: "a@nospf.example.org", raw: authMail("a@nospf.example.org"),
			want:       AuthResults{SPF: "none", DKIM: "none", DMARC: "none"},
			wantDetail: "spf=none (mailfrom=nospf.example.org ip=192.0.2.1) dkim=none dmarc=none (from=nospf.example.org)",
		},
		{
			name: "spf temperror when the DNS fails",
			ip:   "192.0.2.1", helo: "mail.example.com", mailFrom: "a@broken.example.org", from: "a@broken.example.org", raw: authMail("a@broken.example.org"),
			want: AuthResults{SPF: "temperror", DKIM: "none", DMARC: "none"},
		},
		{
			name: "spf temperror on a temporary DNS error",
			ip:   "192.0.2.1", helo: "mail.example.com", mailFrom: "a@dnsfail.example.org", from: "a@nospf.example.org", raw: authMail("a@nospf.example.org"),
			want: AuthResults{SPF: "temperror", DKIM: "none", DMARC: "none"},
		},
		{
			name: "null sender is checked as the helo name",
			ip:   "203.0.113.25", helo: "mx.example.net", mailFrom: "", from: "mailer-daemon@mx.example.net", raw: authMail("mailer-daemon@mx.example.net"),
			want:       AuthResults{SPF: "pass", DKIM: "none", DMARC: "none"},
			wantDetail: "spf=pass (helo=mx.example.net ip=203.0.113.25) dkim=none dmarc=none (from=mx.example.net)",
		},
		{
			name: "null sender written <> with an address literal for helo",
			ip:   "192.0.2.1", helo: "[192.0.2.1]", mailFrom: "<>", from: "alice@example.com", raw: fromExample,
			want: AuthResults{SPF: "none", DKIM: "none", DMARC: "fail", Policy: "reject"},
		},
		{
			name: "envelope sender without a domain",
			ip:   "192.0.2.1", helo: "mail.example.com", mailFrom: "bounce", from: "alice@example.com", raw: fromExample,
			want: AuthResults{SPF: "none", DKIM: "none", DMARC: "fail", Policy: "reject"},
		},
		{
			name: "loopback client is evaluated too",
			ip:   "127.0.0.1", helo: "localhost", mailFrom: "bounce@example.com", from: "alice@example.com", raw: fromExample,
			want: AuthResults{SPF: "fail", DKIM: "none", DMARC: "fail", Policy: "reject"},
		},
		{
			name: "ipv6 loopback client is evaluated too",
			ip:   "::1", helo: "localhost", mailFrom: "bounce@example.com", from: "alice@example.com", raw: fromExample,
			want: AuthResults{SPF: "fail", DKIM: "none", DMARC: "fail", Policy: "reject"},
		},

		// DKIM
		{
			name: "dkim pass and dmarc pass by the aligned signature",
			ip:   "203.0.113.7", helo: "out.esp.example.net", mailFrom: "bounce@esp.example.net", from: "alice@example.com", raw: signedExample,
			want:       AuthResults{SPF: "pass", DKIM: "pass", DMARC: "pass", Policy: "reject"},
			wantDetail: "spf=pass (mailfrom=esp.example.net ip=203.0.113.7) dkim=pass (d=example.com) dmarc=pass (from=example.com p=reject)",
		},
		{
			name: "dkim pass with relaxed canonicalization and a body without a final line end",
			ip:   "203.0.113.7", helo: "out.esp.example.net", mailFrom: "bounce@esp.example.net", from: "alice@example.com",
			raw:  signMail(t, strings.TrimSuffix(fromExample, "\r\n"), dkimSigner{"example.com", "sel", keyA, true}),
			want: AuthResults{SPF: "pass", DKIM: "pass", DMARC: "pass", Policy: "reject"},
		},
		{
			name: "dkim pass for a mail without a body, signed with a blank line",
			ip:   "203.0.113.7", helo: "out.esp.example.net", mailFrom: "bounce@esp.example.net", from: "alice@example.com",
			raw:  withoutBody(signMail(t, withoutBody(fromExample)+"\r\n", dkimSigner{"example.com", "sel", keyA, false})),
			want: AuthResults{SPF: "pass", DKIM: "pass", DMARC: "pass", Policy: "reject"},
		},
		{
			name: "dkim fail when the signed mail was altered",
			ip:   "203.0.113.7", helo: "out.esp.example.net", mailFrom: "bounce@esp.example.net", from: "alice@example.com",
			raw:  strings.Replace(signedExample, "on fire again", "fine now", 1),
			want: AuthResults{SPF: "pass", DKIM: "fail", DMARC: "fail", Policy: "reject"},
		},
		{
			name: "dkim fail when the signed From: was altered",
			ip:   "203.0.113.7", helo: "out.esp.example.net", mailFrom: "bounce@esp.example.net", from: "alice@example.com",
			raw:  strings.Replace(signedExample, "From: Alice", "From: Mallory", 1),
			want: AuthResults{SPF: "pass", DKIM: "fail", DMARC: "fail", Policy: "reject"},
		},
		{
			name: "dkim fail when signed with a key that is not the published one",
			ip:   "203.0.113.7", helo: "out.esp.example.net", mailFrom: "bounce@esp.example.net", from: "alice@example.com",
			raw:  signMail(t, fromExample, dkimSigner{"example.com", "sel", keyB, false}),
			want: AuthResults{SPF: "pass", DKIM: "fail", DMARC: "fail", Policy: "reject"},
		},
		{
			name: "a failing signature does not hide one that passes",
			ip:   "203.0.113.7", helo: "out.esp.example.net", mailFrom: "bounce@esp.example.net", from: "alice@example.com",
			raw:           signMail(t, fromExample, dkimSigner{"example.com", "sel", keyA, false}, dkimSigner{"esp.example.net", "sel", keyB, false}),
			want:          AuthResults{SPF: "pass", DKIM: "pass", DMARC: "pass", Policy: "reject"},
			wantDetailHas: "dkim=pass (d=esp.example.net:fail d=example.com)",
		},
		{
			name: "a passing signature of another domain does not align",
			ip:   "203.0.113.7", helo: "out.esp.example.net", mailFrom: "bounce@esp.example.net", from: "ceo@example.com",
			raw:  signMail(t, authMail("ceo@example.com"), dkimSigner{"esp.example.net", "sel", keyA, false}),
			want: AuthResults{SPF: "pass", DKIM: "pass", DMARC: "fail", Policy: "reject"},
		},
		{
			name: "dkim permerror when the key is not published",
			ip:   "203.0.113.7", helo: "out.esp.example.net", mailFrom: "bounce@esp.example.net", from: "alice@example.com",
			raw:  signMail(t, fromExample, dkimSigner{"example.com", "gone", keyA, false}),
			want: AuthResults{SPF: "pass", DKIM: "permerror", DMARC: "fail", Policy: "reject"},
		},
		{
			name: "dkim temperror when the key cannot be fetched makes dmarc temperror",
			ip:   "203.0.113.7", helo: "out.esp.example.net", mailFrom: "bounce@esp.example.net", from: "alice@example.com",
			raw:  signMail(t, fromExample, dkimSigner{"example.com", "slow", keyA, false}),
			want: AuthResults{SPF: "pass", DKIM: "temperror", DMARC: "temperror", Policy: "reject"},
		},
		{
			name: "dkim none and spf none without a header at all",
			ip:   "192.0.2.1", helo: "mail.example.com", mailFrom: "a@nospf.example.org", from: "", raw: "",
			want: AuthResults{SPF: "none", DKIM: "none", DMARC: "permerror"},
		},

		// DMARC
		{
			name: "dmarc fail with p=reject: spf passes for another domain and From: is forged",
			ip:   "203.0.113.7", helo: "out.esp.example.net", mailFrom: "bounce@esp.example.net", from: "ceo@example.com", raw: authMail("ceo@example.com"),
			want:       AuthResults{SPF: "pass", DKIM: "none", DMARC: "fail", Policy: "reject"},
			wantDetail: "spf=pass (mailfrom=esp.example.net ip=203.0.113.7) dkim=none dmarc=fail (from=example.com p=reject)",
		},
		{
			name: "relaxed spf alignment takes a subdomain",
			ip:   "192.0.2.1", helo: "mail.example.com", mailFrom: "bounce@mail.example.com", from: "alice@example.com", raw: fromExample,
			want: AuthResults{SPF: "pass", DKIM: "none", DMARC: "pass", Policy: "reject"},
		},
		{
			name: "strict spf alignment refuses a subdomain",
			ip:   "192.0.2.1", helo: "mail.strict.example", mailFrom: "bounce@mail.strict.example", from: "alice@strict.example", raw: authMail("alice@strict.example"),
			want: AuthResults{SPF: "pass", DKIM: "none", DMARC: "fail", Policy: "quarantine"},
		},
		{
			name: "strict spf alignment takes the same domain",
			ip:   "192.0.2.1", helo: "mail.strict.example", mailFrom: "bounce@strict.example", from: "alice@Strict.Example", raw: authMail("alice@strict.example"),
			want: AuthResults{SPF: "pass", DKIM: "none", DMARC: "pass", Policy: "quarantine"},
		},
		{
			name: "relaxed dkim alignment takes a subdomain",
			ip:   "203.0.113.7", helo: "out.esp.example.net", mailFrom: "bounce@esp.example.net", from: "alice@example.com",
			raw:  signMail(t, fromExample, dkimSigner{"news.example.com", "sel", keyA, false}),
			want: AuthResults{SPF: "pass", DKIM: "pass", DMARC: "pass", Policy: "reject"},
		},
		{
			name: "strict dkim alignment refuses a subdomain",
			ip:   "203.0.113.7", helo: "out.esp.example.net", mailFrom: "bounce@esp.example.net", from: "alice@strict.example",
			raw:  signMail(t, authMail("alice@strict.example"), dkimSigner{"news.strict.example", "sel", keyA, false}),
			want: AuthResults{SPF: "pass", DKIM: "pass", DMARC: "fail", Policy: "quarantine"},
		},
		{
			name: "strict dkim alignment takes the same domain",
			ip:   "203.0.113.7", helo: "out.esp.example.net", mailFrom: "bounce@esp.example.net", from: "alice@strict.example",
			raw:  signMail(t, authMail("alice@strict.example"), dkimSigner{"strict.example", "sel", keyA, false}),
			want: AuthResults{SPF: "pass", DKIM: "pass", DMARC: "pass", Policy: "quarantine"},
		},
		{
			name: "a subdomain without a record takes the organizational domain's sp",
			ip:   "192.0.2.1", helo: "mail.example.com", mailFrom: "bounce@example.com", from: "help@support.example.com", raw: authMail("help@support.example.com"),
			want:       AuthResults{SPF: "pass", DKIM: "none", DMARC: "pass", Policy: "quarantine"},
			wantDetail: "spf=pass (mailfrom=example.com ip=192.0.2.1) dkim=none dmarc=pass (from=support.example.com p=quarantine org=example.com)",
		},
		{
			name: "a forged subdomain fails on the organizational domain's record",
			ip:   "203.0.113.7", helo: "out.esp.example.net", mailFrom: "bounce@esp.example.net", from: "help@support.example.com", raw: authMail("help@support.example.com"),
			want: AuthResults{SPF: "pass", DKIM: "none", DMARC: "fail", Policy: "quarantine"},
		},
		{
			name: "no dmarc record anywhere is none",
			ip:   "198.51.100.7", helo: "mail.example.org", mailFrom: "a@nodmarc.example.org", from: "a@nodmarc.example.org", raw: authMail("a@nodmarc.example.org"),
			want: AuthResults{SPF: "fail", DKIM: "none", DMARC: "none"},
		},
		{
			name: "dmarc temperror when the record cannot be fetched",
			ip:   "192.0.2.1", helo: "mail.example.org", mailFrom: "a@tempdmarc.example.org", from: "a@tempdmarc.example.org", raw: authMail("a@tempdmarc.example.org"),
			want: AuthResults{SPF: "pass", DKIM: "none", DMARC: "temperror"},
		},
		{
			name: "From: with a display name and angle brackets",
			ip:   "192.0.2.1", helo: "mail.example.com", mailFrom: "bounce@example.com", from: "<alice@example.com>", raw: fromExample,
			want: AuthResults{SPF: "pass", DKIM: "none", DMARC: "pass", Policy: "reject"},
		},
		{
			name: "From: without a domain is a dmarc permerror",
			ip:   "192.0.2.1", helo: "mail.example.com", mailFrom: "bounce@example.com", from: "alice", raw: fromExample,
			want: AuthResults{SPF: "pass", DKIM: "none", DMARC: "permerror"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := auth.Check(t.Context(), strings.NewReader(tt.raw), net.ParseIP(tt.ip), tt.helo, tt.mailFrom, tt.from)
			tt.want.Source = "checked"
			detail := got.Detail
			got.Detail = ""
			if got != tt.want {
				t.Errorf("Check = %+v\nwant    %+v\n(detail %q)", got, tt.want, detail)
			}
			if got.DMARCFailed() != (tt.want.DMARC == "fail") {
				t.Errorf("DMARCFailed() = %v with DMARC %q", got.DMARCFailed(), got.DMARC)
			}
			if tt.wantDetail != "" && detail != tt.wantDetail {
				t.Errorf("Detail = %q\nwant     %q", detail, tt.wantDetail)
			}
			if !strings.Contains(detail, tt.wantDetailHas) {
				t.Errorf("Detail = %q, want it to contain %q", detail, tt.wantDetailHas)
			}
		})
	}
}

// TestAuthCheckTimeout runs out of time on the first lookup: everything
// that needed the DNS is temperror, nothing is a verdict.
func TestAuthCheckTimeout(t *testing.T) {
	dns := authDNSTable()
	dns.hang = map[string]bool{"example.com": true}
	opts := dns.options()
	opts.Timeout = time.Millisecond
	auth := NewAuthenticator(opts)
	raw := signMail(t, authMail("alice@example.com"), dkimSigner{"example.com", "sel", keyA, false})

	got := auth.Check(t.Context(), strings.NewReader(raw), net.ParseIP("192.0.2.1"), "mail.example.com", "bounce@example.com", "alice@example.com")
	want := AuthResults{SPF: "temperror", DKIM: "temperror", DMARC: "temperror", Source: "checked"}
	got.Detail = ""
	if got != want {
		t.Errorf("Check past its timeout = %+v, want %+v", got, want)
	}
}

// TestAuthCheckCancelled: a caller's context that ends is no verdict either.
func TestAuthCheckCancelled(t *testing.T) {
	auth := NewAuthenticator(authDNSTable().options())
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	got := auth.Check(ctx, strings.NewReader(authMail("alice@example.com")), net.ParseIP("198.51.100.7"), "x.example.com", "bounce@example.com", "alice@example.com")
	if got.SPF != "temperror" || got.DMARC != "temperror" {
		t.Errorf("Check with a cancelled context = %+v, want SPF and DMARC temperror", got)
	}
}

func TestAuthCheckNilInputs(t *testing.T) {
	auth := NewAuthenticator(authDNSTable().options())
	got := auth.Check(t.Context(), nil, nil, "", "bounce@example.com", "alice@example.com")
	// Without a client address SPF cannot pass; the library calls that permerror.
	want := AuthResults{SPF: "permerror", DKIM: "none", DMARC: "fail", Policy: "reject", Source: "checked"}
	got.Detail = ""
	if got != want {
		t.Errorf("Check(nil raw, nil ip) = %+v, want %+v", got, want)
	}
}

func TestFormatDetailIsOneShortLine(t *testing.T) {
	long := strings.Repeat("a", 60) + "."
	var about []string
	for range 20 {
		about = append(about, "d="+long+"example.com")
	}
	tests := []struct {
		name  string
		notes []authNote
		want  string // "" to check only the length
	}{
		{"long", []authNote{{method: "dkim", result: "pass", about: about}}, ""},
		{"multibyte at the cut", []authNote{{method: "dkim", result: "fail", about: []string{strings.Repeat("é", 400)}}}, ""},
		{"controls", []authNote{{method: "spf", result: "pass", about: []string{"mailfrom=a\r\nb\x00c\xff"}}}, "spf=pass (mailfrom=a??b?c?)"},
		{"unevaluated left out", []authNote{{method: "spf"}, {method: "dkim", result: "none"}}, "dkim=none"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := formatDetail(tt.notes...)
			checkDetail(t, got)
			if tt.want != "" && got != tt.want {
				t.Errorf("formatDetail = %q, want %q", got, tt.want)
			}
			if tt.want == "" && !strings.HasSuffix(got, "…") {
				t.Errorf("formatDetail = %q, want it cut with an ellipsis", got)
			}
		})
	}
}

func checkDetail(t *testing.T, detail string) {
	t.Helper()
	if len(detail) > maxDetailBytes {
		t.Errorf("Detail is %d bytes, more than %d", len(detail), maxDetailBytes)
	}
	if !utf8.ValidString(detail) || strings.ContainsAny(detail, "\r\n\x00") {
		t.Errorf("Detail %q is not one line of text", detail)
	}
}

// resultsHeader reads header fields as they arrive in a mail.
func resultsHeader(t testing.TB, fields ...string) textproto.Header {
	t.Helper()
	raw := crlf(strings.Join(fields, "\n") + "\n\n")
	h, err := textproto.ReadHeader(bufio.NewReader(strings.NewReader(raw)))
	if err != nil {
		t.Fatalf("reading header: %v", err)
	}
	return h
}

func TestTrustedResults(t *testing.T) {
	gmail := "Authentication-Results: mx.google.com;\n" +
		"       dkim=pass header.i=@example.com header.s=20230601 header.b=AbCdEf;\n" +
		"       spf=pass (google.com: domain of bounce@example.com designates 192.0.2.1 as permitted sender) smtp.mailfrom=bounce@example.com;\n" +
		"       dmarc=pass (p=REJECT sp=REJECT dis=NONE) header.from=example.com"
	microsoft := "Authentication-Results: spf=pass (sender IP is 192.0.2.1)\n" +
		" smtp.mailfrom=example.com; dkim=none (message not signed)\n header.d=none;dmarc=bestguesspass action=none\n" +
		" header.from=example.com;compauth=pass reason=109"

	tests := []struct {
		name    string
		fields  []string
		trusted []string
		want    AuthResults
	}{
		{
			name:    "trusted authserv-id is read",
			fields:  []string{"Received: from mail.example.com", gmail, "From: alice@example.com"},
			trusted: []string{"mx.example.net", "mx.google.com"},
			want: AuthResults{SPF: "pass", DKIM: "pass", DMARC: "pass", Policy: "reject", Source: "header:mx.google.com",
				Detail: "spf=pass (mailfrom=example.com) dkim=pass (d=example.com) dmarc=pass (from=example.com p=reject)"},
		},
		{
			name:    "authserv-id compared case-insensitively",
			fields:  []string{"Authentication-Results: MX.Example.NET 1; spf=fail smtp.mailfrom=example.com"},
			trusted: []string{"mx.example.net"},
			want:    AuthResults{SPF: "fail", Source: "header:mx.example.net", Detail: "spf=fail (mailfrom=example.com)"},
		},
		{
			name:    "untrusted authserv-id is ignored",
			fields:  []string{"Authentication-Results: mx.evil.example; spf=pass smtp.mailfrom=example.com; dmarc=pass header.from=example.com"},
			trusted: []string{"mx.example.net"},
			want:    AuthResults{},
		},
		{
			name: "topmost trusted field wins over an untrusted one above and a forged one below",
			fields: []string{
				"Authentication-Results: relay.example.org; dmarc=pass header.from=example.com",
				"Authentication-Results: mx.example.net; spf=fail smtp.mailfrom=bounce@example.com;\n dkim=none; dmarc=fail (p=reject) header.from=example.com",
				"Authentication-Results: mx.example.net; spf=pass smtp.mailfrom=example.com; dmarc=pass header.from=example.com",
			},
			trusted: []string{"mx.example.net"},
			want: AuthResults{SPF: "fail", DKIM: "none", DMARC: "fail", Policy: "reject", Source: "header:mx.example.net",
				Detail: "spf=fail (mailfrom=example.com) dkim=none dmarc=fail (from=example.com p=reject)"},
		},
		{
			name:    "nothing trusted",
			fields:  []string{gmail},
			trusted: nil,
			want:    AuthResults{},
		},
		{
			name:    "an empty trusted id matches nothing",
			fields:  []string{"Authentication-Results: ; spf=pass smtp.mailfrom=example.com"},
			trusted: []string{""},
			want:    AuthResults{},
		},
		{
			name:    "no field",
			fields:  []string{"From: alice@example.com"},
			trusted: []string{"mx.example.net"},
			want:    AuthResults{},
		},
		{
			name:    "garbage results",
			fields:  []string{"Authentication-Results: mx.example.net; this is not a result"},
			trusted: []string{"mx.example.net"},
			want:    AuthResults{},
		},
		{
			name:    "garbage field",
			fields:  []string{"Authentication-Results: ;;;(((\"\\"},
			trusted: []string{"mx.example.net"},
			want:    AuthResults{},
		},
		{
			name:    "unknown version",
			fields:  []string{"Authentication-Results: mx.example.net 2; spf=pass smtp.mailfrom=example.com"},
			trusted: []string{"mx.example.net"},
			want:    AuthResults{},
		},
		{
			name:    "a trusted garbage field hides the fields below it",
			fields:  []string{"Authentication-Results: mx.example.net; garbage", "Authentication-Results: mx.example.net; dmarc=pass header.from=example.com"},
			trusted: []string{"mx.example.net"},
			want:    AuthResults{},
		},
		{
			name:    "no check made",
			fields:  []string{"Authentication-Results: mx.example.net; none"},
			trusted: []string{"mx.example.net"},
			want:    AuthResults{Source: "header:mx.example.net"},
		},
		{
			name:    "microsoft's words",
			fields:  []string{strings.Replace(microsoft, "Authentication-Results: ", "Authentication-Results: protection.outlook.com; ", 1)},
			trusted: []string{"protection.outlook.com"},
			want: AuthResults{SPF: "pass", DKIM: "none", DMARC: "none", Source: "header:protection.outlook.com",
				Detail: "spf=pass (mailfrom=example.com) dkim=none (d=none) dmarc=none (from=example.com)"},
		},
		{
			name:    "policy as a property, semicolons in comments, hardfail",
			fields:  []string{"Authentication-Results: mx.example.net; spf=hardfail (ip 198.51.100.7; not allowed) smtp.mailfrom=example.com; dmarc=fail policy.published-domain-policy=quarantine header.from=example.com"},
			trusted: []string{"mx.example.net"},
			want: AuthResults{SPF: "fail", DMARC: "fail", Policy: "quarantine", Source: "header:mx.example.net",
				Detail: "spf=fail (mailfrom=example.com) dmarc=fail (from=example.com p=quarantine)"},
		},
		{
			name:    "one passing signature among several",
			fields:  []string{"Authentication-Results: mx.example.net; dkim=fail header.d=esp.example.net; dkim=pass (good) header.d=example.com; dkim=temperror header.d=x.example"},
			trusted: []string{"mx.example.net"},
			want: AuthResults{DKIM: "pass", Source: "header:mx.example.net",
				Detail: "dkim=pass (d=esp.example.net:fail d=example.com d=x.example:temperror)"},
		},
		{
			name:    "dkim policy and neutral",
			fields:  []string{"Authentication-Results: mx.example.net; dkim=neutral header.d=a.example; dkim=policy header.d=example.com"},
			trusted: []string{"mx.example.net"},
			want: AuthResults{DKIM: "fail", Source: "header:mx.example.net",
				Detail: "dkim=fail (d=a.example:permerror d=example.com)"},
		},
		{
			name:    "unknown result values are left out",
			fields:  []string{"Authentication-Results: mx.example.net; spf=maybe smtp.mailfrom=example.com; dmarc=perhaps (p=reject) header.from=example.com"},
			trusted: []string{"mx.example.net"},
			want:    AuthResults{Source: "header:mx.example.net"},
		},
		{
			name:    "spf of the helo name",
			fields:  []string{"Authentication-Results: mx.example.net; spf=pass smtp.helo=mail.example.com"},
			trusted: []string{"mx.example.net"},
			want:    AuthResults{SPF: "pass", Source: "header:mx.example.net", Detail: "spf=pass (helo=mail.example.com)"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TrustedResults(resultsHeader(t, tt.fields...), tt.trusted)
			if got != tt.want {
				t.Errorf("TrustedResults =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestTrustedResultsDetailIsShort(t *testing.T) {
	field := "Authentication-Results: mx.example.net"
	for i := range 40 {
		field += "; dkim=fail header.d=" + strings.Repeat("x", 50) + string(rune('a'+i%26)) + ".example"
	}
	got := TrustedResults(resultsHeader(t, field), []string{"mx.example.net"})
	if got.DKIM != "fail" {
		t.Errorf("DKIM = %q, want fail", got.DKIM)
	}
	checkDetail(t, got.Detail)
	if !strings.HasSuffix(got.Detail, "…") {
		t.Errorf("Detail = %q, want it cut", got.Detail)
	}
}

func TestSplitResinfo(t *testing.T) {
	tests := []struct {
		in       string
		texts    []string
		comments []string // of all clauses, in order
	}{
		{"id; spf=pass (a; b) x=y", []string{"id", " spf=pass   x=y"}, []string{"a; b"}},
		{`id; a=b (nested (one) \) here)c=d`, []string{"id", " a=b  c=d"}, []string{"nested (one) ) here"}},
		{`id; a="x;y" (c`, []string{"id", ` a="x;y" `}, []string{"c"}},
		{`id; a="q\";r"; b=c`, []string{"id", ` a="q\";r"`, " b=c"}, nil},
		{"", []string{""}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			clauses := splitResinfo(tt.in)
			var texts, comments []string
			for _, c := range clauses {
				texts = append(texts, c.text)
				comments = append(comments, c.comments...)
			}
			if strings.Join(texts, "|") != strings.Join(tt.texts, "|") || len(texts) != len(tt.texts) {
				t.Errorf("texts = %q, want %q", texts, tt.texts)
			}
			if strings.Join(comments, "|") != strings.Join(tt.comments, "|") {
				t.Errorf("comments = %q, want %q", comments, tt.comments)
			}
		})
	}
}

func TestDNSDomain(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Example.COM.", "example.com"},
		{"mail.example.com", "mail.example.com"},
		{"bücher.example", "xn--bcher-kva.example"},
		{"localhost", ""},
		{"[192.0.2.1]", ""},
		{"a..example", ""},
		{"exa mple.com", ""},
		{strings.Repeat("a", 64) + ".example", ""},
		{"", ""},
	}
	for _, tt := range tests {
		if got := dnsDomain(tt.in); got != tt.want {
			t.Errorf("dnsDomain(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzTrustedResults feeds arbitrary Authentication-Results fields: no panic,
// a short one-line Detail, and results only from the trusted server.
func FuzzTrustedResults(f *testing.F) {
	f.Add("mx.example.net; spf=pass smtp.mailfrom=example.com; dmarc=fail (p=reject) header.from=example.com")
	f.Add("mx.example.net; dkim=pass header.d=example.com (((")
	f.Add(`mx.example.net; a="\`)
	f.Add("mx.example.net 1; none")
	f.Add("evil.example; spf=pass")
	f.Fuzz(func(t *testing.T, value string) {
		var h textproto.Header
		h.Add("Authentication-Results", value)
		got := TrustedResults(h, []string{"mx.example.net"})
		checkDetail(t, got.Detail)
		if got != (AuthResults{}) && got.Source != "header:mx.example.net" {
			t.Errorf("Source = %q", got.Source)
		}
	})
}

// FuzzAuthCheck feeds arbitrary mail and addresses: no panic, a short
// one-line Detail, and only the documented values.
func FuzzAuthCheck(f *testing.F) {
	auth := NewAuthenticator(authDNSTable().options())
	seed := authMail("alice@example.com")
	var signed strings.Builder
	if err := dkim.Sign(&signed, strings.NewReader(seed), &dkim.SignOptions{Domain: "example.com", Selector: "sel", Signer: keyA}); err != nil {
		f.Fatal(err)
	}
	f.Add(signed.String(), "192.0.2.1", "mail.example.com", "bounce@example.com", "alice@example.com")
	f.Add(seed, "::1", "", "", "")
	f.Add("DKIM-Signature: v=1; d=broken.example; s=sel; a=ed25519-sha256; h=from; bh=; b=\r\nFrom: a@b\r\n\r\n", "203.0.113.7", "[1.2.3.4]", "a@@b", "<@>")
	f.Add("DKIM-Signature: v=1; d=localhost; s=unexpected; a=rsa-sha256; h=From; bh=x; b=y\r\n\r\n", "x", "a..b", "@", "a@.")
	valid := map[string]bool{"": true, "pass": true, "fail": true, "softfail": true, "neutral": true, "none": true, "temperror": true, "permerror": true}
	f.Fuzz(func(t *testing.T, raw, ip, helo, mailFrom, from string) {
		got := auth.Check(t.Context(), strings.NewReader(raw), net.ParseIP(ip), helo, mailFrom, from)
		checkDetail(t, got.Detail)
		for _, v := range []string{got.SPF, got.DKIM, got.DMARC} {
			if !valid[v] {
				t.Errorf("result %q in %+v", v, got)
			}
		}
		if got.Source != "checked" {
			t.Errorf("Source = %q", got.Source)
		}
	})
}
