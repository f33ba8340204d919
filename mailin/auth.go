package mailin

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"blitiri.com.ar/go/spf"
	"github.com/emersion/go-message/textproto"
	"github.com/emersion/go-msgauth/authres"
	"github.com/emersion/go-msgauth/dkim"
	"github.com/emersion/go-msgauth/dmarc"
	"golang.org/x/net/idna"
	"golang.org/x/net/publicsuffix"
)

// AuthResults is what was found about who really sent a mail.
type AuthResults struct {
	SPF   string // "pass", "fail", "softfail", "neutral", "none", "temperror", "permerror", or "" when not evaluated
	DKIM  string // "pass" when at least one signature verified for any domain, else "fail", "none", "temperror", "permerror", ""
	DMARC string // "pass", "fail", "none" (no policy published), "temperror", "permerror", ""
	// Policy is the DMARC policy of the From: domain ("none", "quarantine", "reject") when one was found.
	Policy string
	// Detail is one line for people: domains checked and what each check said, e.g.
	// "spf=pass (mailfrom=example.com ip=192.0.2.1) dkim=pass (d=example.com) dmarc=pass (from=example.com p=reject)".
	Detail string
	// Source says where the results come from: "checked" (evaluated here), "header:<authserv-id>", or "".
	Source string
}

// DMARCFailed reports whether the From: domain failed DMARC: the mail must not be answered automatically.
func (r AuthResults) DMARCFailed() bool { return r.DMARC == "fail" }

// Verdicts shared by SPF, DKIM and DMARC (RFC 8601 section 2.7).
const (
	verdictPass      = "pass"
	verdictFail      = "fail"
	verdictSoftFail  = "softfail"
	verdictNeutral   = "neutral"
	verdictNone      = "none"
	verdictTempError = "temperror"
	verdictPermError = "permerror"
)

const (
	defaultAuthTimeout = 10 * time.Second
	// maxDKIMSignatures bounds the work one mail can ask for: the rest of
	// its signatures are not verified.
	maxDKIMSignatures = 5
	// maxDetailBytes keeps AuthResults.Detail fit for a log line or a column.
	maxDetailBytes = 500
)

// AuthOptions configures an Authenticator. Every lookup defaults to
// net.DefaultResolver; tests give tables.
type AuthOptions struct {
	// LookupTXT resolves TXT records (SPF, DKIM keys, DMARC records).
	LookupTXT func(ctx context.Context, name string) ([]string, error)
	// LookupIPAddr resolves A and AAAA records (SPF "a", "mx" and "exists").
	LookupIPAddr func(ctx context.Context, host string) ([]net.IPAddr, error)
	// LookupMX resolves MX records (SPF "mx").
	LookupMX func(ctx context.Context, name string) ([]*net.MX, error)
	// LookupAddr resolves PTR records (SPF "ptr").
	LookupAddr func(ctx context.Context, addr string) ([]string, error)
	// Timeout bounds the whole evaluation of one mail (default 10s); past it
	// results are "temperror".
	Timeout time.Duration
}

// Authenticator evaluates SPF, DKIM and DMARC for mail received over SMTP.
type Authenticator struct {
	dns     authDNS
	timeout time.Duration
}

// NewAuthenticator returns an Authenticator; zero options take their defaults.
func NewAuthenticator(opts AuthOptions) *Authenticator {
	dns := authDNS{
		txt:    opts.LookupTXT,
		ipAddr: opts.LookupIPAddr,
		mx:     opts.LookupMX,
		addr:   opts.LookupAddr,
	}
	if dns.txt == nil {
		dns.txt = net.DefaultResolver.LookupTXT
	}
	if dns.ipAddr == nil {
		dns.ipAddr = net.DefaultResolver.LookupIPAddr
	}
	if dns.mx == nil {
		dns.mx = net.DefaultResolver.LookupMX
	}
	if dns.addr == nil {
		dns.addr = net.DefaultResolver.LookupAddr
	}
	timeout := opts.Timeout
	if timeout <= 0 {
		timeout = defaultAuthTimeout
	}
	return &Authenticator{dns: dns, timeout: timeout}
}

// Check evaluates a mail. raw is the whole mail as received (header+body) and is read once for DKIM.
// ip is the SMTP client's address, helo its EHLO name, mailFrom the envelope sender ("" for the null sender:
// SPF then checks the HELO domain, RFC 7208 §2.3), from the From: header address.
func (a *Authenticator) Check(ctx context.Context, raw io.Reader, ip net.IP, helo, mailFrom, from string) AuthResults {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()

	spfOut := a.checkSPF(ctx, ip, helo, mailFrom)
	dkimOut := a.checkDKIM(ctx, raw)
	dmarcOut := a.checkDMARC(ctx, from, spfOut, dkimOut)

	spfNote := authNote{method: "spf", result: spfOut.result}
	if spfOut.domain != "" {
		spfNote.about = append(spfNote.about, spfOut.identity+"="+spfOut.domain)
	}
	if ip != nil {
		spfNote.about = append(spfNote.about, "ip="+ip.String())
	}
	return AuthResults{
		SPF:    spfOut.result,
		DKIM:   dkimOut.result,
		DMARC:  dmarcOut.result,
		Policy: dmarcOut.policy,
		Detail: formatDetail(spfNote, dkimOut.note(), dmarcOut.note()),
		Source: "checked",
	}
}

// spfOutcome is the SPF verdict on the identity DMARC aligns with.
type spfOutcome struct {
	result   string
	identity string // "mailfrom", or "helo" for the null sender
	domain   string // "" when the identity holds no usable domain
}

func (a *Authenticator) checkSPF(ctx context.Context, ip net.IP, helo, mailFrom string) spfOutcome {
	out := spfOutcome{identity: "mailfrom"}
	local, domain := splitAddress(mailFrom)
	if local == "" && domain == "" { // "" or "<>"
		// RFC 7208 section 2.4: the null sender is checked as postmaster@HELO,
		// and that is also the identity DMARC aligns (RFC 7489 section 4.1).
		out.identity, domain = "helo", helo
	}
	if local == "" {
		local = "postmaster" // RFC 7208 section 4.3
	}
	out.domain = dnsDomain(domain)
	if out.domain == "" {
		// A malformed or single-label domain is "none" (RFC 7208 section 4.3).
		out.result = verdictNone
		return out
	}
	result, _ := spf.CheckHostWithSender(ip, helo, local+"@"+out.domain,
		spf.WithContext(ctx), spf.WithResolver(a.dns))
	out.result = string(result)
	return out
}

// dkimOutcome is the DKIM verdict on a mail and on each of its signatures.
type dkimOutcome struct {
	result     string
	signatures []domainVerdict
}

// domainVerdict is what one check said about one domain.
type domainVerdict struct {
	domain, result string
}

func (a *Authenticator) checkDKIM(ctx context.Context, raw io.Reader) dkimOutcome {
	if raw == nil {
		return dkimOutcome{result: verdictNone}
	}
	// A mail may end without the blank line after its header (it has no
	// body), which the library cannot read. Two more line ends make it
	// readable and change no signature: both canonicalizations drop empty
	// lines at the end of the body (RFC 6376 section 3.4).
	raw = io.MultiReader(raw, strings.NewReader("\r\n\r\n"))
	verifications, err := dkim.VerifyWithOptions(raw, &dkim.VerifyOptions{
		LookupTXT:        func(name string) ([]string, error) { return a.dns.LookupTXT(ctx, name) },
		MaxVerifications: maxDKIMSignatures,
	})
	if err != nil && !errors.Is(err, dkim.ErrTooManySignatures) {
		// The mail could not be read through. The library then returns the
		// signatures it had started on with no error, as if they verified:
		// none of them can be believed.
		return dkimOutcome{result: verdictPermError}
	}
	out := dkimOutcome{}
	for _, v := range verifications {
		if v == nil {
			continue
		}
		out.signatures = append(out.signatures, domainVerdict{domain: dnsDomain(v.Domain), result: dkimVerdict(v.Err)})
	}
	out.result = combineDKIM(out.signatures)
	return out
}

func dkimVerdict(err error) string {
	switch {
	case err == nil:
		return verdictPass
	case dkim.IsTempFail(err):
		return verdictTempError
	case dkim.IsPermFail(err):
		return verdictPermError
	default:
		return verdictFail
	}
}

// combineDKIM gives the verdict on a mail from those on its signatures: one
// that passes is enough; otherwise a failure weighs more than an error, and a
// temporary error more than a permanent one (it may pass later).
func combineDKIM(signatures []domainVerdict) string {
	rank := map[string]int{verdictPass: 5, verdictFail: 4, verdictTempError: 3, verdictPermError: 2, verdictNone: 1}
	best := verdictNone
	for _, s := range signatures {
		if rank[s.result] > rank[best] {
			best = s.result
		}
	}
	return best
}

func (o dkimOutcome) note() authNote {
	n := authNote{method: "dkim", result: o.result}
	for _, s := range o.signatures {
		if s.domain == "" {
			continue
		}
		about := "d=" + s.domain
		if s.result != o.result {
			about += ":" + s.result
		}
		n.about = append(n.about, about)
	}
	return n
}

// dmarcOutcome is the DMARC verdict on the From: domain.
type dmarcOutcome struct {
	result string
	policy string
	from   string // the From: domain
	org    string // the organizational domain whose record applied, when the From: domain has none
}

func (a *Authenticator) checkDMARC(ctx context.Context, from string, spfOut spfOutcome, dkimOut dkimOutcome) dmarcOutcome {
	_, domain := splitAddress(from)
	out := dmarcOutcome{from: dnsDomain(domain)}
	if out.from == "" {
		// Without a From: domain there is nothing to align with (RFC 7489 section 6.6.1).
		out.result = verdictPermError
		return out
	}
	record, recordDomain, err := a.lookupDMARC(ctx, out.from)
	switch {
	case errors.Is(err, dmarc.ErrNoPolicy):
		out.result = verdictNone
		return out
	case dmarc.IsTempFail(err):
		out.result = verdictTempError
		return out
	case err != nil || record == nil:
		out.result = verdictPermError
		return out
	}
	out.policy = string(record.Policy)
	if recordDomain != out.from {
		out.org = recordDomain
		if record.SubdomainPolicy != "" {
			out.policy = string(record.SubdomainPolicy)
		}
	}

	// Checks that ended in temperror on an aligned domain might have passed:
	// the verdict is then temperror rather than fail.
	unsure := false
	weigh := func(domain, result string, mode dmarc.AlignmentMode) bool {
		if !aligned(domain, out.from, mode) {
			return false
		}
		unsure = unsure || result == verdictTempError
		return result == verdictPass
	}
	pass := weigh(spfOut.domain, spfOut.result, record.SPFAlignment)
	for _, s := range dkimOut.signatures {
		pass = weigh(s.domain, s.result, record.DKIMAlignment) || pass
	}
	switch {
	case pass:
		out.result = verdictPass
	case unsure:
		out.result = verdictTempError
	default:
		out.result = verdictFail
	}
	return out
}

// lookupDMARC finds the DMARC record of domain, or of its organizational
// domain when domain has none (RFC 7489 section 6.6.3). It also returns the
// domain where the record was found.
func (a *Authenticator) lookupDMARC(ctx context.Context, domain string) (*dmarc.Record, string, error) {
	opts := &dmarc.LookupOptions{
		LookupTXT: func(name string) ([]string, error) { return a.dns.LookupTXT(ctx, name) },
	}
	record, err := dmarc.LookupWithOptions(domain, opts)
	if !errors.Is(err, dmarc.ErrNoPolicy) {
		return record, domain, err
	}
	org := orgDomain(domain)
	if org == domain {
		return nil, domain, err
	}
	record, err = dmarc.LookupWithOptions(org, opts)
	return record, org, err
}

func (o dmarcOutcome) note() authNote {
	n := authNote{method: "dmarc", result: o.result}
	if o.from != "" {
		n.about = append(n.about, "from="+o.from)
	}
	if o.policy != "" {
		n.about = append(n.about, "p="+o.policy)
	}
	if o.org != "" {
		n.about = append(n.about, "org="+o.org)
	}
	return n
}

// aligned reports whether an authenticated domain stands for the From:
// domain: the same name in strict mode, the same organizational domain in
// relaxed mode (RFC 7489 section 3.1).
func aligned(domain, from string, mode dmarc.AlignmentMode) bool {
	if domain == "" || from == "" {
		return false
	}
	if mode == dmarc.AlignmentStrict {
		return domain == from
	}
	return orgDomain(domain) == orgDomain(from)
}

// orgDomain is the organizational domain of a domain: the registered one,
// under its public suffix. A public suffix itself is its own.
func orgDomain(domain string) string {
	org, err := publicsuffix.EffectiveTLDPlusOne(domain)
	if err != nil {
		return domain
	}
	return org
}

// splitAddress splits an address at its last '@'; domain is "" without one.
func splitAddress(addr string) (local, domain string) {
	addr = strings.Trim(strings.TrimSpace(addr), "<>")
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr, ""
	}
	return addr[:at], addr[at+1:]
}

// dnsDomain returns domain lower-cased, in its ASCII form and without a
// final dot, or "" when it is no name DNS could hold for mail: a single
// label, an empty or overlong label, an address literal, stray characters.
func dnsDomain(domain string) string {
	domain = strings.TrimSuffix(strings.TrimSpace(domain), ".")
	if !isASCII(domain) {
		ascii, err := idna.Lookup.ToASCII(domain)
		if err != nil {
			return ""
		}
		domain = ascii
	}
	domain = strings.ToLower(domain)
	if len(domain) > 253 || !strings.Contains(domain, ".") {
		return ""
	}
	for label := range strings.SplitSeq(domain, ".") {
		if label == "" || len(label) > 63 {
			return ""
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return ""
			}
		}
	}
	return domain
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// authDNS is the DNS as the SPF, DKIM and DMARC libraries see it. They tell
// "no such name" from temporary failures by the *net.DNSError they get, so
// every error is turned into one, and every error but "no such name" is
// temporary: a broken, slow or timed-out DNS gives temperror, never a verdict.
type authDNS struct {
	txt    func(ctx context.Context, name string) ([]string, error)
	ipAddr func(ctx context.Context, host string) ([]net.IPAddr, error)
	mx     func(ctx context.Context, name string) ([]*net.MX, error)
	addr   func(ctx context.Context, addr string) ([]string, error)
}

// authDNS serves spf.WithResolver.
var _ spf.DNSResolver = authDNS{}

func (d authDNS) LookupTXT(ctx context.Context, name string) ([]string, error) {
	return lookupDNS(ctx, name, d.txt)
}

func (d authDNS) LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error) {
	return lookupDNS(ctx, host, d.ipAddr)
}

func (d authDNS) LookupMX(ctx context.Context, name string) ([]*net.MX, error) {
	return lookupDNS(ctx, name, d.mx)
}

func (d authDNS) LookupAddr(ctx context.Context, addr string) ([]string, error) {
	return lookupDNS(ctx, addr, d.addr)
}

// lookupDNS runs one lookup unless the evaluation is out of time, and gives
// its error the form authDNS promises.
func lookupDNS[T any](ctx context.Context, name string, lookup func(context.Context, string) (T, error)) (T, error) {
	if err := ctx.Err(); err != nil {
		var none T
		return none, dnsError(ctx, name, err)
	}
	answer, err := lookup(ctx, name)
	return answer, dnsError(ctx, name, err)
}

func dnsError(ctx context.Context, name string, err error) error {
	if err == nil {
		return nil
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) && dnsErr.IsNotFound && ctx.Err() == nil {
		return &net.DNSError{Err: dnsErr.Err, Name: name, IsNotFound: true}
	}
	return &net.DNSError{
		Err:         err.Error(),
		Name:        name,
		IsTemporary: true,
		IsTimeout:   errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded),
	}
}

// TrustedResults reads the topmost Authentication-Results header field whose authserv-id is in trusted
// (compared case-insensitively), as a mailbox provider that checked the mail on arrival wrote it. Fields of
// other authserv-ids are ignored (anyone can write one). With none trusted or found, it returns AuthResults{}.
//
// A trusted field that cannot be parsed also gives AuthResults{}: the fields
// below it may be forgeries the provider did not remove, so they are not read.
func TrustedResults(h textproto.Header, trusted []string) AuthResults {
	for _, value := range h.Values("Authentication-Results") {
		clauses := splitResinfo(value)
		id := ""
		if fields := strings.Fields(clauses[0].text); len(fields) > 0 {
			id = fields[0]
		}
		for _, t := range trusted {
			if t != "" && strings.EqualFold(id, t) {
				return headerResults(t, clauses)
			}
		}
	}
	return AuthResults{}
}

// headerResults reads the clauses of an Authentication-Results field that
// the server authservID wrote.
func headerResults(authservID string, clauses []resinfo) AuthResults {
	texts := make([]string, len(clauses))
	for i, c := range clauses {
		texts[i] = c.text
	}
	_, results, err := authres.Parse(strings.Join(texts, ";"))
	if err != nil {
		return AuthResults{}
	}
	out := AuthResults{Source: "header:" + authservID}
	spfNote := authNote{method: "spf"}
	dmarcNote := authNote{method: "dmarc"}
	var dkimOut dkimOutcome
	for _, result := range results {
		switch r := result.(type) {
		case *authres.SPFResult:
			if out.SPF != "" {
				continue // the first one is the server's word
			}
			out.SPF = headerVerdict("spf", r.Value)
			if r.From != "" {
				spfNote.about = append(spfNote.about, "mailfrom="+domainOrSelf(r.From))
			} else if r.Helo != "" {
				spfNote.about = append(spfNote.about, "helo="+r.Helo)
			}
		case *authres.DKIMResult:
			domain := r.Domain
			if domain == "" {
				domain = domainOrSelf(r.Identifier)
			}
			dkimOut.signatures = append(dkimOut.signatures, domainVerdict{domain: domain, result: headerVerdict("dkim", r.Value)})
		case *authres.DMARCResult:
			if out.DMARC != "" {
				continue
			}
			out.DMARC = headerVerdict("dmarc", r.Value)
			if r.From != "" {
				dmarcNote.about = append(dmarcNote.about, "from="+domainOrSelf(r.From))
			}
		}
	}
	if len(dkimOut.signatures) > 0 {
		dkimOut.result = combineDKIM(dkimOut.signatures)
		out.DKIM = dkimOut.result
	}
	if out.DMARC != "" {
		out.Policy = headerPolicy(clauses)
		if out.Policy != "" {
			dmarcNote.about = append(dmarcNote.about, "p="+out.Policy)
		}
	}
	spfNote.result, dmarcNote.result = out.SPF, out.DMARC
	out.Detail = formatDetail(spfNote, dkimOut.note(), dmarcNote)
	return out
}

// headerVerdict maps a result another server wrote onto the values
// AuthResults documents; anything else is left out ("").
func headerVerdict(method string, value authres.ResultValue) string {
	v := strings.ToLower(string(value))
	switch v {
	case verdictPass, verdictFail, verdictNone, verdictTempError, verdictPermError:
		return v
	case "hardfail": // RFC 8601 section 2.7.2: the old name of fail
		return verdictFail
	}
	switch method {
	case "spf":
		if v == verdictSoftFail || v == verdictNeutral {
			return v
		}
	case "dkim":
		switch v {
		case "policy": // a valid signature that the server's policy refused
			return verdictFail
		case verdictNeutral: // a signature that could not be processed (RFC 8601 section 2.7.1)
			return verdictPermError
		}
	case "dmarc":
		if v == "bestguesspass" { // Microsoft's word for "no record published"
			return verdictNone
		}
	}
	return ""
}

// headerPolicy finds the DMARC policy in the first dmarc clause: providers
// write it as a property (policy.published-domain-policy=, polrec.p=) or in a
// comment (Gmail: "(p=REJECT sp=REJECT dis=NONE)").
func headerPolicy(clauses []resinfo) string {
	for _, c := range clauses[1:] {
		fields := strings.Fields(c.text)
		if len(fields) == 0 {
			continue
		}
		method, _, _ := strings.Cut(fields[0], "=")
		if !strings.EqualFold(strings.TrimSpace(method), "dmarc") {
			continue
		}
		for _, comment := range c.comments {
			fields = append(fields, strings.Fields(comment)...)
		}
		for _, field := range fields[1:] {
			key, value, _ := strings.Cut(field, "=")
			switch strings.ToLower(key) {
			case "p", "policy.published-domain-policy", "polrec.p":
				switch value = strings.ToLower(value); value {
				case string(dmarc.PolicyNone), dmarc.PolicyQuarantine, dmarc.PolicyReject:
					return value
				}
			}
		}
		return ""
	}
	return ""
}

// resinfo is one ';'-separated clause of an Authentication-Results field,
// its comments set apart.
type resinfo struct {
	text     string
	comments []string
}

// splitResinfo splits an Authentication-Results field into its clauses.
// authres splits at every ';' and keeps comments in place, so one comment
// such as "(a; b)" would garble the clause it is in and the next one.
func splitResinfo(value string) []resinfo {
	var (
		clauses       []resinfo
		current       resinfo
		text, comment strings.Builder
		depth         int // of nested comments
		quoted        bool
		escaped       bool
	)
	flush := func() {
		if comment.Len() > 0 {
			current.comments = append(current.comments, comment.String())
			comment.Reset()
		}
		current.text = text.String()
		clauses = append(clauses, current)
		current = resinfo{}
		text.Reset()
	}
	for i := 0; i < len(value); i++ {
		c := value[i]
		switch {
		case escaped:
			escaped = false
			if depth > 0 {
				comment.WriteByte(c)
			} else {
				text.WriteByte(c)
			}
		case depth > 0:
			switch c {
			case '\\':
				escaped = true
			case '(':
				depth++
				comment.WriteByte(c)
			case ')':
				depth--
				if depth > 0 {
					comment.WriteByte(c)
					break
				}
				current.comments = append(current.comments, comment.String())
				comment.Reset()
				text.WriteByte(' ') // "pass(comment)x=y" is two words
			default:
				comment.WriteByte(c)
			}
		case quoted:
			text.WriteByte(c)
			switch c {
			case '\\':
				escaped = true
			case '"':
				quoted = false
			}
		case c == '"':
			quoted = true
			text.WriteByte(c)
		case c == '(':
			depth = 1
		case c == ';':
			flush()
		default:
			text.WriteByte(c)
		}
	}
	flush()
	return clauses
}

// domainOrSelf is the domain of an address, or s itself when it is no address.
func domainOrSelf(s string) string {
	if _, domain := splitAddress(s); domain != "" {
		return domain
	}
	return s
}

// authNote is what one check said, for AuthResults.Detail: "method=result (about...)".
type authNote struct {
	method, result string
	about          []string
}

// formatDetail writes the notes of the checks that were made on one line of
// at most maxDetailBytes, with whatever came from the mail made printable.
func formatDetail(notes ...authNote) string {
	var b strings.Builder
	for _, n := range notes {
		if n.result == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(n.method + "=" + n.result)
		if len(n.about) > 0 {
			b.WriteString(" (" + strings.Join(n.about, " ") + ")")
		}
	}
	detail := strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return '?'
		}
		return r
	}, b.String())
	if len(detail) > maxDetailBytes {
		const ellipsis = "…"
		detail = trimPartialRune(detail[:maxDetailBytes-len(ellipsis)]) + ellipsis
	}
	return detail
}
