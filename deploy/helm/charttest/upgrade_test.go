package charttest

import (
	"bytes"
	"testing"

	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/scheme"
)

// secretsOnly is a cluster holding the given Secrets, as the `lookup` the
// chart's secrets.yaml calls during an upgrade sees it.
type secretsOnly struct{ client dynamic.Interface }

func (s secretsOnly) GetClientFor(apiVersion, kind string) (dynamic.NamespaceableResourceInterface, bool, error) {
	return s.client.Resource(schema.GroupVersionResource{Version: "v1", Resource: "secrets"}), true, nil
}

// renderUpgrade renders the chart as `helm upgrade` does against a cluster
// holding existing.
func renderUpgrade(t *testing.T, vals map[string]any, existing ...runtime.Object) *rendered {
	t.Helper()
	chrt, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	rv, err := chartutil.ToRenderValues(chrt, vals, chartutil.ReleaseOptions{Name: releaseName, Namespace: namespace, IsUpgrade: true, Revision: 2}, chartutil.DefaultCapabilities)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.RenderWithClientProvider(chrt, rv, secretsOnly{dynamicfake.NewSimpleDynamicClient(scheme.Scheme, existing...)})
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	var manifest bytes.Buffer
	for _, name := range sortedKeys(files) {
		if len(bytes.TrimSpace([]byte(files[name]))) > 0 && !bytes.HasSuffix([]byte(name), []byte("NOTES.txt")) {
			manifest.WriteString("---\n" + files[name] + "\n")
		}
	}
	r, err := decode(manifest.String())
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// TestUpgradeKeepsGeneratedSecrets: an upgrade renders the CA, keyring and
// admin password the install generated, byte for byte. A new keyring could
// not open the state's keys and a new CA would split the cluster.
func TestUpgradeKeepsGeneratedSecrets(t *testing.T) {
	vals := values(t, historyDSN)
	installed := must(t, vals)
	var existing []runtime.Object
	for _, name := range []string{"oc-opsconductor-cluster-ca", "oc-opsconductor-keyring", "oc-opsconductor-admin"} {
		s := installed.secrets[name]
		if s == nil {
			t.Fatalf("install rendered no Secret %s", name)
		}
		s.Namespace = namespace
		existing = append(existing, s)
	}
	upgraded := renderUpgrade(t, vals, existing...)
	for _, o := range existing {
		name := o.(interface{ GetName() string }).GetName()
		want, got := installed.secrets[name], upgraded.secrets[name]
		if got == nil {
			t.Errorf("the upgrade renders no Secret %s: Helm would delete it", name)
			continue
		}
		for k, v := range want.Data {
			if !bytes.Equal(got.Data[k], v) {
				t.Errorf("the upgrade changes %s/%s", name, k)
			}
		}
	}

	// And the lookup is what keeps them: without the Secrets in the
	// cluster the values are fresh.
	fresh := renderUpgrade(t, vals)
	if bytes.Equal(fresh.secrets["oc-opsconductor-keyring"].Data["keyring.key"], installed.secrets["oc-opsconductor-keyring"].Data["keyring.key"]) {
		t.Error("a render without the installed Secrets reproduced the keyring: the test proves nothing")
	}
}
