package password

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestPolicyCheck(t *testing.T) {
	tests := []struct {
		name     string
		username string
		password string
		wantRule string // "" means accepted
	}{
		{"a long uncommon passphrase is accepted", "alice", "violet tractor umbrella", ""},
		{"twelve characters are enough", "alice", "vT9#kq2!mZ4p", ""},
		{"eleven characters are too few", "alice", "vT9#kq2!mZ4", RuleMinLength},
		{"an empty password is too short", "alice", "", RuleMinLength},
		{"length counts code points, so twelve 3-byte characters are enough", "alice", "密码密码密码安全安全安全", ""},
		{"length counts code points, so eleven 4-byte emoji are too few", "alice", strings.Repeat("🔒", 11), RuleMinLength},
		{"256 characters are accepted", "alice", strings.Repeat("ab3", 85) + "x", ""},
		{"257 characters are too many", "alice", strings.Repeat("ab3", 85) + "xy", RuleMaxLength},
		{"a tab is an invalid character", "alice", "violet\ttractor umbrella", RuleInvalidCharacters},
		{"a newline is an invalid character", "alice", "violet tractor umbrella\n", RuleInvalidCharacters},
		{"a NUL byte is an invalid character", "alice", "violet tractor\x00umbrella", RuleInvalidCharacters},
		{"a C1 control character is an invalid character", "alice", "violet tractor\u0085umbrella", RuleInvalidCharacters},
		{"invalid UTF-8 is rejected", "alice", "violet tractor \xffumbrella", RuleInvalidCharacters},
		{"spaces and symbols are valid characters", "alice", "  ~!@#$%^&*()_+  ", ""},
		{"a common password is rejected", "alice", "password1234", RuleCommonPassword},
		{"a common password is rejected whatever its case", "alice", "PassWord1234", RuleCommonPassword},
		{"a common keyboard walk with digits is rejected", "alice", "qwertyuiop123", RuleCommonPassword},
		{"a long password from the source list is rejected", "alice", "1qaz2wsx3edc4rfv", RuleCommonPassword},
		{"the username is rejected", "operations-lead", "operations-lead", RuleEqualsUsername},
		{"the username in another case is rejected", "Operations-Lead", "OPERATIONS-lead", RuleEqualsUsername},
		{"the username reversed is rejected", "operations-lead", "Dael-Snoitarepo", RuleEqualsUsername},
		{"the username with digits appended is rejected", "admin", "Admin31415926", RuleContainsUsername},
		{"the username with digits prepended is rejected", "admin", "31415926admin", RuleContainsUsername},
		{"the username reversed with digits appended is rejected", "admin", "nimda31415926", RuleContainsUsername},
		{"the username with other words is accepted", "admin", "admin violet tractor", ""},
		{"the username with digits and a symbol is accepted", "admin", "admin31415926!", ""},
		{"an empty username skips the username rules", "", "31415926admin", ""},
		// The rules are applied in a fixed order; the first broken one wins.
		{"a short password that is also common reports min_length", "alice", "letmein", RuleMinLength},
		{"a common password that is also the username reports common_password", "password1234", "password1234", RuleCommonPassword},
		{"the common admin1234567 reports common_password even for user admin", "admin", "admin1234567", RuleCommonPassword},
		{"an overlong password with control characters reports max_length", "alice", strings.Repeat("\x01", 300), RuleMaxLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := DefaultPolicy.Check(tt.username, tt.password)
			if tt.wantRule == "" {
				if err != nil {
					t.Fatalf("Check = %v, want nil", err)
				}
				return
			}
			var pe *PolicyError
			if !errors.As(err, &pe) {
				t.Fatalf("Check = %v, want a *PolicyError with rule %s", err, tt.wantRule)
			}
			if pe.Rule != tt.wantRule {
				t.Errorf("Rule = %q (%s), want %q", pe.Rule, pe.Message, tt.wantRule)
			}
			if tt.password != "" && strings.Contains(err.Error(), tt.password) {
				t.Errorf("error %q contains the password", err)
			}
		})
	}
}

func TestPolicyMessages(t *testing.T) {
	tests := []struct {
		name     string
		policy   Policy
		password string
		want     string
	}{
		{"min_length names the minimum", DefaultPolicy, "short", "password must be at least 12 characters"},
		{"max_length names the maximum", DefaultPolicy, strings.Repeat("x", 257), "password must be at most 256 characters"},
		{"a custom minimum is named", Policy{MinLength: 16}, "violet tractor", "password must be at least 16 characters"},
		{"invalid_characters says what is allowed", DefaultPolicy, "violet tractor\tumbrella", "password must be valid UTF-8 text without control characters"},
		{"common_password says why", DefaultPolicy, "qwertyuiop123", "password must not be one of the most commonly used passwords"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.policy.Check("alice", tt.password)
			if err == nil || err.Error() != tt.want {
				t.Errorf("Check = %v, want %q", err, tt.want)
			}
		})
	}
}

func TestZeroPolicyHasNoLengthLimits(t *testing.T) {
	var p Policy
	if err := p.Check("alice", "x"); err != nil {
		t.Errorf("zero Policy: Check(short) = %v, want nil", err)
	}
	if err := p.Check("alice", strings.Repeat("x", 10000)); err != nil {
		t.Errorf("zero Policy: Check(long) = %v, want nil", err)
	}
	if err := p.Check("alice", "password"); err == nil {
		t.Error("zero Policy: Check(common) = nil, want common_password")
	}
}

func TestCommonPasswordList(t *testing.T) {
	zr, err := gzip.NewReader(bytes.NewReader(commonGz))
	if err != nil {
		t.Fatal(err)
	}
	var lines, long int
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		w := sc.Text()
		lines++
		if w == "" || w != strings.ToLower(w) || !utf8.ValidString(w) {
			t.Errorf("line %d, %q: want a non-empty lower-case word", lines, w)
		}
		if utf8.RuneCountInString(w) >= 12 {
			long++
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	set := commonPasswords()

	t.Run("it has at least 10,000 entries", func(t *testing.T) {
		if lines < 10000 {
			t.Errorf("%d entries", lines)
		}
	})
	t.Run("it has at least 2,000 entries long enough to pass min_length", func(t *testing.T) {
		if long < 2000 {
			t.Errorf("%d entries of 12 or more characters", long)
		}
	})
	t.Run("it has no duplicates", func(t *testing.T) {
		if len(set) != lines {
			t.Errorf("%d lines but %d distinct entries", lines, len(set))
		}
	})
	t.Run("it holds the passwords people pick first", func(t *testing.T) {
		for _, w := range []string{"123456", "password", "qwerty", "iloveyou", "password1234", "qwertyuiop123", "123456789012", "welcome12345"} {
			if !isCommon(w) {
				t.Errorf("%q is not on the list", w)
			}
		}
	})
	t.Log(lines, "entries,", long, "of 12 or more characters")
}

func BenchmarkPolicyCheck(b *testing.B) {
	commonPasswords() // load outside the timer
	for b.Loop() {
		_ = DefaultPolicy.Check("alice", "violet tractor umbrella")
	}
}
