package apiclient

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"sync"
	"time"
)

// The plugin registry's documents, mirroring the controller's JSON.

// StepOutput documents one output a step may set.
type StepOutput struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// StepDescription is what a step says about itself (the plugin SDK's
// Description).
type StepDescription struct {
	Name       string          `json:"name"`
	Version    string          `json:"version"`
	Summary    string          `json:"summary"`
	Params     json.RawMessage `json:"params,omitempty"`
	Outputs    []StepOutput    `json:"outputs,omitempty"`
	Idempotent bool            `json:"idempotent"`
}

// PluginBinary is one build of a plugin version.
type PluginBinary struct {
	OS         string    `json:"os"`
	Arch       string    `json:"arch"`
	SHA256     string    `json:"sha256"`
	Size       int64     `json:"size"`
	UploadedAt time.Time `json:"uploaded_at"`
	UploadedBy string    `json:"uploaded_by"`
	Holders    []string  `json:"holders"`
}

// Plugin is one registered name@version with its builds.
type Plugin struct {
	StepDescription
	Binaries  []PluginBinary `json:"binaries"`
	CreatedAt time.Time      `json:"created_at"`
	CreatedBy string         `json:"created_by"`
}

// Ref is "name@version".
func (p Plugin) Ref() string { return p.Name + "@" + p.Version }

// CatalogAgent is an agent that has a plugin version.
type CatalogAgent struct {
	ID     string `json:"id"`
	Name   string `json:"name"`
	Status string `json:"status"`
}

// CatalogAgents says which agents have a step: All for built-ins, else
// the agents that reported it (listed only to callers with agents:read).
type CatalogAgents struct {
	All   bool           `json:"all"`
	Count int            `json:"count"`
	Items []CatalogAgent `json:"items,omitempty"`
}

// Step is one entry of the step catalog.
type Step struct {
	Kind string `json:"kind"` // "builtin" or "plugin"
	StepDescription
	Platforms []string      `json:"platforms,omitempty"`
	CreatedAt *time.Time    `json:"created_at,omitempty"`
	CreatedBy string        `json:"created_by,omitempty"`
	Agents    CatalogAgents `json:"agents"`
}

// PushPluginRequest is one build to upload.
type PushPluginRequest struct {
	OS, Arch    string
	Description StepDescription
	// Binary is read to its end while the request is sent; nothing is
	// buffered. When it is also an io.Seeker (a file), a request refused
	// before the server read it (a rate limit, an expired access token)
	// is sent again from the same offset.
	Binary io.Reader
	// Progress, when set, is called as the binary is sent with the bytes
	// sent so far (from the same goroutine, never concurrently).
	Progress func(sent int64)
}

// PushPlugin uploads one build of a plugin as multipart/form-data, the
// binary streamed through a pipe rather than held in memory.
func (c *Client) PushPlugin(ctx context.Context, req PushPluginRequest) (Plugin, error) {
	desc, err := json.Marshal(req.Description)
	if err != nil {
		return Plugin{}, fmt.Errorf("encode plugin description: %w", err)
	}
	seeker, _ := req.Binary.(io.Seeker)
	start := int64(0)
	if seeker != nil {
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			seeker = nil
		}
	}
	// One boundary for every attempt, so the Content-Type fits each body.
	boundary := multipart.NewWriter(io.Discard).Boundary()
	write := func(w io.Writer) error {
		if seeker != nil {
			if _, err := seeker.Seek(start, io.SeekStart); err != nil {
				return fmt.Errorf("rewind the plugin binary: %w", err)
			}
		}
		mw := multipart.NewWriter(w)
		if err := mw.SetBoundary(boundary); err != nil {
			return err
		}
		// The server needs os, arch and description before the binary: it
		// validates them before it stores a byte.
		for _, f := range [][2]string{{"os", req.OS}, {"arch", req.Arch}} {
			if err := mw.WriteField(f[0], f[1]); err != nil {
				return err
			}
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="description"`)
		h.Set("Content-Type", "application/json")
		pw, err := mw.CreatePart(h)
		if err != nil {
			return err
		}
		if _, err := pw.Write(desc); err != nil {
			return err
		}
		fw, err := mw.CreateFormFile("binary", req.Description.Name)
		if err != nil {
			return err
		}
		if _, err := io.Copy(fw, &progressReader{r: req.Binary, fn: req.Progress}); err != nil {
			return fmt.Errorf("read the plugin binary: %w", err)
		}
		return mw.Close()
	}
	var bodies []*pipeBody
	defer func() {
		for _, b := range bodies {
			b.Close()
		}
	}()
	body := func() (io.Reader, bool) {
		if len(bodies) > 0 && seeker == nil {
			return nil, false
		}
		// An earlier body's writer must be done with the file before
		// the next one rewinds it.
		for _, b := range bodies {
			b.Close()
		}
		b := &pipeBody{write: write}
		bodies = append(bodies, b)
		return b, true
	}
	ctype := "multipart/form-data; boundary=" + boundary
	resp, err := c.roundTrip(ctx, http.MethodPost, "/api/v1/plugins", body, ctype)
	if err != nil {
		return Plugin{}, err
	}
	defer resp.Body.Close()
	var out Plugin
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return Plugin{}, fmt.Errorf("POST /api/v1/plugins: decode response: %w", err)
	}
	return out, nil
}

// pipeBody is a request body written by a goroutine through a pipe. The
// goroutine starts on the first Read, so a body that is made but never
// sent costs nothing, and Close stops it and waits for it: it never
// outlives PushPlugin.
type pipeBody struct {
	write func(io.Writer) error
	once  sync.Once
	pr    *io.PipeReader
	done  chan struct{}
}

func (b *pipeBody) start(run bool) {
	b.once.Do(func() {
		if !run {
			return
		}
		pr, pw := io.Pipe()
		b.pr, b.done = pr, make(chan struct{})
		go func() {
			defer close(b.done)
			pw.CloseWithError(b.write(pw))
		}()
	})
}

func (b *pipeBody) Read(p []byte) (int, error) {
	b.start(true)
	if b.pr == nil {
		return 0, io.ErrClosedPipe
	}
	return b.pr.Read(p)
}

// Close ends the writer (its next write fails) and waits for it.
func (b *pipeBody) Close() error {
	b.start(false)
	if b.pr != nil {
		b.pr.Close()
		<-b.done
	}
	return nil
}

// progressReader reports the bytes read so far.
type progressReader struct {
	r    io.Reader
	fn   func(int64)
	sent int64
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 && p.fn != nil {
		p.sent += int64(n)
		p.fn(p.sent)
	}
	return n, err
}

// ListPlugins returns every registered plugin version (without parameter
// schemas), by name, newest version first.
func (c *Client) ListPlugins(ctx context.Context) ([]Plugin, error) {
	var out struct {
		Items []Plugin `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/plugins", nil, &out)
	return out.Items, err
}

// GetPlugin returns one plugin version with its parameters schema.
// version is exact ("1.4.0"), a pin ("1", "1.4") or "" for the newest
// release.
func (c *Client) GetPlugin(ctx context.Context, name, version string) (Plugin, error) {
	if version == "" {
		version = "latest"
	}
	var out Plugin
	err := c.do(ctx, http.MethodGet, "/api/v1/plugins/"+url.PathEscape(name)+"/"+url.PathEscape(version), nil, &out)
	return out, err
}

// DeletePlugin deletes one exact plugin version and all its builds.
func (c *Client) DeletePlugin(ctx context.Context, name, version string) (Plugin, error) {
	var out Plugin
	err := c.do(ctx, http.MethodDelete, "/api/v1/plugins/"+url.PathEscape(name)+"/"+url.PathEscape(version), nil, &out)
	return out, err
}

// ListSteps returns the step catalog: every built-in and every registered
// plugin version.
func (c *Client) ListSteps(ctx context.Context) ([]Step, error) {
	var out struct {
		Items []Step `json:"items"`
	}
	err := c.do(ctx, http.MethodGet, "/api/v1/steps", nil, &out)
	return out.Items, err
}
