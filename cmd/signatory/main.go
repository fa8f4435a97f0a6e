// Command signatory is a Tezos remote signer. See README.md.
package main

import (
	"os"

	"github.com/signatory-go/signatory/internal/cli"
)

func main() { os.Exit(cli.Execute()) }
