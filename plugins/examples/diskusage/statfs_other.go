//go:build !unix

package main

import (
	"errors"
	"runtime"
)

func statfs(string) (usage, error) {
	return usage{}, errors.New("disk-usage does not support " + runtime.GOOS + " yet")
}
