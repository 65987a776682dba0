package logging

import (
	"regexp"
	"strings"
)

// PII patterns redacted when ENABLE_PII_REDACTION is true (the guide's
// default). Deliberately narrow: a false positive mangles a log line that
// someone needs, so card numbers must also pass the Luhn check.
var (
	emailPattern = regexp.MustCompile(`[A-Za-z0-9._%+\-]+@[A-Za-z0-9.\-]+\.[A-Za-z]{2,}`)
	cardPattern  = regexp.MustCompile(`\b(?:\d[ \-]?){12,18}\d\b`)
	ssnPattern   = regexp.MustCompile(`\b\d{3}-\d{2}-\d{4}\b`)
)

// RedactPII replaces e-mail addresses, payment card numbers and US social
// security numbers in s.
func RedactPII(s string) string {
	if !strings.ContainsAny(s, "@0123456789") {
		return s
	}
	s = emailPattern.ReplaceAllString(s, "[email]")
	s = ssnPattern.ReplaceAllString(s, "[ssn]")
	return cardPattern.ReplaceAllStringFunc(s, func(m string) string {
		if luhn(m) {
			return "[card]"
		}
		return m
	})
}

// luhn reports whether the digits of s pass the Luhn checksum.
func luhn(s string) bool {
	sum, n := 0, 0
	for i := len(s) - 1; i >= 0; i-- {
		c := s[i]
		if c < '0' || c > '9' {
			continue
		}
		d := int(c - '0')
		if n%2 == 1 {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		n++
	}
	return n >= 13 && sum%10 == 0
}
