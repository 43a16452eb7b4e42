package recipecli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"iter"
	"os"
	"strings"

	"example.com/cairn"
	"example.com/cairn/cli"
	"example.com/cairn/config"
	"example.com/cairn/recipe"
)

// MainConfig is Main for a program whose pipeline is built from a
// configuration of type C, a struct (Marin's programs, configured with
// draccus, are built this way): defaults holds the program's values, and
// the command line changes them with
//
//	--config FILE        a YAML or JSON file setting fields of C (repeatable)
//	--set FIELD=VALUE    one field, by its dotted path: --set train.order=4
//	                     (repeatable)
//
// Fields are named by their json tags; package config says how values are
// written and merged. Files apply first, in order, then --set overrides,
// in order, whatever their order on the command line. Then build gets
// the configuration and returns the steps, which Main versions and runs:
// a changed field changes exactly the versions of the steps whose
// versioned fields it feeds. An unknown field, a value of the wrong type
// or a file that does not parse ends the program before anything runs,
// with exit code cli.ExitInvalid and an error naming the field, the
// fields that exist (or the closest) and the file's line.
//
// Remote steps' workers get the same configuration: the files' contents
// and the overrides travel with each job (see cli.Options.Flags), so a
// cluster node needs none of the submitter's files.
//
// opts.CLI.Flags may hold more flags of the program's own (they must not
// be named config or set); build sees their values, as it runs once the
// command line is parsed. opts.CLI.Prepare and Versions must be nil:
// MainConfig sets them.
func MainConfig[C any](defaults C, build func(cfg C) ([]recipe.Node, error), opts *Options) int {
	var o Options
	if opts != nil {
		o = *opts
	}
	var c cli.Options
	if o.CLI != nil {
		c = *o.CLI
	}
	pc := &configFlags[C]{defaults: defaults}
	fs, err := pc.flags(c.Flags)
	if err != nil {
		stderr := c.Stderr
		if stderr == nil {
			stderr = os.Stderr
		}
		fmt.Fprintln(stderr, err)
		return cli.ExitUsage
	}
	c.Flags = fs
	var plan *recipe.Plan
	c.Prepare = func(ctx context.Context, opts *cairn.RunOptions) (iter.Seq[*cairn.Step], error) {
		cfg, err := pc.resolve()
		if err != nil {
			return nil, fmt.Errorf("%w: %w", cairn.ErrInvalidPipeline, err)
		}
		steps, err := build(cfg)
		if err != nil {
			if !errors.Is(err, cairn.ErrInvalidPipeline) { // the configuration makes no pipeline
				err = fmt.Errorf("%w: %w", cairn.ErrInvalidPipeline, err)
			}
			return nil, err
		}
		return prepare(steps, o.Record, o.Resolve, &plan)(ctx, opts)
	}
	c.Versions = versions(&plan)
	return cli.Main(nil, &c)
}

// configFlags are the --config and --set flags of a configuration of
// type C.
type configFlags[C any] struct {
	defaults C
	files    []configFile
	sets     []string
}

type configFile struct {
	name string
	data []byte
}

// flags returns a flag set with --config, --set and the flags of own.
func (pc *configFlags[C]) flags(own *flag.FlagSet) (*flag.FlagSet, error) {
	fs := flag.NewFlagSet("config", flag.ContinueOnError)
	fs.Var(cli.FileFlag(func(name string, data []byte) error {
		pc.files = append(pc.files, configFile{name, data})
		return nil
	}), "config", "a YAML or JSON `file` setting fields of the configuration (repeatable; applied in order, before --set)")
	fields := config.Fields(&pc.defaults)
	list := strings.Join(fields, ", ")
	if len(fields) > 12 {
		list = strings.Join(fields[:12], ", ") + ", ..."
	}
	fs.Func("set", "set a field of the configuration, `FIELD=VALUE`, as --set train.order=4 (repeatable; fields: "+list+")", func(s string) error {
		if !strings.Contains(s, "=") {
			return fmt.Errorf("want FIELD=VALUE, for example --set %s=VALUE", first(fields))
		}
		pc.sets = append(pc.sets, s)
		return nil
	})
	var err error
	if own != nil {
		own.VisitAll(func(f *flag.Flag) {
			if fs.Lookup(f.Name) != nil {
				err = fmt.Errorf("the program's flag -%s has the name of recipecli's --%s: rename it", f.Name, f.Name)
				return
			}
			fs.Var(f.Value, f.Name, f.Usage)
		})
	}
	return fs, err
}

func first(ss []string) string {
	if len(ss) == 0 {
		return "field"
	}
	return ss[0]
}

// resolve returns the configuration: the defaults, then the files, then
// the overrides.
func (pc *configFlags[C]) resolve() (C, error) {
	cfg := pc.defaults // config copies what it changes: defaults stay intact
	for _, f := range pc.files {
		if err := config.Decode(f.name, f.data, &cfg); err != nil {
			return cfg, err
		}
	}
	for _, s := range pc.sets {
		if err := config.SetArg(&cfg, s); err != nil {
			return cfg, err
		}
	}
	return cfg, nil
}
