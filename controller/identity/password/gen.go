//go:build ignore

// gen.go builds common-passwords.txt.gz; gen.sh fetches its input. It takes
// the top entries of zxcvbn's "passwords" frequency list (ranked by frequency
// in Mark Burnett's 10M password corpus), every entry of that list long enough
// to pass the length rule, and the obvious long variants of very common
// passwords (suffixes of digits and years, keyboard walks, number sequences),
// because a 12-character minimum makes every short entry redundant.
// The output is lower-case, de-duplicated, in that order, one per line, and
// gzip-compressed without a name or time so that it is reproducible.
package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"flag"
	"fmt"
	"log"
	"os"
	"strings"
)

const (
	topN      = 10000 // most frequent entries kept whatever their length
	longAtLen = 12    // entries at least this long are kept from the whole list
)

func main() {
	src := flag.String("src", "", "zxcvbn src/frequency_lists.coffee")
	out := flag.String("out", "common-passwords.txt.gz", "output file")
	flag.Parse()

	ranked, err := readZxcvbn(*src)
	if err != nil {
		log.Fatal(err)
	}

	var list []string
	seen := make(map[string]bool)
	add := func(s string) {
		s = strings.ToLower(s)
		if s != "" && !seen[s] {
			seen[s] = true
			list = append(list, s)
		}
	}
	var fromTop, fromLong int
	for i, p := range ranked {
		if i < topN {
			add(p)
			fromTop = len(list)
		}
	}
	for _, p := range ranked {
		if len(p) >= longAtLen {
			add(p)
		}
	}
	fromLong = len(list) - fromTop
	for _, p := range variants() {
		if len(p) >= longAtLen {
			add(p)
		}
	}

	var raw bytes.Buffer
	for _, p := range list {
		raw.WriteString(p)
		raw.WriteByte('\n')
	}
	var gz bytes.Buffer
	zw, err := gzip.NewWriterLevel(&gz, gzip.BestCompression)
	if err != nil {
		log.Fatal(err)
	}
	if _, err := zw.Write(raw.Bytes()); err != nil {
		log.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		log.Fatal(err)
	}
	if err := os.WriteFile(*out, gz.Bytes(), 0o644); err != nil {
		log.Fatal(err)
	}
	long := 0
	for _, p := range list {
		if len([]rune(p)) >= longAtLen {
			long++
		}
	}
	fmt.Printf("%s: %d entries (%d top, %d long from zxcvbn, %d generated), %d of length >= %d; %d bytes raw, %d gzipped\n",
		*out, len(list), fromTop, fromLong, len(list)-fromTop-fromLong, long, longAtLen, raw.Len(), gz.Len())
}

// readZxcvbn returns the "passwords" list of frequency_lists.coffee, most
// frequent first. The line looks like: `  passwords: "a,b,c".split(",")`.
func readZxcvbn(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), `  passwords: "`)
		if !ok {
			continue
		}
		line, ok = strings.CutSuffix(line, `".split(",")`)
		if !ok {
			return nil, fmt.Errorf("%s: passwords line has an unexpected shape", path)
		}
		return strings.Split(line, ","), nil
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("%s: no passwords list", path)
}

// variants returns long forms of passwords people pick when told "at least
// 12 characters": a common word with digits, a year or "!" appended, the word
// doubled, keyboard walks and number sequences.
func variants() []string {
	bases := []string{
		"password", "passw0rd", "p@ssword", "p@ssw0rd", "pass", "qwerty", "qwertyuiop",
		"asdfgh", "asdfghjkl", "zxcvbnm", "1qaz2wsx", "qazwsx", "admin", "administrator",
		"welcome", "letmein", "iloveyou", "changeme", "secret", "default", "root", "login",
		"master", "monkey", "dragon", "sunshine", "football", "baseball", "princess",
		"trustno1", "abc123", "superman", "batman", "starwars", "shadow", "michael",
		"summer", "winter", "spring", "autumn", "opsconductor",
	}
	suffixes := []string{
		"", "1", "12", "123", "1234", "12345", "123456", "1234567", "12345678",
		"123456789", "1234567890", "0", "00", "01", "007", "69", "99", "111", "321",
		"4321", "54321", "!", "!!", "1!", "12!", "123!", "1234!", "12345!", "@123",
		"#1", "123$", "123@", "@1234", "!@#", "!@#$", "qwerty",
	}
	for y := 1990; y <= 2030; y++ {
		suffixes = append(suffixes, fmt.Sprint(y), fmt.Sprint(y)+"!")
	}
	var out []string
	for _, b := range bases {
		for _, s := range suffixes {
			out = append(out, b+s)
		}
		out = append(out, b+b, b+b+"1", b+b+"123")
	}

	prefixes := func(s string) {
		for n := longAtLen; n <= len(s); n++ {
			out = append(out, s[:n])
		}
	}
	prefixes("12345678901234567890")
	prefixes("01234567890123456789")
	prefixes("98765432109876543210")
	prefixes("abcdefghijklmnopqrstuvwxyz")
	prefixes("qwertyuiopasdfghjklzxcvbnm")
	prefixes("1qaz2wsx3edc4rfv5tgb6yhn")
	prefixes("qazwsxedcrfvtgbyhnujm")
	prefixes("1q2w3e4r5t6y7u8i9o0p")
	prefixes("q1w2e3r4t5y6u7i8o9p0")
	prefixes("zaq12wsxcde34rfv")
	prefixes("!qaz@wsx#edc$rfv")
	prefixes("qweasdzxc123456")
	prefixes("123qweasdzxc")
	prefixes("1234qwerasdfzxcv")
	for _, unit := range []string{"12", "123", "1234", "abc", "abc123", "qwe", "qwe123", "asd", "xo", "ha"} {
		for s := unit; len(s) <= 20; s += unit {
			out = append(out, s)
		}
	}
	for _, c := range "abcdefghijklmnopqrstuvwxyz0123456789" {
		out = append(out, strings.Repeat(string(c), 12), strings.Repeat(string(c), 16))
	}
	return out
}
