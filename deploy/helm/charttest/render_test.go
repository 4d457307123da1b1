// Package charttest renders the Helm chart in ../opsconductor with Helm's
// own library, exactly as `helm template` and `helm install --dry-run` do,
// and checks what Kubernetes would be given. It is a module of its own so
// that Helm and the Kubernetes API types stay out of the main module.
package charttest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

const (
	chartDir    = "../opsconductor"
	releaseName = "oc"
	namespace   = "ops"
)

// rendered is one render of the chart, its documents decoded into the
// Kubernetes API types. Decoding is strict: a field Kubernetes does not
// know (a typo, a wrong indentation level) fails the render.
type rendered struct {
	manifest string
	notes    string

	statefulSets []*appsv1.StatefulSet
	daemonSets   []*appsv1.DaemonSet
	services     map[string]*corev1.Service
	secrets      map[string]*corev1.Secret
	pdbs         []*policyv1.PodDisruptionBudget
	accounts     map[string]*corev1.ServiceAccount
	// kinds counts the documents of each kind, in render order per kind.
	kinds map[string]int
	// metas holds every document's kind, name, namespace and labels.
	metas []docMeta
}

type docMeta struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name      string            `json:"name"`
		Namespace string            `json:"namespace"`
		Labels    map[string]string `json:"labels"`
	} `json:"metadata"`
}

// render runs what `helm install --dry-run` runs client-side (schema
// validation, kubeVersion check, templates, NOTES.txt) with the given
// values over the chart's defaults.
func render(vals map[string]any) (*rendered, error) {
	chrt, err := loader.Load(chartDir)
	if err != nil {
		return nil, fmt.Errorf("load chart %s: %w", chartDir, err)
	}
	inst := action.NewInstall(&action.Configuration{Log: func(string, ...any) {}})
	inst.DryRun = true
	inst.ClientOnly = true
	inst.Replace = true
	inst.ReleaseName = releaseName
	inst.Namespace = namespace
	inst.KubeVersion = &chartutil.KubeVersion{Version: "v1.30.0", Major: "1", Minor: "30"}
	rel, err := inst.Run(chrt, vals)
	if err != nil {
		return nil, err
	}
	r, err := decode(rel.Manifest)
	if err != nil {
		return nil, err
	}
	r.notes = rel.Info.Notes
	return r, nil
}

func decode(manifest string) (*rendered, error) {
	r := &rendered{
		manifest: manifest,
		services: map[string]*corev1.Service{}, secrets: map[string]*corev1.Secret{},
		accounts: map[string]*corev1.ServiceAccount{}, kinds: map[string]int{},
	}
	dec := utilyaml.NewDocumentDecoder(io.NopCloser(strings.NewReader(manifest)))
	defer dec.Close()
	buf := make([]byte, 1<<20)
	for i := 0; ; i++ {
		n, err := dec.Read(buf)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		doc := bytes.TrimSpace(buf[:n])
		// Helm prefixes each document with a "# Source:" comment.
		if len(bytes.TrimSpace(stripComments(doc))) == 0 {
			continue
		}
		var m docMeta
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("document %d: %w\n%s", i, err, doc)
		}
		r.metas = append(r.metas, m)
		r.kinds[m.Kind]++
		var target any
		switch m.Kind {
		case "StatefulSet":
			o := &appsv1.StatefulSet{}
			r.statefulSets, target = append(r.statefulSets, o), o
		case "DaemonSet":
			o := &appsv1.DaemonSet{}
			r.daemonSets, target = append(r.daemonSets, o), o
		case "Service":
			o := &corev1.Service{}
			r.services[m.Metadata.Name], target = o, o
		case "Secret":
			o := &corev1.Secret{}
			r.secrets[m.Metadata.Name], target = o, o
		case "PodDisruptionBudget":
			o := &policyv1.PodDisruptionBudget{}
			r.pdbs, target = append(r.pdbs, o), o
		case "ServiceAccount":
			o := &corev1.ServiceAccount{}
			r.accounts[m.Metadata.Name], target = o, o
		default:
			return nil, fmt.Errorf("document %d: kind %q is not one this chart should render", i, m.Kind)
		}
		if err := yaml.UnmarshalStrict(doc, target); err != nil {
			return nil, fmt.Errorf("%s %s: %w", m.Kind, m.Metadata.Name, err)
		}
	}
	return r, nil
}

func stripComments(doc []byte) []byte {
	var out [][]byte
	for _, l := range bytes.Split(doc, []byte("\n")) {
		if !bytes.HasPrefix(bytes.TrimSpace(l), []byte("#")) {
			out = append(out, l)
		}
	}
	return bytes.Join(out, []byte("\n"))
}

// must renders and fails the test on an error.
func must(t *testing.T, vals map[string]any) *rendered {
	t.Helper()
	r, err := render(vals)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

// values builds a values map from dotted paths, as --set does.
func values(t *testing.T, sets ...string) map[string]any {
	t.Helper()
	vals := map[string]any{}
	for _, s := range sets {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			t.Fatalf("values: %q is not path=yaml", s)
		}
		var val any
		if err := yaml.Unmarshal([]byte(v), &val); err != nil {
			t.Fatalf("values: %q: %v", s, err)
		}
		m := vals
		parts := strings.Split(k, ".")
		for _, p := range parts[:len(parts)-1] {
			next, ok := m[p].(map[string]any)
			if !ok {
				next = map[string]any{}
				m[p] = next
			}
			m = next
		}
		m[parts[len(parts)-1]] = val
	}
	return vals
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
