package accounts

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"

	"github.com/catalyst/catalyst/internal/domain"
)

// Password policy.
const (
	MinPasswordRunes = 10
	MaxPasswordBytes = 1024
)

// Passwords are hashed with bcrypt, over a pre-hash: bcrypt reads only the
// first 72 bytes of its input, so two long passphrases sharing those bytes
// would both verify. The password is first reduced to HMAC-SHA256 (keyed
// with a fixed label, not a secret: it only separates this use of SHA-256),
// base64-encoded to 44 bytes with no NUL, and bcrypt hashes that. bcrypt
// over argon2id: it needs no memory per attempt, so a flood of logins on a
// small host costs CPU (which the rate limits bound), never memory.
const hashScheme = "bcrypt-sha256$"

var preHashKey = []byte("catalyst password pre-hash v1")

func preHash(password string) []byte {
	m := hmac.New(sha256.New, preHashKey)
	m.Write([]byte(password))
	return []byte(base64.StdEncoding.EncodeToString(m.Sum(nil)))
}

// CheckPassword applies the policy: 10 characters at least, 1024 bytes at
// most (bcrypt's cost does not grow with length, but parsing a huge body
// does), valid UTF-8.
func CheckPassword(p string) error {
	switch {
	case !utf8.ValidString(p):
		return fmt.Errorf("%w: the password is not valid UTF-8", domain.ErrInvalid)
	case utf8.RuneCountInString(p) < MinPasswordRunes:
		return fmt.Errorf("%w: the password needs at least %d characters", domain.ErrInvalid, MinPasswordRunes)
	case len(p) > MaxPasswordBytes:
		return fmt.Errorf("%w: the password may have at most %d bytes", domain.ErrInvalid, MaxPasswordBytes)
	}
	return nil
}

// hashPassword returns the stored form of p at the given bcrypt cost.
func hashPassword(p string, cost int) (string, error) {
	h, err := bcrypt.GenerateFromPassword(preHash(p), cost)
	if err != nil {
		return "", fmt.Errorf("hashing the password: %w", err)
	}
	return hashScheme + string(h), nil
}

// verifyPassword reports whether p matches stored. An unusable stored
// hash or an over-long password is compared against dummy instead, so that
// every refusal takes one bcrypt comparison at the configured cost.
func verifyPassword(stored, dummy, p string) bool {
	h, ok := strings.CutPrefix(stored, hashScheme)
	if !ok || len(p) > MaxPasswordBytes {
		d, _ := strings.CutPrefix(dummy, hashScheme)
		_ = bcrypt.CompareHashAndPassword([]byte(d), preHash(p[:min(len(p), MaxPasswordBytes)]))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(h), preHash(p)) == nil
}
