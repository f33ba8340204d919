package mailin

import (
	"bytes"
	"io"
	"mime"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding/charmap"
)

// wordDecoder decodes RFC 2047 encoded words in any charset go-message knows.
var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// decodeText turns a header value into valid UTF-8: encoded words are
// decoded, and raw 8-bit text that is not UTF-8 is read as Windows-1252 (what
// such mail nearly always is).
func decodeText(s string) string {
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		s = d
	}
	return toUTF8(s)
}

// toUTF8 makes s fit to store as text: valid UTF-8 (bytes that are not are
// read as Windows-1252), without NUL characters (PostgreSQL refuses them in
// text), and with the C1 control characters that ISO-8859-1 gives for bytes
// 0x80–0x9F read as Windows-1252 would show them: mail labelled ISO-8859-1 is
// very often Windows-1252 with its curly quotes, as the WHATWG encoding
// standard (and every browser and mail reader) assumes.
func toUTF8(s string) string {
	if !utf8.ValidString(s) {
		if mostlyUTF8(s) {
			// UTF-8 with a damaged byte (a cut sequence): reading it all as
			// Windows-1252 would garble every accent to repair one.
			s = strings.ToValidUTF8(s, "\uFFFD")
		} else if d, err := charmap.Windows1252.NewDecoder().String(s); err == nil && utf8.ValidString(d) {
			s = d
		} else {
			s = strings.ToValidUTF8(s, "\uFFFD")
		}
	}
	if strings.IndexByte(s, 0) >= 0 {
		s = strings.ReplaceAll(s, "\x00", "")
	}
	if hasC1Control(s) {
		s = strings.Map(func(r rune) rune {
			if r >= 0x80 && r <= 0x9f {
				if w := charmap.Windows1252.DecodeByte(byte(r)); w != utf8.RuneError {
					return w
				}
			}
			return r
		}, s)
	}
	return s
}

// mostlyUTF8 reports whether s, not valid UTF-8, still has more valid
// multi-byte sequences than invalid bytes: UTF-8 text with some damage
// rather than text in a legacy charset (whose accented letters are invalid
// UTF-8 one and all).
func mostlyUTF8(s string) bool {
	valid, invalid := 0, 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			invalid++
		case size > 1:
			valid++
		}
		i += size
	}
	return valid > invalid
}

// hasC1Control reports whether s holds a character of U+0080–U+009F (UTF-8
// C2 80 to C2 9F): what Windows-1252 text labelled ISO-8859-1 turns into.
// Spanish text is full of other C2 sequences (¿, ¡, º), so the first byte
// alone is no test.
func hasC1Control(s string) bool {
	for i := strings.IndexByte(s, 0xc2); i >= 0 && i+1 < len(s); {
		if s[i+1] >= 0x80 && s[i+1] <= 0x9f {
			return true
		}
		j := strings.IndexByte(s[i+1:], 0xc2)
		if j < 0 {
			return false
		}
		i += 1 + j
	}
	return false
}

// mediaType parses a Content-Type or Content-Disposition value leniently:
// the lower-cased value before the first ';' and its parameters, RFC 2231
// continuations and charsets included (the standard library keeps only UTF-8
// and ASCII ones, and drops all parameters on the first malformed one).
func mediaType(v string) (string, map[string]string) {
	value, rest, _ := strings.Cut(v, ";")
	value = strings.ToLower(strings.TrimSpace(value))
	raw := splitParams(rest)

	params := map[string]string{}
	type piece struct {
		n       int
		val     string
		encoded bool
	}
	continued := map[string][]piece{}
	for _, kv := range raw {
		key, val := kv[0], kv[1]
		name, section, hasSection := strings.Cut(key, "*")
		if !hasSection {
			if _, dup := params[name]; !dup {
				params[name] = decodeText(val)
			}
			continue
		}
		if section == "" { // name*=charset'lang'value
			params[name] = decode2231(val)
			continue
		}
		encoded := strings.HasSuffix(section, "*")
		n, err := strconv.Atoi(strings.TrimSuffix(section, "*"))
		if err != nil || n < 0 || n > 1000 {
			continue
		}
		continued[name] = append(continued[name], piece{n, val, encoded})
	}
	for name, pieces := range continued {
		sort.Slice(pieces, func(i, j int) bool { return pieces[i].n < pieces[j].n })
		// Encoded pieces are percent-decoded as bytes and the charset named by
		// the first piece applies to them all.
		cs := ""
		var b bytes.Buffer
		for i, p := range pieces {
			if !p.encoded {
				b.WriteString(p.val)
				continue
			}
			val := p.val
			if i == 0 {
				if parts := strings.SplitN(val, "'", 3); len(parts) == 3 {
					cs, val = parts[0], parts[2]
				}
			}
			b.WriteString(percentDecode(val))
		}
		params[name] = decodeCharset(cs, b.String())
	}
	return value, params
}

// splitParams splits "; a=1; b="x;y"" into key/value pairs, keys
// lower-cased, quotes removed, malformed pieces skipped.
func splitParams(s string) [][2]string {
	var out [][2]string
	for len(s) > 0 {
		s = strings.TrimLeft(s, "; \t\r\n")
		if s == "" {
			break
		}
		eq := strings.IndexAny(s, "=;")
		if eq < 0 || s[eq] == ';' {
			if eq < 0 {
				break
			}
			s = s[eq:]
			continue
		}
		key := strings.ToLower(strings.TrimSpace(s[:eq]))
		s = strings.TrimLeft(s[eq+1:], " \t\r\n")
		var val string
		if strings.HasPrefix(s, `"`) {
			var b strings.Builder
			i := 1
			for ; i < len(s); i++ {
				if s[i] == '\\' && i+1 < len(s) {
					i++
					b.WriteByte(s[i])
					continue
				}
				if s[i] == '"' {
					break
				}
				b.WriteByte(s[i])
			}
			val = b.String()
			s = s[min(i+1, len(s)):]
		} else {
			end := strings.IndexByte(s, ';')
			if end < 0 {
				end = len(s)
			}
			val = strings.TrimSpace(s[:end])
			s = s[end:]
		}
		if key != "" {
			out = append(out, [2]string{key, val})
		}
	}
	return out
}

// decode2231 decodes an RFC 2231 extended value: charset'language'%XX...
func decode2231(v string) string {
	parts := strings.SplitN(v, "'", 3)
	if len(parts) != 3 {
		return decodeText(percentDecode(v))
	}
	return decodeCharset(parts[0], percentDecode(parts[2]))
}

func percentDecode(s string) string {
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	// Stray '%' signs: decode what decodes.
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+3], 16, 8); err == nil {
				b.WriteByte(byte(n))
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func decodeCharset(cs, s string) string {
	text, _ := decodeCharsetKnown(cs, s)
	return text
}

// decodeCharsetKnown is decodeCharset, also reporting whether the charset
// was one it knows (an unknown one is read as UTF-8 or Windows-1252).
func decodeCharsetKnown(cs, s string) (string, bool) {
	cs = strings.ToLower(strings.TrimSpace(cs))
	if cs == "" || cs == "utf-8" || cs == "us-ascii" {
		return toUTF8(s), true
	}
	r, err := charset.Reader(cs, strings.NewReader(s))
	if err != nil {
		return toUTF8(s), false
	}
	d, err := io.ReadAll(r)
	if err != nil {
		return toUTF8(s), true
	}
	return toUTF8(string(d)), true
}

// cleanFilename makes a name safe to offer for download: no directories, no
// control or format characters (a right-to-left override makes
// "factura\u202efdp.exe" show as "facturaexe.pdf"), at most 200 characters.
// It returns "" when nothing usable is left.
func cleanFilename(name string) string {
	name = strings.ReplaceAll(name, "\\", "/")
	name = path.Base(strings.TrimSpace(name))
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == utf8.RuneError || r == '"' {
			return -1
		}
		return r
	}, name)
	name = strings.Trim(name, " .")
	if name == "" || name == "/" {
		return ""
	}
	if utf8.RuneCountInString(name) > 200 {
		ext := path.Ext(name)
		if utf8.RuneCountInString(ext) > 20 {
			ext = ""
		}
		r := []rune(strings.TrimSuffix(name, ext))
		name = string(r[:200-utf8.RuneCountInString(ext)]) + ext
	}
	return name
}
