package main

import (
	"errors"
	"flag"
	"fmt"
)

// cmdFlags is the FlagSet of one command, with the text of its help.
type cmdFlags struct {
	*flag.FlagSet
	name  string // "invoices show"
	usage string // the argument synopsis
	help  string // what the command does
}

// flagSet returns the flags of a command, the global flags included.
func (c *cli) flagSet(name, usage, help string) *cmdFlags {
	fs := flag.NewFlagSet("billingctl "+name, flag.ContinueOnError)
	fs.SetOutput(c.stderr)
	c.g.register(fs)
	// The flag package calls Usage both for -h and after a bad flag; parse prints the full help
	// for -h, and a one-line pointer to it after an error.
	fs.Usage = func() {}
	return &cmdFlags{FlagSet: fs, name: name, usage: usage, help: help}
}

// printHelp prints the command's full help.
func (f *cmdFlags) printHelp() {
	w := f.Output()
	fmt.Fprintf(w, "Usage:\n  billingctl %s %s\n\n%s\nFlags (global flags included):\n", f.name, f.usage, f.help)
	f.PrintDefaults()
	fmt.Fprint(w, exitCodesHelp)
}

// parse parses args, allowing flags before and after positional arguments (the standard flag
// package stops at the first positional one), and returns the positional arguments. -h prints
// the help and returns flag.ErrHelp.
func parse(f *cmdFlags, args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				f.printHelp()
				return nil, err
			}
			// The flag package has printed the error itself.
			fmt.Fprintf(f.Output(), "run 'billingctl help %s' for its flags\n", f.name)
			return nil, &usageError{msg: err.Error(), reported: true}
		}
		args = f.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// noArgs fails unless pos is empty.
func noArgs(name string, pos []string) error {
	if len(pos) > 0 {
		return usagef("unexpected argument %q: %s takes flags only (see 'billingctl help %s')", pos[0], name, name)
	}
	return nil
}

// oneOf fails unless v is one of the allowed values of flag name.
func oneOf(name, v string, allowed ...string) error {
	for _, a := range allowed {
		if v == a {
			return nil
		}
	}
	return usagef("--%s %q: must be one of %v", name, v, allowed)
}
