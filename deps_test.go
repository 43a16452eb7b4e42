package cairn_test

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// importPolicy lists, for every package of the module, the module packages
// it may import (in its non-test files). It states the layering of
// docs/style.md §2.2 — vocabulary and orchestration over portable
// infrastructure over backends — and must not be relaxed just to make a
// build pass: the core never imports a backend; only composition roots do.
var importPolicy = map[string][]string{
	"":                     {"store", "lease", "cluster", "internal/statusfile", "internal/canonjson", "internal/dag"},
	"store":                {"store/driver"},
	"store/driver":         {},
	"store/storetest":      {"store", "store/driver"},
	"store/memstore":       {"store", "store/driver"},
	"store/filestore":      {"store", "store/driver"},
	"store/gcsstore":       {"store", "store/driver"},
	"store/s3store":        {"store", "store/driver"},
	"lease":                {"store"},
	"cluster":              {"cluster/driver"},
	"cluster/driver":       {},
	"cluster/clustertest":  {"cluster", "cluster/driver"},
	"cluster/localcluster": {"cluster", "cluster/driver"},
	"cluster/slurmcluster": {"cluster", "cluster/driver"},
	"cluster/k8scluster":   {"cluster", "cluster/driver"},
	// Test infrastructure: plays the kubelet for the k8scluster tests.
	"cluster/k8scluster/internal/nodeagent":           {},
	"cluster/k8scluster/internal/cmd/cairn-nodeagent": {"cluster/k8scluster/internal/nodeagent"},
	"internal/statusfile":                             {"store"},
	"internal/canonjson":                              {},
	"internal/dag":                                    {},
	"internal/explain":                                {"store", "lease", "internal/statusfile"},
	"internal/faultproxy":                             {},
	"internal/typo":                                   {},
	"internal/e2e":                                    {},
	"internal/progress":                               {""},
	"cairntest":                                       {"", "store", "store/memstore"},
	"cli":                                             {"", "store", "lease", "internal/explain", "store/filestore", "store/memstore", "cluster", "cluster/localcluster", "cluster/slurmcluster", "internal/progress", "runrecord", "internal/typo"},
	"cmd/cairn":                                       {"cli", "store", "store/filestore", "store/memstore", "store/gcsstore", "store/s3store"},
	"recipe":                                          {"", "internal/canonjson", "internal/statusfile", "store"},
	"recipe/recipecli":                                {"", "cli", "recipe", "config"},
	"config":                                          {"internal/typo"},
	"runrecord":                                       {"", "internal/statusfile", "store"},
	"examples/ngram":                                  {"", "cli", "cluster", "cluster/k8scluster", "recipe", "recipe/recipecli", "store"},
	"examples/rawsteps":                               {"", "cli"},
	"examples/watch":                                  {"", "cli", "cluster"},
	"bench":                                           {"", "cli", "store", "store/filestore", "store/gcsstore", "store/s3store"},
	"bench/slurm":                                     {"", "cli", "cluster", "bench/internal/remotebench"},
	"bench/k8s":                                       {"", "cli", "cluster", "cluster/k8scluster", "bench/internal/remotebench"},
	"bench/internal/remotebench":                      {"", "cli", "cluster"},
}

const module = "example.com/cairn"

func TestImportPolicy(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}}{{range .Imports}} {{.}}{{end}}`, module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for line := range strings.SplitSeq(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Fields(line)
		pkg := rel(fields[0])
		allowed, known := importPolicy[pkg]
		if !known {
			t.Errorf("package %q is not in the import policy (deps_test.go): add it with the packages it may import", pkg)
			continue
		}
		for _, imp := range fields[1:] {
			if imp != module && !strings.HasPrefix(imp, module+"/") {
				continue
			}
			if r := rel(imp); !slices.Contains(allowed, r) {
				t.Errorf("%s imports %s, which the policy does not allow", fields[0], imp)
			}
		}
	}
}

func rel(path string) string {
	return strings.TrimPrefix(strings.TrimPrefix(path, module), "/")
}
