package gateway

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"sort"
	"strings"
)

// The API description is hand-written, not generated, so it is reviewed
// like code; TestOpenAPI keeps it true to the route table and to what the
// handlers send. openapi.json is the base; openapi.d holds one fragment per
// domain (see openapi.d/README.md).
//
//go:embed openapi.json openapi.d
var openAPIFiles embed.FS

// openAPIDocument is the merged document, built once at init and never
// written after.
var openAPIDocument = mustMergeOpenAPI(openAPIFiles)

// OpenAPI returns a copy of the OpenAPI 3.1 document the server serves.
func OpenAPI() []byte { return append([]byte(nil), openAPIDocument...) }

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) error {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(openAPIDocument); err != nil {
		loggerFrom(r.Context()).Debug("write openapi document", "error", err)
	}
	return nil
}

// mustMergeOpenAPI panics on a broken fragment: the files are compiled in,
// so a bad one is a bug that every test run catches at once.
func mustMergeOpenAPI(files fs.FS) []byte {
	doc, err := mergeOpenAPI(files)
	if err != nil {
		panic(err)
	}
	return doc
}

func mergeOpenAPI(files fs.FS) ([]byte, error) {
	base, err := fs.ReadFile(files, "openapi.json")
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	var doc map[string]any
	if err := json.Unmarshal(base, &doc); err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	names, err := fs.Glob(files, "openapi.d/*.json")
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	sort.Strings(names)
	for _, name := range names {
		raw, err := fs.ReadFile(files, name)
		if err != nil {
			return nil, fmt.Errorf("openapi: %w", err)
		}
		if err := mergeFragment(doc, raw); err != nil {
			return nil, fmt.Errorf("openapi fragment %s: %w", path.Base(name), err)
		}
	}
	documentNotReady(doc)
	out, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("openapi: %w", err)
	}
	return out, nil
}

func mergeFragment(doc map[string]any, raw []byte) error {
	var frag map[string]any
	if err := json.Unmarshal(raw, &frag); err != nil {
		return err
	}
	for key, val := range frag {
		switch key {
		case "tags":
			add, ok := val.([]any)
			if !ok {
				return fmt.Errorf("tags must be a list")
			}
			have, _ := doc["tags"].([]any)
			doc["tags"] = append(have, add...)
		case "paths":
			if err := mergeUnique(doc, "paths", val, "paths"); err != nil {
				return err
			}
		case "components":
			kinds, ok := val.(map[string]any)
			if !ok {
				return fmt.Errorf("components must be an object")
			}
			comps, _ := doc["components"].(map[string]any)
			if comps == nil {
				comps = map[string]any{}
				doc["components"] = comps
			}
			for kind, entries := range kinds {
				if err := mergeUnique(comps, kind, entries, "components."+kind); err != nil {
					return err
				}
			}
		default:
			return fmt.Errorf("unknown key %q: a fragment holds only tags, paths and components", key)
		}
	}
	return nil
}

// mergeUnique adds the entries of val to parent[key], refusing any entry
// that is already there.
func mergeUnique(parent map[string]any, key string, val any, where string) error {
	add, ok := val.(map[string]any)
	if !ok {
		return fmt.Errorf("%s must be an object", where)
	}
	have, _ := parent[key].(map[string]any)
	if have == nil {
		have = map[string]any{}
		parent[key] = have
	}
	var dup []string
	for k, v := range add {
		if _, exists := have[k]; exists {
			dup = append(dup, k)
			continue
		}
		have[k] = v
	}
	if len(dup) > 0 {
		sort.Strings(dup)
		return fmt.Errorf("%s defined twice: %s", where, strings.Join(dup, ", "))
	}
	return nil
}

// documentNotReady adds a 503 to every operation that checks credentials
// (those that document a 401): a node that has not applied the log up to
// its leader's commit index answers 503 not_ready rather than 401 for a
// credential it cannot find yet (see authenticate). Added here, once, so
// that no fragment can forget it.
func documentNotReady(doc map[string]any) {
	paths, _ := doc["paths"].(map[string]any)
	for _, item := range paths {
		ops, _ := item.(map[string]any)
		for _, op := range ops {
			o, _ := op.(map[string]any)
			resp, _ := o["responses"].(map[string]any)
			if resp == nil || resp["401"] == nil || resp["503"] != nil {
				continue
			}
			resp["503"] = map[string]any{"$ref": "#/components/responses/Unavailable"}
		}
	}
}
