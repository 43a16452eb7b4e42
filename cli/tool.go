package cli

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"strings"

	"example.com/cairn"
)

// Tool runs the generic cairn command and returns its exit code:
//
//	cairn path NAME [--attrs JSON] [--dep NAME_WITH_HASH]... [--prefix P] [--json]
//	cairn status [PREFIX] [--json] [--failed] [--running] [--name REGEX]
//	cairn explain PREFIX STEP [--attrs JSON] [--dep NAME_WITH_HASH]... [--json]
//	cairn report PREFIX [RUN] [-o FILE] [--trace FILE] [--list] [--json]
//	cairn logs PREFIX STEP [-f] [--attempt N]
func Tool(opts *Options) int {
	o := opts.withDefaults()
	if len(o.Args) == 0 {
		toolUsage(o)
		return ExitUsage
	}
	switch o.Args[0] {
	case "path":
		return runPath(o, o.Args[1:])
	case "status":
		return runStatus(o, o.Args[1:], nil)
	case "explain":
		return runToolExplain(o, o.Args[1:])
	case "report":
		return runReport(o, "", o.Args[1:]) // report.go
	case "logs":
		return runToolLogs(o, o.Args[1:])
	case "help", "-h", "-help", "--help":
		o.Stderr = o.Stdout // asked for: help goes to stdout
		toolUsage(o)
		return ExitOK
	case "version", "-version", "--version":
		printVersion(o.Stdout)
		return ExitOK
	}
	fmt.Fprintf(o.Stderr, "cairn: unknown command %q\n", o.Args[0])
	toolUsage(o)
	return ExitUsage
}

func toolUsage(o Options) {
	fmt.Fprint(o.Stderr, `usage:
  cairn path NAME [--attrs JSON] [--dep NAME_WITH_HASH]... [--prefix P] [--json]
      print where a step writes (its output path)
  cairn status [PREFIX] [--json] [--failed] [--running] [--name REGEX]
      list the steps under PREFIX with status, lease holder and age
  cairn explain PREFIX STEP [--attrs JSON] [--dep NAME_WITH_HASH]... [--json]
      say why STEP (an output directory under PREFIX, any runner's, or with
      --attrs/--dep a step's name) would run or not: cached since when, changed
      fields against its most recent other version, first changed ancestor
  cairn version
      print the module version and VCS revision
  cairn report PREFIX [RUN] [-o FILE] [--trace FILE] [--list] [--json]
      write an HTML report of a run (the latest by default) and a trace
  cairn logs PREFIX STEP [-f] [--attempt N]
      print the log of STEP's latest attempt (or attempt N); -f follows it
      while the step runs
`)
}

// checkStepID checks that id is a step's ID: a valid step name, "_" and
// eight lowercase hex digits, as cairn and Marin write them.
func checkStepID(id string) error {
	i := strings.LastIndex(id, "_")
	if i < 0 {
		return errors.New("no _HASH suffix")
	}
	name, hash := id[:i], id[i+1:]
	if len(hash) != 8 || strings.Trim(hash, "0123456789abcdef") != "" {
		return fmt.Errorf("hash %q is not 8 lowercase hex digits", hash)
	}
	return cairn.ValidateName(name)
}

type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// stepHash parses a step's --attrs (a JSON object, integers kept exact)
// and --dep ids (name_with_hash) as `cairn path` and `cairn explain` take
// them, and returns the attributes and the step's hash_id; on bad input it
// prints the error and returns the exit code.
func stepHash(o Options, name, attrs string, deps []string) (a any, hash string, code int) {
	dec := json.NewDecoder(strings.NewReader(attrs))
	dec.UseNumber() // keep integers of any size exact
	if err := dec.Decode(&a); err != nil || dec.More() {
		fmt.Fprintf(o.Stderr, "--attrs: not a JSON value: %q\n", attrs)
		return nil, "", ExitUsage
	}
	if _, ok := a.(map[string]any); !ok {
		fmt.Fprintf(o.Stderr, "--attrs must be a JSON object, got %s\n", attrs)
		return nil, "", ExitUsage
	}
	for _, d := range deps {
		if err := checkStepID(d); err != nil {
			fmt.Fprintf(o.Stderr, "--dep %q: %v; want a dependency's name_with_hash, like raw_547180fc\n", d, err)
			return nil, "", ExitUsage
		}
	}
	h, err := cairn.HashID(name, a, deps)
	if err != nil {
		fmt.Fprintf(o.Stderr, "error: %v\n", err)
		return nil, "", ExitInvalid
	}
	return a, h, ExitOK
}

// runPath implements "cairn path".
func runPath(o Options, args []string) int {
	fs := flag.NewFlagSet("path", flag.ContinueOnError)
	fs.SetOutput(o.Stderr)
	attrs := fs.String("attrs", "{}", "the step's attributes as a JSON object")
	prefix := fs.String("prefix", "", "storage root (default $CAIRN_PREFIX, else $MARIN_PREFIX, else ./"+cairn.DefaultLocalPrefix+")")
	asJSON := fs.Bool("json", false, "print hash_id, name_with_hash and output_path as JSON")
	var deps stringList
	fs.Var(&deps, "dep", "a dependency's name_with_hash (repeatable)")
	if err := fs.Parse(interleave(fs, args)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return ExitOK
		}
		printFlagHint(o.Stderr, fs, err)
		return ExitUsage
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(o.Stderr, "path takes exactly one step NAME")
		return ExitUsage
	}
	name := fs.Arg(0)
	_, h, code := stepHash(o, name, *attrs, deps)
	if code != ExitOK {
		return code
	}
	var err error
	if *prefix, err = resolvePrefix(fs, *prefix, o.Getenv); err != nil {
		fmt.Fprintln(o.Stderr, err)
		return ExitUsage
	}
	nwh := name + "_" + h
	out := strings.TrimSuffix(*prefix, "/") + "/" + nwh
	if !*asJSON {
		fmt.Fprintln(o.Stdout, out)
		return ExitOK
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(struct {
		HashID       string `json:"hash_id"`
		NameWithHash string `json:"name_with_hash"`
		OutputPath   string `json:"output_path"`
	}{h, nwh, out})
	o.Stdout.Write(buf.Bytes())
	return ExitOK
}
