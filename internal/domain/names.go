package domain

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// IsBidiControl reports whether r is a bidirectional formatting character
// (the embeddings, overrides and isolates U+202A–U+202E and U+2066–U+2069,
// and the marks LRM, RLM and ALM). They make text display in an order other
// than the one it is stored in ("Trojan Source"), so a name or a file path
// holding one can show a reader something other than what it is.
func IsBidiControl(r rune) bool {
	switch {
	case r >= 0x202A && r <= 0x202E, r >= 0x2066 && r <= 0x2069:
		return true
	case r == 0x200E, r == 0x200F, r == 0x061C:
		return true
	}
	return false
}

// isControl reports C0 and C1 control characters and DEL.
func isControl(r rune) bool { return r < 0x20 || r >= 0x7F && r <= 0x9F }

// CheckName validates a one-line name a person gave (a project name): valid
// UTF-8 with no control character (NUL, line breaks included) and no
// bidirectional formatting character. field names it in the message.
func CheckName(field, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	for i, r := range s {
		switch {
		case r == 0:
			return fmt.Errorf("%s contains a NUL byte (at byte %d)", field, i)
		case isControl(r):
			return fmt.Errorf("%s contains a control character U+%04X (at byte %d)", field, r, i)
		case IsBidiControl(r):
			return fmt.Errorf("%s contains a bidirectional formatting character U+%04X (at byte %d)", field, r, i)
		}
	}
	if strings.TrimSpace(s) == "" {
		return fmt.Errorf("%s must not be blank", field)
	}
	return nil
}

// CheckText validates free text (a description, a prompt): valid UTF-8 with
// no control character other than tab, line feed and carriage return. Bidi
// marks are allowed here: right-to-left prose legitimately uses them.
func CheckText(field, s string) error {
	if !utf8.ValidString(s) {
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	for i, r := range s {
		switch {
		case r == '\t', r == '\n', r == '\r':
		case r == 0:
			return fmt.Errorf("%s contains a NUL byte (at byte %d)", field, i)
		case isControl(r):
			return fmt.Errorf("%s contains a control character U+%04X (at byte %d)", field, r, i)
		}
	}
	return nil
}
