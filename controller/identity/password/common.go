package password

import (
	"bufio"
	"bytes"
	"compress/gzip"
	_ "embed"
	"fmt"
	"sync"
)

// commonGz is the list of common passwords, lower-case, one per line, most
// common first. README.md says where it comes from; gen.sh rebuilds it.
//
//go:embed common-passwords.txt.gz
var commonGz []byte

// commonPasswords is loaded on first use, not at init, so that programs that
// never check a policy (the agent, the CLI) don't pay for it.
var commonPasswords = sync.OnceValue(func() map[string]struct{} {
	set, err := loadCommon(commonGz)
	if err != nil {
		// The file is embedded at build time and covered by the tests, so
		// this is a broken build, not a runtime condition.
		panic(fmt.Sprintf("password: embedded common-passwords.txt.gz: %v", err))
	}
	return set
})

func loadCommon(gz []byte) (map[string]struct{}, error) {
	zr, err := gzip.NewReader(bytes.NewReader(gz))
	if err != nil {
		return nil, err
	}
	set := make(map[string]struct{}, 16384)
	sc := bufio.NewScanner(zr)
	for sc.Scan() {
		if w := sc.Text(); w != "" {
			set[w] = struct{}{}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	return set, zr.Close()
}

// isCommon reports whether the lower-cased password is on the list.
func isCommon(lower string) bool {
	_, ok := commonPasswords()[lower]
	return ok
}
