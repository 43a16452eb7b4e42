package cli

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"unicode/utf8"

	"example.com/cairn"
	"example.com/cairn/cluster"
)

// A pipeline program's own parameters (issue 10, §2).
//
// A program declares its flags in a flag.FlagSet of its own and passes it
// as Options.Flags; Main adds them to the flags of every command that
// builds the pipeline (run, explain, status, logs, graph), and the program
// builds its steps in Options.Prepare, which runs once they are parsed.
// Every time one of them is set, Main records the argument ("-name=value",
// in order); a flag made with FileFlag records the content of the file it
// read as well. Those records, with the CAIRN_* and MARIN_* variables
// that travel to jobs (JobEnv) and a fingerprint of the rest of the
// environment, are the run's parameters: the remote runner writes them
// under each remote step's output (.cairn_params.json) before it submits
// its job, and passes their digest in the job's command. The worker reads
// them back, checks the digest, sets the program's flags with the same
// arguments (file flags get the recorded contents: the submitter's files
// need not exist on the node) and only then builds the pipeline, so it
// rebuilds exactly the submitter's. If the step still has another
// identity there, the worker's error says what differs: the step's
// configuration, field by field, and the likely cause (environment
// variables that differ from the submitter's, arguments the program
// parsed itself that never reached the worker).

// paramsFormat is the version of the parameters record format.
const paramsFormat = "cairn.params/1"

// params is the record of a run's parameters (.cairn_params.json).
type params struct {
	Format string `json:"format"`
	// Args set the program's flags (Options.Flags), "-name=value", in the
	// order they were set.
	Args []string `json:"args"`
	// Files are the contents of the files that FileFlag flags read, in
	// the order they were read.
	Files []paramFile `json:"files,omitempty"`
	// Env are the variables that travel to jobs (JobEnv).
	Env map[string]string `json:"env,omitempty"`
	// Environment fingerprints the submitter's whole environment: each
	// variable's name and a digest of its value ("set" only, for a name
	// that looks like a secret's), for a worker to say which differ.
	Environment map[string]string `json:"environment,omitempty"`
	// Ignored are command-line arguments of the submitting process that
	// Main never saw: the program parsed them itself and passed the rest
	// as Options.Args. A worker does not get them.
	Ignored []string `json:"ignored_args,omitempty"`
}

// paramFile is one file a FileFlag read.
type paramFile struct {
	Flag    string `json:"flag"`
	Name    string `json:"name"`
	Content string `json:"content,omitempty"`
	// Base64 holds content that is not valid UTF-8.
	Base64 string `json:"content_base64,omitempty"`
}

func (f paramFile) data() ([]byte, error) {
	if f.Base64 != "" {
		return base64.StdEncoding.DecodeString(f.Base64)
	}
	return []byte(f.Content), nil
}

// FileFlag returns a flag.Value for a program flag that names a file the
// program reads while its flags are parsed, such as a configuration file:
// Set reads the file and calls load with its name and content. Main
// records the content with the run's parameters, and in a remote step's
// worker Set gets the recorded content instead of reading the file, which
// need not exist on the cluster's node. Outside Main, Set reads the file.
func FileFlag(load func(name string, data []byte) error) flag.Value {
	if load == nil {
		panic("cli.FileFlag: nil load function")
	}
	return &fileFlag{load: load}
}

type fileFlag struct {
	load func(name string, data []byte) error
	// read reads a named file; nil means os.ReadFile. Main sets it for the
	// duration of a parse (recording, or replaying the recorded files).
	read  func(name string) ([]byte, error)
	names []string
}

func (f *fileFlag) String() string {
	if f == nil {
		return ""
	}
	return strings.Join(f.names, ",")
}

func (f *fileFlag) Set(name string) error {
	read := f.read
	if read == nil {
		read = os.ReadFile
	}
	data, err := read(name)
	if err != nil {
		return err
	}
	f.names = append(f.names, name)
	return f.load(name, data)
}

// paramRecorder records how the program's flags are set during one parse,
// or replays a record.
type paramRecorder struct {
	args  []string
	files []paramFile
	// replay, if not nil, serves file flags from these records, in order.
	replay []paramFile
}

// recordingFlag wraps a program flag's Value to record its arguments.
type recordingFlag struct {
	flag.Value
	name string
	rec  *paramRecorder
}

func (r *recordingFlag) String() string {
	if r == nil || r.Value == nil {
		return ""
	}
	return r.Value.String()
}

func (r *recordingFlag) IsBoolFlag() bool {
	b, ok := r.Value.(interface{ IsBoolFlag() bool })
	return ok && b.IsBoolFlag()
}

func (r *recordingFlag) Get() any {
	if g, ok := r.Value.(flag.Getter); ok {
		return g.Get()
	}
	return r.Value.String()
}

func (r *recordingFlag) Set(s string) error {
	if ff, ok := r.Value.(*fileFlag); ok {
		ff.read = func(name string) ([]byte, error) { return r.rec.readFile(r.name, name) }
		defer func() { ff.read = nil }()
	}
	if err := r.Value.Set(s); err != nil {
		return err
	}
	r.rec.args = append(r.rec.args, "-"+r.name+"="+s)
	return nil
}

// readFile reads the file a file flag names, recording it, or returns the
// next recorded content when replaying.
func (p *paramRecorder) readFile(flagName, name string) ([]byte, error) {
	if p.replay != nil {
		for i, f := range p.replay {
			if f.Flag == flagName && f.Name == name {
				p.replay = slices.Delete(p.replay, i, i+1)
				return f.data()
			}
		}
		return nil, fmt.Errorf("the submitter's parameters hold no content for -%s=%s", flagName, name)
	}
	data, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	pf := paramFile{Flag: flagName, Name: name}
	if utf8.Valid(data) {
		pf.Content = string(data)
	} else {
		pf.Base64 = base64.StdEncoding.EncodeToString(data)
	}
	p.files = append(p.files, pf)
	return data, nil
}

// addProgramFlags adds the program's flags (o.Flags) to fs, the flags of a
// command, recording in rec how they are set. A program flag with the
// name of one of the command's own is an error.
func (o Options) addProgramFlags(fs *flag.FlagSet, rec *paramRecorder) error {
	if o.Flags == nil {
		return nil
	}
	var err error
	o.Flags.VisitAll(func(f *flag.Flag) {
		if err != nil {
			return
		}
		if fs.Lookup(f.Name) != nil {
			err = fmt.Errorf("the program's flag -%s has the name of a flag of cairn's %s command: rename it", f.Name, fs.Name())
			return
		}
		fs.Var(&recordingFlag{Value: f.Value, name: f.Name, rec: rec}, f.Name, f.Usage)
	})
	return err
}

// isProgramFlag reports whether name is one of the program's flags.
func (o Options) isProgramFlag(name string) bool {
	return o.Flags != nil && o.Flags.Lookup(name) != nil
}

// runParams returns the encoded parameters of a run whose program flags
// were recorded in rec.
func (o Options) runParams(rec *paramRecorder) ([]byte, error) {
	p := params{Format: paramsFormat, Args: rec.args, Files: rec.files, Env: JobEnv(os.Environ()), Environment: fingerprint(os.Environ())}
	if p.Args == nil {
		p.Args = []string{}
	}
	if len(os.Args) > 1 && !slices.Equal(o.Args, os.Args[1:]) {
		// Arguments the process got that Main did not: the program parsed
		// them itself. Said by a worker whose pipeline differs.
		p.Ignored = ignoredArgs(os.Args[1:], o.Args)
	}
	data, err := json.MarshalIndent(p, "", "  ")
	if err != nil {
		return nil, err
	}
	if len(data) > maxParamsSize {
		return nil, fmt.Errorf("the program's parameters (its flags and the files they read) take %d bytes, more than the %d a job can be given", len(data), maxParamsSize)
	}
	return data, nil
}

// ignoredArgs returns the arguments of argv that are not in args, the
// arguments Main was given: the words before them when args ends argv
// (the program consumed its own flags first), else every word args lacks;
// a bare "--" is not one.
func ignoredArgs(argv, args []string) []string {
	var out []string
	if n := len(argv) - len(args); n >= 0 && slices.Equal(argv[n:], args) {
		out = slices.Clone(argv[:n])
	} else {
		for _, a := range argv {
			if !slices.Contains(args, a) {
				out = append(out, a)
			}
		}
	}
	return slices.DeleteFunc(out, func(a string) bool { return a == "--" })
}

// maxParamsSize bounds the parameters record (statusfile.MaxSize).
const maxParamsSize = 1 << 20

// decodeParams decodes a parameters record.
func decodeParams(data []byte) (params, error) {
	var p params
	if err := json.Unmarshal(data, &p); err != nil {
		return params{}, fmt.Errorf("the submitter's parameters: %w", err)
	}
	if p.Format != paramsFormat {
		return params{}, fmt.Errorf("the submitter's parameters have format %q; this program reads %q", p.Format, paramsFormat)
	}
	return p, nil
}

// replayParams sets the program's flags as the submitter's were set,
// serving file flags from the recorded contents.
func (o Options) replayParams(p params) error {
	if len(p.Args) == 0 {
		return nil
	}
	if o.Flags == nil {
		return fmt.Errorf("%w: the submitter set program flags %q, but this program declares none", cairn.ErrProgramMismatch, p.Args)
	}
	rec := &paramRecorder{replay: slices.Clone(p.Files)}
	if rec.replay == nil {
		rec.replay = []paramFile{}
	}
	fs := flag.NewFlagSet("worker parameters", flag.ContinueOnError)
	fs.SetOutput(discard{})
	if err := o.addProgramFlags(fs, rec); err != nil {
		return err
	}
	if err := fs.Parse(p.Args); err != nil {
		return fmt.Errorf("%w: the submitter's parameters %q: %v", cairn.ErrProgramMismatch, p.Args, err)
	}
	return nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// JobEnv returns the variables of environ (in os.Environ form) that a
// pipeline program passes to its remote steps' jobs, so that a pipeline
// reading them builds the same steps there, on any cluster backend:
// every CAIRN_* and MARIN_* variable except
//   - those naming where this process submits jobs or stages its program
//     (CAIRN_CLUSTER, CAIRN_STAGE_PROGRAM): a job does not submit;
//   - those a backend sets for each job (CAIRN_JOB_ID, CAIRN_REPLICA,
//     CAIRN_REPLICAS, CAIRN_ATTEMPT, CAIRN_DEPENDENCY_GROUPS,
//     CAIRN_VERIFIED_PROGRAM): a submitter
//     that itself runs in a job must not hand its own to another;
//   - those whose name looks like a secret's (containing TOKEN, SECRET,
//     PASSWORD, PASSWD, CREDENTIAL, or KEY as a word, as in
//     MARIN_API_KEY): a job's environment is stored by schedulers and
//     shown to administrators. A step that needs one names it in
//     RemoteSpec.Env. (The local and slurm backends pass the submitter's
//     whole environment anyway.)
func JobEnv(environ []string) map[string]string {
	env := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || !(strings.HasPrefix(k, "CAIRN_") || strings.HasPrefix(k, "MARIN_")) {
			continue
		}
		switch k {
		case "CAIRN_CLUSTER", "CAIRN_STAGE_PROGRAM",
			"CAIRN_JOB_ID", "CAIRN_REPLICA", "CAIRN_REPLICAS", "CAIRN_ATTEMPT", "CAIRN_DEPENDENCY_GROUPS",
			cluster.VerifiedProgramEnv:
			continue
		}
		if secretName(k) {
			continue
		}
		env[k] = v
	}
	return env
}

// secretName reports whether an environment variable's name looks like a
// secret's.
func secretName(name string) bool {
	n := strings.ToUpper(name)
	for _, w := range []string{"TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return slices.Contains(strings.Split(n, "_"), "KEY") || strings.HasSuffix(n, "KEY")
}

// fingerprint returns, for each variable of environ, a short digest of its
// value ("set" for a secret's name): enough to tell a differing value,
// not to recover it.
func fingerprint(environ []string) map[string]string {
	fp := make(map[string]string, len(environ))
	for _, kv := range environ {
		k, v, _ := strings.Cut(kv, "=")
		if secretName(k) {
			fp[k] = "set"
			continue
		}
		d := sha256.Sum256([]byte(k + "=" + v))
		fp[k] = hex.EncodeToString(d[:6])
	}
	return fp
}

// perJobEnv reports whether a variable is expected to differ between a
// submitter and its job: set by a scheduler for each job, or describing
// the host, terminal or session.
func perJobEnv(name string) bool {
	for _, p := range []string{"SLURM_", "SSH_", "XDG_", "TMUX", "SUDO_", "KRB5", "CUDA_", "OMPI_", "PMI", "PMIX_"} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	switch name {
	case "CAIRN_JOB_ID", "CAIRN_REPLICA", "CAIRN_REPLICAS", "CAIRN_ATTEMPT", "CAIRN_DEPENDENCY_GROUPS",
		"HOSTNAME", "HOST", "PWD", "OLDPWD", "SHLVL", "_", "TMPDIR", "TERM", "TERM_PROGRAM", "COLORTERM",
		"DISPLAY", "LS_COLORS", "PS1", "MAIL", "STY", "WINDOW", "COLUMNS", "LINES", "SHELL", "NO_COLOR",
		"ENVIRONMENT", "LANG", "LC_ALL", "EDITOR", "PAGER", "LESS", "HISTFILE", "HISTSIZE":
		return true
	}
	return false
}

// envDifferences lists the variables whose values in the submitter's
// fingerprint differ from this process's, or that are unset here (at most
// max, CAIRN_* and MARIN_* first), and the number left out.
func envDifferences(submitter map[string]string, environ []string, max int) ([]string, int) {
	here := fingerprint(environ)
	var ours, others []string
	for k, v := range submitter {
		if perJobEnv(k) {
			continue
		}
		h, ok := here[k]
		var d string
		switch {
		case !ok:
			d = k + " (unset here)"
		case h != v:
			d = k + " (another value here)"
		default:
			continue
		}
		if strings.HasPrefix(k, "CAIRN_") || strings.HasPrefix(k, "MARIN_") {
			ours = append(ours, d)
		} else {
			others = append(others, d)
		}
	}
	slices.Sort(ours)
	slices.Sort(others)
	all := append(ours, others...)
	if len(all) > max {
		return all[:max], len(all) - max
	}
	return all, 0
}

// workerParams reads and applies the submitter's parameters in a worker:
// the record under path with the given digest ("" if the job carried
// none).
func (o Options) workerParams(ctx context.Context, storage cairn.BucketOpener, path, digest string) (*params, error) {
	if digest == "" {
		return nil, nil
	}
	if path == "" {
		return nil, fmt.Errorf("%w: worker --params needs --path", cairn.ErrInvalidPipeline)
	}
	data, err := cairn.ReadJobParams(ctx, storage, path, digest)
	if err != nil {
		return nil, err
	}
	p, err := decodeParams(data)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", cairn.ErrProgramMismatch, err)
	}
	if err := o.replayParams(p); err != nil {
		return nil, err
	}
	return &p, nil
}
