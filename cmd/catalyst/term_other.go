//go:build !linux

package main

import (
	"errors"
	"os"
)

func readNoEcho(*os.File) (string, error) {
	return "", errors.New("no terminal prompt on this system: pipe the password on standard input")
}
