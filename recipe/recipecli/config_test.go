package recipecli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"example.com/cairn"
	"example.com/cairn/cli"
	"example.com/cairn/cluster"
	"example.com/cairn/recipe"
)

// TestMain runs the test binary as the typed pipeline program below when
// CAIRN_TEST_TYPED_PROGRAM is set: a program with a flag of its own and a
// configuration from --config and --set, whose train step is remote.
func TestMain(m *testing.M) {
	if os.Getenv("CAIRN_TEST_TYPED_PROGRAM") != "" {
		os.Exit(typedMain(nil))
	}
	os.Exit(m.Run())
}

// typedConfig is the configuration of the typed test program.
type typedConfig struct {
	Data struct {
		Docs int `json:"docs"`
	} `json:"data"`
	Train struct {
		Order int    `json:"order"`
		Note  string `json:"note"` // not versioned
	} `json:"train"`
}

func typedDefaults() typedConfig {
	var c typedConfig
	c.Data.Docs = 10
	c.Train.Order = 3
	c.Train.Note = "default"
	return c
}

type dataCfg struct {
	Docs recipe.Versioned[int] `json:"docs"`
}

type trainCfg struct {
	Data  recipe.Artifact[int]  `json:"data"`
	Order recipe.Versioned[int] `json:"order"`
	Note  string                `json:"note"`
}

// trainResult is what the remote train step saw.
type trainResult struct {
	Order    int    `json:"order"`
	Note     string `json:"note"`
	Greeting string `json:"greeting"`
	Docs     int    `json:"docs"`
	PID      int    `json:"pid"`
	Job      string `json:"job"`
	Marin    string `json:"marin"`
}

// typedMain is the program's main. Its train step's order is offset by
// $TYPED_ORDER_OFFSET, read while the pipeline is built, and its job sets
// that variable to $TYPED_JOB_ORDER_OFFSET: a pipeline that depends on an
// environment variable which differs on the cluster (the mismatch test).
// The data step, local, deletes the file $CAIRN_TEST_DELETE names: the
// --config file is gone before the remote step's job starts.
func typedMain(o *cli.Options) int {
	fs := flag.NewFlagSet("typed", flag.ContinueOnError)
	greeting := fs.String("greeting", "hello", "a flag of the program's own")
	if o == nil {
		o = &cli.Options{}
	}
	o.Flags = fs
	build := func(cfg typedConfig) ([]recipe.Node, error) {
		offset, _ := strconv.Atoi(os.Getenv("TYPED_ORDER_OFFSET"))
		data := recipe.NewWithArtifact("typed/data", func(ctx context.Context, c dataCfg) (int, error) {
			if p := os.Getenv("CAIRN_TEST_DELETE"); p != "" {
				if err := os.Remove(p); err != nil {
					return 0, err
				}
			}
			return c.Docs.Value(), nil
		}, dataCfg{Docs: recipe.V(cfg.Data.Docs)}, nil)
		greet := *greeting
		remote := &cairn.RemoteSpec{Resources: cluster.Resources{CPUs: 1, Memory: 128 * cluster.MiB}}
		if v := os.Getenv("TYPED_JOB_ORDER_OFFSET"); v != "" {
			remote.Env = map[string]string{"TYPED_ORDER_OFFSET": v}
		}
		train := recipe.NewWithArtifact("typed/train", func(ctx context.Context, c trainCfg) (trainResult, error) {
			docs, err := c.Data.Load(ctx)
			if err != nil {
				return trainResult{}, err
			}
			job := os.Getenv("SLURM_JOB_ID")
			if job == "" {
				job = os.Getenv("CAIRN_JOB_ID")
			}
			return trainResult{Order: c.Order.Value(), Note: c.Note, Greeting: greet, Docs: docs, PID: os.Getpid(), Job: job,
				Marin: os.Getenv("MARIN_TEST_SETTING")}, nil
		}, trainCfg{Data: recipe.ArtifactOf(data), Order: recipe.V(cfg.Train.Order + offset), Note: cfg.Train.Note},
			&recipe.StepOptions{Remote: remote})
		return []recipe.Node{train}, nil
	}
	return MainConfig(typedDefaults(), build, &Options{CLI: o, Record: &recipe.RecordOptions{User: "ada", GitCommit: "0"}})
}

// typedRun runs the typed program in a subprocess in dir.
func typedRun(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Dir = dir
	cmd.Env = append(append(os.Environ(), "CAIRN_TEST_TYPED_PROGRAM=1", "CAIRN_CLUSTER="), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func trainArtifact(t *testing.T, prefix string) trainResult {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(prefix, "typed", "train-*", ".artifact"))
	if len(m) != 1 {
		t.Fatalf("train artifacts: %v", m)
	}
	data, err := os.ReadFile(m[0])
	if err != nil {
		t.Fatal(err)
	}
	var r trainResult
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	return r
}

// A program with its own flag and a config file runs its remote step with
// the parameters it was given, on the local cluster and on Slurm: the
// file's content and the overrides travel with the job (the file itself
// is deleted before the job starts), and so do MARIN_* variables.
func TestConfigReachesRemoteStep(t *testing.T) {
	clusters := []string{"local"}
	if os.Getenv("CAIRN_TEST_SLURM") != "" {
		spec := "slurm"
		if p := os.Getenv("CAIRN_TEST_SLURM_PARTITION"); p != "" {
			spec += "?partition=" + p
		}
		clusters = append(clusters, spec)
	}
	for _, spec := range clusters {
		t.Run(strings.SplitN(spec, "?", 2)[0], func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			prefix := filepath.Join(dir, "out")
			cfgFile := filepath.Join(dir, "exp.yaml")
			if err := os.WriteFile(cfgFile, []byte("# experiment\ndata:\n  docs: 7\ntrain:\n  order: 4\n  note: from-file\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := typedRun(t, dir, []string{"CAIRN_TEST_DELETE=" + cfgFile, "MARIN_TEST_SETTING=m1"},
				"--config", "exp.yaml", "--prefix", prefix, "--greeting", "bonjour", "--set", "train.note=from-set", "--cluster", spec, "--poll-interval", "200ms")
			if err != nil {
				t.Fatalf("run: %v\n%s", err, out)
			}
			got := trainArtifact(t, prefix)
			want := trainResult{Order: 4, Note: "from-set", Greeting: "bonjour", Docs: 7, PID: got.PID, Job: got.Job, Marin: "m1"}
			if got != want {
				t.Errorf("the remote step saw %+v, want %+v", got, want)
			}
			if got.Job == "" || (spec == "local") != strings.HasPrefix(got.Job, "local-") {
				t.Errorf("train ran in job %q; want a job of %s", got.Job, spec)
			}
			if _, err := os.Stat(cfgFile); !os.IsNotExist(err) {
				t.Errorf("the config file is still there (%v): the test proves nothing", err)
			}
			// The parameters are on record beside the step's other control
			// files.
			m, _ := filepath.Glob(filepath.Join(prefix, "typed", "train-*", ".cairn_params.json"))
			if len(m) != 1 {
				t.Fatalf("params records: %v", m)
			}
			data, _ := os.ReadFile(m[0])
			var rec struct {
				Args  []string `json:"args"`
				Files []struct {
					Flag, Name, Content string
				} `json:"files"`
				Env map[string]string `json:"env"`
			}
			if err := json.Unmarshal(data, &rec); err != nil {
				t.Fatal(err)
			}
			if strings.Join(rec.Args, " ") != "-config=exp.yaml -greeting=bonjour -set=train.note=from-set" ||
				len(rec.Files) != 1 || !strings.Contains(rec.Files[0].Content, "note: from-file") || rec.Env["MARIN_TEST_SETTING"] != "m1" {
				t.Errorf("params record:\n%s", data)
			}
			if _, leaked := rec.Env["CAIRN_CLUSTER"]; leaked {
				t.Errorf("CAIRN_CLUSTER travels to jobs:\n%s", data)
			}
			// Same parameters, whatever their order: cached.
			if err := os.WriteFile(cfgFile, []byte("train: {note: from-file, order: 4}\ndata: {docs: 7}\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err = typedRun(t, dir, nil, "--set", "train.note=x", "--prefix", prefix, "--config", cfgFile, "--cluster", spec)
			if err != nil || !strings.Contains(out, "2 cached") {
				t.Errorf("second run: %v\n%s", err, out)
			}
		})
	}
}

// When the rebuilt step still differs in the worker (here: the pipeline
// reads an environment variable the job sets otherwise), the error names
// the differing field and the variable.
func TestRemoteMismatchNamesTheCause(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	prefix := filepath.Join(dir, "out")
	out, err := typedRun(t, dir, []string{"TYPED_ORDER_OFFSET=0", "TYPED_JOB_ORDER_OFFSET=1"}, "--prefix", prefix, "--set", "train.order=4")
	if err == nil {
		t.Fatalf("run succeeded; want the remote step to fail\n%s", out)
	}
	for _, want := range []string{
		"worker program differs from the submitter's",
		"the step's configuration differs (submitter → here): order 4 → 5",
		"likely cause: environment variables differ from the submitter's: TYPED_ORDER_OFFSET (another value here)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// Bad configurations end the program before anything runs, naming the
// field, the file and line, or the override.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	typo := write("typo.yaml", "train:\n  ordr: 4\n")
	wrong := write("wrong.yaml", "train:\n  order: four\n")
	broken := write("broken.yaml", "train: [\n  order: 4\n")
	badJSON := write("bad.json", "{\"train\": {\"order\": 4,}}")
	for _, tc := range []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"unknown field in a file", []string{"--config", typo}, cli.ExitInvalid, typo + `:2:3: train.ordr: unknown field "ordr" in train; did you mean "order"? (fields: order, note)`},
		{"wrong type in a file", []string{"--config", wrong}, cli.ExitInvalid, wrong + `:2:10: train.order: cannot use the string "four" as int`},
		{"bad YAML", []string{"--config", broken}, cli.ExitInvalid, broken + `:2: not valid YAML or JSON`},
		{"bad JSON", []string{"--config", badJSON}, cli.ExitInvalid, badJSON + `:1:23: not valid JSON`},
		{"unknown field in --set", []string{"--set", "tran.order=4"}, cli.ExitInvalid, `--set tran.order=4: tran: unknown field "tran" in the configuration; did you mean "train"? (fields: data, train)`},
		{"wrong type in --set", []string{"--set", "data.docs=many"}, cli.ExitInvalid, `--set data.docs=many: data.docs: cannot use the string "many" as int`},
		{"--set without =", []string{"--set", "data.docs"}, cli.ExitUsage, `want FIELD=VALUE`},
		{"missing file", []string{"--config", filepath.Join(dir, "nope.yaml")}, cli.ExitUsage, `nope.yaml: no such file or directory`},
		{"unknown flag", []string{"--ordr", "4"}, cli.ExitUsage, `flag provided but not defined: -ordr`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stderr bytes.Buffer
			code := typedMain(&cli.Options{Args: append([]string{"--prefix", filepath.Join(dir, "out"), "--dry-run"}, tc.args...), Stdout: &stderr, Stderr: &stderr})
			if code != tc.wantCode || !strings.Contains(stderr.String(), tc.want) {
				t.Errorf("exit %d, want %d; output:\n%s\nwant it to contain %q", code, tc.wantCode, stderr.String(), tc.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(dir, "out", "typed")); !os.IsNotExist(err) {
		t.Errorf("a failed configuration wrote steps: %v", err)
	}
}

// --help lists the program's flags apart from cairn's, with the fields
// --set accepts.
func TestConfigHelp(t *testing.T) {
	t.Parallel()
	var stdout bytes.Buffer
	if code := typedMain(&cli.Options{Args: []string{"--help"}, Stdout: &stdout, Stderr: &stdout}); code != cli.ExitOK {
		t.Fatalf("exit %d\n%s", code, stdout.String())
	}
	help := stdout.String()
	i := strings.Index(help, "flags of ")
	j := strings.LastIndex(help, "-greeting")
	if k := strings.LastIndex(help, "flags of "); k == i || j < k || !strings.Contains(help[k:], "fields: data.docs, train.order, train.note") || strings.Contains(help[k:], "-prefix") {
		t.Errorf("help does not list the program's flags apart:\n%s", help)
	}
}
