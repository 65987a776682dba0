package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/catalyst/catalyst/internal/accounts"
	"github.com/catalyst/catalyst/internal/app"
	"github.com/catalyst/catalyst/internal/domain"
)

// stdin is where `catalyst user create` reads the password (tests replace it).
var stdin io.Reader = os.Stdin

// cmdUser manages accounts from the terminal: the way to make the first
// admin of a server whose sign-up is closed (production).
func cmdUser(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "create" {
		return fmt.Errorf("user: want a subcommand: create")
	}
	fs := flag.NewFlagSet("user create", flag.ContinueOnError)
	fs.SetOutput(stderr)
	src := sourceFlags(fs)
	email := fs.String("email", "", "the user's e-mail address (required)")
	name := fs.String("name", "", "the user's display name (default: the address's local part)")
	admin := fs.Bool("admin", false, "make the user an administrator")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: catalyst user create --email E [--admin] [--name N]\n\nThe password is read from standard input (a prompt on a terminal), never from the command line.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("user create: unexpected argument %q: the password is read from standard input, never from the command line", fs.Arg(0))
	}
	if *email == "" {
		return errors.New("user create: --email is required")
	}
	cfg, err := load(*src)
	if err != nil {
		return err
	}
	password, err := readPassword(stdin, stderr)
	if err != nil {
		return err
	}
	acc, st, err := app.OpenAccounts(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.Close()
	role := domain.RoleUser
	if *admin {
		role = domain.RoleAdmin
	}
	u, err := acc.CreateUser(ctx, accounts.NewUser{Email: *email, Password: password, Name: *name, Role: role})
	if err != nil {
		return fmt.Errorf("user create: %w", err)
	}
	fmt.Fprintf(stdout, "created %s %s (%s)\n", u.Role, u.Email, u.ID)
	return nil
}

// readPassword reads one line: from a terminal with a prompt and no echo,
// else from the pipe.
func readPassword(in io.Reader, prompt io.Writer) (string, error) {
	if f, ok := in.(*os.File); ok && isTerminal(f) {
		fmt.Fprint(prompt, "Password: ")
		p, err := readNoEcho(f)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		fmt.Fprint(prompt, "Again: ")
		again, err := readNoEcho(f)
		fmt.Fprintln(prompt)
		if err != nil {
			return "", fmt.Errorf("reading the password: %w", err)
		}
		if p != again {
			return "", errors.New("the two passwords differ")
		}
		return p, nil
	}
	line, err := bufio.NewReaderSize(in, accounts.MaxPasswordBytes+2).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("reading the password from standard input: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("no password on standard input (pipe it in, or run on a terminal to be prompted)")
	}
	return line, nil
}
