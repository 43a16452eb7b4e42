// Package recipe is cairn's typed executor layer, compatible with Marin's
// ExecutorStep: a step is a Go function plus a config value of the user's
// struct type, in which some fields are versioned (they change the step's
// identity: a tokenizer, a learning rate) and others are not (worker
// counts, log levels), and in which paths to other steps' outputs and to
// the step's own output are placeholders resolved at run time. Resolution
// produces plain [cairn.Step] values that cairn's runner executes.
//
// It is named for what it holds: in Go, "executor" reads as "the thing that
// runs", which is the core runner's job.
//
// # Steps
//
//	type TokenizeConfig struct {
//		Input     recipe.Input             `json:"input"`     // another step's output: a dependency
//		Tokenizer recipe.Versioned[string] `json:"tokenizer"` // part of the version
//		Workers   int                      `json:"workers"`   // not versioned
//		Output    recipe.Output            `json:"output"`    // this step's output path
//	}
//
//	raw := recipe.New("raw", download, DownloadConfig{URL: recipe.V("https://...")}, nil)
//	tok := recipe.NewWithArtifact("tokenized/wiki", tokenize, TokenizeConfig{
//		Input:     recipe.OutputOf(raw, "docs"),
//		Tokenizer: recipe.V("gpt2"),
//		Workers:   8,
//	}, nil)
//
// [New] takes a func(context.Context, C) error; [NewWithArtifact] a
// func(context.Context, C) (A, error) whose result is saved as the step's
// artifact. Both return a *Step[C, A] ([Step]); [Node] is the interface of
// steps of any type, for lists. The function receives a copy of the config in
// which every placeholder is resolved: [Input.Path] and [Output.Path] are
// concrete paths there, [Input.Open] and [Output.Open] open them with the
// run's storage, [Artifact.Load] decodes another step's artifact with the
// type the compiler checked, and [Logger] gives the step's logger.
//
// # Placeholders
//
//   - [V](x) makes x a [Versioned] value: part of the version. It must be
//     plain data (no placeholder or step inside).
//   - [OutputOf](step, "sub/path") is an [Input] on another step's output:
//     a blocking dependency. [Input.Join] appends to the sub-path,
//     [Input.Nonblocking] makes it a pseudo-dependency: part of the version,
//     but the step is neither run nor waited for unless something else
//     needs it.
//   - [ArtifactOf](step) is a typed [Artifact] reference to another step's
//     return value; it versions and schedules like OutputOf(step, "").
//   - [Path]("raw/data") is a hard-coded input path, relative to the prefix
//     unless absolute; the path itself is versioned.
//   - A field of type [Output] is this step's output path, and
//     [ThisOutput]("ckpt") a sub-path of it. It is not versioned.
//
// Configs are walked with reflection (the only use of reflection, besides
// naming functions in the records): struct fields in declaration order,
// slice and array elements by index, map entries (string keys only) in
// sorted key order — Python walks dicts in insertion order, so a Go map
// versions like the Python dict whose keys were inserted sorted.
// Pointers and interfaces are followed. A config must not be modified
// after it is given to New.
//
// Misuse is an error from [Resolve], never a silently wrong hash: a
// placeholder in an unexported field, in a field tagged json:"-" or in a
// map with non-string keys; a reference or a versioned value inside a
// versioned value; a step used directly as a config value; an Input or
// Artifact that is not set, refers to a nil step or has a sub-path that is
// absolute or contains ".."; a cyclic config; a versioned value that cannot
// be encoded (NaN, functions); two values with the same version key. Each
// is a *[ConfigError] naming the step and the field, and satisfies
// errors.Is(err, cairn.ErrInvalidPipeline).
//
// # Versions and output paths
//
// A step's version is Marin's:
//
//	{"name": NAME, "config": {KEY: VALUE, ...}, "dependencies": [VERSION, ...]}
//
// plus "pseudo_dependencies": [VERSION, ...] only if the step has
// non-blocking references. The config map holds each versioned value, and
// for each reference "DEP[i]" or "DEP[i]/sub" (i counts blocking and
// non-blocking references together, in walk order) or a hard-coded path.
// A referenced step's version is inlined whole if the step's chain depth
// is at most 4 (0 for a step without blocking dependencies, else 1 + the
// largest depth of those), and is otherwise the string "NAME-HASH6", as
// current Marin does; [InlineAll] selects older Marin's rule, which inlines
// every version, for prefixes it wrote ([ResolveWith]). KEY is the dotted
// path of the value: a struct field contributes its JSON name (the json
// tag's name if any, else the Go field name — use tags to match a Python
// dataclass's attribute names), a map entry its key, a slice element
// "[i]" ("layers.[2]" in Marin's notation); fields of untagged embedded
// structs are promoted as encoding/json promotes them. The output path is
// PREFIX/NAME-HASH6, HASH6 being the first 6 hex digits of the MD5 of the
// version encoded as Python's json.dumps(version, sort_keys=True): the
// same directory Marin's executor computes. So changing a versioned value,
// a referenced sub-path or any upstream version changes the path (and the
// step runs again); changing an unversioned value does not. Steps with the
// same version are one step, however many times they were built.
//
// # Running
//
// [Resolve] versions the steps and everything they reference, and returns
// a [Plan]: output paths, records, and plain core steps ([Plan.Steps]) whose
// OverridePath is the output path and whose Deps are the blocking
// dependencies. [Run] (or [Plan.Run]) runs a plan with cairn.Run after
// [Plan.Prepare]: selecting the steps for RunOptions.RunOnly with Marin's
// semantics (matching steps, and the dependencies of selected steps that
// have not succeeded), and writing, unless it is a dry run, every step's
// .executor_info and the experiment record
// PREFIX/experiments/PROGRAM-HASH6.json ([StepInfo], [Experiment]).
// [Materialize] resolves a config outside any step, running what it
// refers to; [Upstream] lists the steps a value refers to.
//
// Programs use package recipe/recipecli, which puts all of this behind
// cli's command line in one call.
//
// # Concurrency
//
// Steps and plans are immutable and safe for concurrent use; any number of
// runs, in this process or others sharing the prefix, may run them at once:
// the core runner's leases make each step execute once.
package recipe
