package cli

import (
	"context"
	"fmt"
	"iter"
	"os"
	"path"
	"slices"
	"strings"

	"example.com/cairn"
	"example.com/cairn/internal/explain"
)

// explainMismatch says why a worker's pipeline has no step with the ID a
// job named (cairn.ErrProgramMismatch), as lines to add to the error: how
// the step's configuration here differs from what its submitter recorded
// in .executor_info, and the likely cause — the job carried no
// parameters, arguments the submitting program parsed itself, or
// environment variables whose values differ from the submitter's.
func (o Options) explainMismatch(ctx context.Context, storage cairn.BucketOpener, prefix, outPath, id string, steps iter.Seq[*cairn.Step], got *params, digest string) []string {
	var lines []string
	name := id
	if i := strings.LastIndexByte(id, '_'); i > 0 {
		name = id[:i]
	}
	if outPath != "" {
		lines = append(lines, o.configDifferences(ctx, storage, prefix, outPath, name, steps)...)
	}
	var causes []string
	submitted := got
	if submitted == nil && outPath != "" {
		// The job carried no parameters; its submitter may have recorded
		// some all the same (a job made by hand, or by an older cairn).
		if data, ok, err := cairn.ReadSubmittedParams(ctx, storage, outPath); err == nil && ok {
			if p, err := decodeParams(data); err == nil {
				submitted = &p
			}
		}
	}
	switch {
	case digest == "" && submitted != nil && len(submitted.Args) > 0:
		causes = append(causes, fmt.Sprintf("the job was not given the submitter's parameters (no --params), so the program's flags have their defaults here; the latest submission recorded %s", strings.Join(submitted.Args, " ")))
	case digest == "" && o.Flags != nil:
		causes = append(causes, "the job was not given the submitter's parameters (no --params), so the program's flags have their defaults here")
	}
	if submitted != nil && len(submitted.Ignored) > 0 {
		causes = append(causes, fmt.Sprintf("the submitter's command line had arguments its program parsed itself, which a worker never gets (%s): declare such flags in cli.Options.Flags", strings.Join(submitted.Ignored, " ")))
	}
	if submitted != nil && len(submitted.Environment) > 0 {
		if diffs, more := envDifferences(submitted.Environment, os.Environ(), 8); len(diffs) > 0 {
			s := "environment variables differ from the submitter's: " + strings.Join(diffs, ", ")
			if more > 0 {
				s += fmt.Sprintf(" and %d more", more)
			}
			causes = append(causes, s+" (a pipeline that reads one while it is built builds other steps where it differs: make it a flag, or give the job the submitter's value)")
		}
	}
	if len(causes) == 0 {
		causes = append(causes, "no parameter or environment difference was found: the pipeline depends on something else that differs here (a file it reads, the time, the host)")
	}
	for _, c := range causes {
		lines = append(lines, "likely cause: "+c)
	}
	return lines
}

// configDifferences compares the step named name here with the record its
// submitter wrote at outPath.
func (o Options) configDifferences(ctx context.Context, storage cairn.BucketOpener, prefix, outPath, name string, steps iter.Seq[*cairn.Step]) []string {
	rec, err := explain.ReadRecord(ctx, storage, outPath)
	if err != nil || rec == nil {
		return nil
	}
	var here *cairn.Step
	for s := range cairn.AllSteps(steps) {
		if s.Name == name {
			here = s
			break
		}
	}
	if here == nil {
		return nil
	}
	ex := &explainer{prefix: prefix, versions: o.Versions}
	es := ex.step(here)
	if !es.ConfigKnown {
		return nil
	}
	old, root := rec.Config, "attrs"
	if es.Versioned {
		old, root = rec.Versioned, ""
	}
	var lines []string
	if changes := explain.Diff(root, old, es.Config); len(changes) > 0 {
		parts := make([]string, len(changes))
		for i, c := range changes {
			parts[i] = strings.TrimPrefix(c.String(), ".")
		}
		lines = append(lines, "the step's configuration differs (submitter → here): "+strings.Join(parts, ", "))
	}
	var depsHere []string
	for _, d := range here.Deps {
		if p, err := d.OutputPath(prefix); err == nil {
			depsHere = append(depsHere, strings.TrimSuffix(p, "/"))
		}
	}
	var gone, added []string
	for _, d := range rec.Dependencies {
		if !slices.Contains(depsHere, d) {
			gone = append(gone, path.Base(d))
		}
	}
	for _, d := range depsHere {
		if !slices.Contains(rec.Dependencies, d) {
			added = append(added, path.Base(d))
		}
	}
	if len(gone)+len(added) > 0 {
		lines = append(lines, fmt.Sprintf("its dependencies differ: the submitter's %v, here %v", gone, added))
	}
	return lines
}

// sameProgram reports whether this program's digest is digest ("" counts
// as the same: the job did not say).
func sameProgram(digest string) bool {
	if digest == "" {
		return true
	}
	p, err := cairn.CurrentProgram()
	return err == nil && p.Digest == digest
}
