package password

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Policy is what a new password must meet. Lengths count Unicode code points,
// not bytes, so that a passphrase in any script is measured the same way.
// A zero MinLength or MaxLength means no limit on that side.
type Policy struct {
	MinLength int
	MaxLength int
}

// DefaultPolicy follows NIST SP 800-63B: a long minimum, a generous maximum,
// any printable character, and no password from a list of common ones. It has
// no composition rules (a digit, a symbol...), which NIST advises against.
var DefaultPolicy = Policy{MinLength: 12, MaxLength: 256}

// The rules of a Policy, in the order Check applies them.
const (
	RuleMinLength         = "min_length"
	RuleMaxLength         = "max_length"
	RuleInvalidCharacters = "invalid_characters"
	RuleCommonPassword    = "common_password"
	RuleEqualsUsername    = "equals_username"
	RuleContainsUsername  = "contains_username"
)

// PolicyError is the error Check returns. Rule is one of the Rule constants,
// stable for API clients; Message says the rule in words a user can act on.
// Neither ever contains the password.
type PolicyError struct {
	Rule    string
	Message string
}

func (e *PolicyError) Error() string { return e.Message }

// Check returns a *PolicyError for the first rule that password breaks, in
// this order: min_length, max_length, invalid_characters, common_password,
// equals_username, contains_username; or nil if it meets them all.
// The username comparisons ignore case; an empty username skips them.
func (p Policy) Check(username, password string) error {
	n := utf8.RuneCountInString(password)
	if p.MinLength > 0 && n < p.MinLength {
		return &PolicyError{Rule: RuleMinLength, Message: fmt.Sprintf("password must be at least %d characters", p.MinLength)}
	}
	if p.MaxLength > 0 && n > p.MaxLength {
		return &PolicyError{Rule: RuleMaxLength, Message: fmt.Sprintf("password must be at most %d characters", p.MaxLength)}
	}
	if !utf8.ValidString(password) || strings.IndexFunc(password, unicode.IsControl) >= 0 {
		return &PolicyError{Rule: RuleInvalidCharacters, Message: "password must be valid UTF-8 text without control characters"}
	}
	lower := strings.ToLower(password)
	if isCommon(lower) {
		return &PolicyError{Rule: RuleCommonPassword, Message: "password must not be one of the most commonly used passwords"}
	}
	if username == "" {
		return nil
	}
	user := strings.ToLower(username)
	resu := reverse(user)
	if lower == user || lower == resu {
		return &PolicyError{Rule: RuleEqualsUsername, Message: "password must not be the username or the username reversed"}
	}
	if digitsAround(lower, user) || digitsAround(lower, resu) {
		return &PolicyError{Rule: RuleContainsUsername, Message: "password must not be the username with only digits added"}
	}
	return nil
}

// digitsAround reports whether s is word with only ASCII digits before or
// after it ("admin2024", "2024admin").
func digitsAround(s, word string) bool {
	if rest, ok := strings.CutPrefix(s, word); ok && allDigits(rest) {
		return true
	}
	if rest, ok := strings.CutSuffix(s, word); ok && allDigits(rest) {
		return true
	}
	return false
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

func reverse(s string) string {
	r := []rune(s)
	for i, j := 0, len(r)-1; i < j; i, j = i+1, j-1 {
		r[i], r[j] = r[j], r[i]
	}
	return string(r)
}
