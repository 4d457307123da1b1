package assets

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/opsconductor/opsconductor/controller/identity"
	"github.com/opsconductor/opsconductor/controller/problem"
)

// Import limits. A batch is one Raft command and so one memdb
// transaction: 250 targets of a few hundred bytes is under 100 KB per log
// entry, and keeps the transaction's changed index nodes under
// go-immutable-radix's tracking limit (8,192). Past it, committing walks
// the whole index to notify watchers, which made 1,000-target batches
// cost O(inventory) each: 100,000 rows took 38 s instead of 7.
const (
	MaxImportRows   = 200_000
	importBatchSize = 250
	// maxRowErrors bounds how many problems a report lists, and
	// maxProblemDetails how many a refusal (400) carries: clients read
	// error bodies with a small limit.
	maxRowErrors      = 1000
	maxProblemDetails = 200
)

// Import modes.
const (
	ImportCreate = "create" // every name must be new
	ImportUpsert = "upsert" // a known name is replaced
)

// ImportOptions say how Import treats the rows.
type ImportOptions struct {
	Mode string
	// DryRun checks every row and writes nothing.
	DryRun bool
	// Partial writes the valid rows even when some are not.
	Partial bool
}

// RowError is one problem with one row. Rows are numbered from 1 (a CSV
// header is not a row); Field names the column of a CSV file or the JSON
// field of a JSON one.
type RowError struct {
	Row     int    `json:"row"`
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ImportReport is what an import did, or in a dry run would do.
type ImportReport struct {
	Mode    string     `json:"mode"`
	DryRun  bool       `json:"dry_run"`
	Partial bool       `json:"partial"`
	Rows    int        `json:"rows"`
	Valid   int        `json:"valid"`
	Invalid int        `json:"invalid"`
	Created int        `json:"created"`
	Updated int        `json:"updated"`
	Written bool       `json:"written"`
	Errors  []RowError `json:"errors"`
	// ErrorsOmitted counts problems beyond the listed ones.
	ErrorsOmitted int `json:"errors_omitted,omitempty"`
}

// ImportRow is one decoded row with the problems decoding found.
type ImportRow struct {
	Row    int
	Input  TargetInput
	Errors []RowError
}

// csvColumns are the columns import reads and export writes, in order.
var csvColumns = []string{"name", "addresses", "connection", "via", "port", "username", "host_key", "host_key_policy", "tags", "groups", "owner", "notes"}

// csvAliases lets a header say "address" for addresses.
var csvAliases = map[string]string{"address": "addresses", "tag": "tags", "group": "groups"}

// DecodeCSV reads a CSV import: a header naming some of csvColumns (name
// and addresses required) and one target per record. Lists inside a cell
// (addresses, tags, groups) are separated by ";", tags written k=v. A
// problem with the file as a whole (no header, an unknown column, broken
// quoting) is an error; a problem with a cell is the row's.
func DecodeCSV(r io.Reader) ([]ImportRow, error) {
	cr := csv.NewReader(bufio.NewReader(r))
	cr.FieldsPerRecord = -1
	cr.ReuseRecord = true
	header, err := cr.Read()
	if errors.Is(err, io.EOF) {
		return nil, problem.Invalid("body", "the CSV file is empty: it needs a header row (%s)", strings.Join(csvColumns, ","))
	}
	if err != nil {
		return nil, csvProblem(err)
	}
	cols := make([]string, len(header))
	seen := map[string]bool{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if a, ok := csvAliases[h]; ok {
			h = a
		}
		switch {
		case !slices.Contains(csvColumns, h):
			return nil, problem.Invalid(fmt.Sprintf("header[%d]", i), "unknown column %q (columns: %s)", header[i], strings.Join(csvColumns, ", "))
		case seen[h]:
			return nil, problem.Invalid(fmt.Sprintf("header[%d]", i), "column %q appears twice", h)
		}
		seen[h] = true
		cols[i] = h
	}
	for _, need := range []string{"name", "addresses"} {
		if !seen[need] {
			return nil, problem.Invalid("header", "the %q column is required", need)
		}
	}
	var rows []ImportRow
	for n := 1; ; n++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return rows, nil
		}
		if err != nil {
			return nil, csvProblem(err)
		}
		if n > MaxImportRows {
			return nil, problem.New(problem.KindTooLarge, "too_many_rows", "an import holds at most %d rows", MaxImportRows)
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" && len(cols) > 1 {
			n--
			continue // a blank line
		}
		rows = append(rows, csvRow(n, cols, rec))
	}
}

func csvProblem(err error) error {
	var pe *csv.ParseError
	if errors.As(err, &pe) {
		return problem.Invalid("body", "malformed CSV at line %d, column %d: %v", pe.Line, pe.Column, pe.Err)
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return err
	}
	return problem.Invalid("body", "could not be read: %v", err)
}

func csvRow(n int, cols, rec []string) ImportRow {
	row := ImportRow{Row: n}
	bad := func(col, format string, args ...any) {
		row.Errors = append(row.Errors, RowError{Row: n, Field: col, Message: fmt.Sprintf(format, args...)})
	}
	if len(rec) > len(cols) {
		bad("", "has %d cells, the header names %d columns", len(rec), len(cols))
		return row
	}
	in := &row.Input
	conn := Connection{Type: ConnSSH}
	for i, cell := range rec {
		cell = strings.TrimSpace(cell)
		switch cols[i] {
		case "name":
			in.Name = cell
		case "addresses":
			in.Addresses = splitList(cell)
		case "connection":
			if cell != "" {
				conn.Type = cell
			}
		case "via":
			conn.Via = cell
		case "port":
			if cell != "" {
				p, err := strconv.Atoi(cell)
				if err != nil {
					bad("port", "must be a number, got %q", cell)
				}
				conn.Port = p
			}
		case "username":
			conn.Username = cell
		case "host_key":
			conn.HostKey = cell
		case "host_key_policy":
			conn.HostKeyPolicy = cell
		case "tags":
			for _, kv := range splitList(cell) {
				k, v, ok := strings.Cut(kv, "=")
				if !ok {
					bad("tags", "%q is not key=value", kv)
					continue
				}
				if in.Tags == nil {
					in.Tags = map[string]string{}
				}
				if _, dup := in.Tags[k]; dup {
					bad("tags", "tag %q is given twice", k)
				}
				in.Tags[k] = v
			}
		case "groups":
			in.Groups = splitList(cell)
		case "owner":
			in.Owner = cell
		case "notes":
			in.Notes = cell
		}
	}
	in.Connection = &conn
	return row
}

func splitList(cell string) []string {
	var out []string
	for _, p := range strings.Split(cell, ";") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// DecodeJSON reads a JSON import: an array of target objects with the
// fields of TargetInput. An element with an unknown or mistyped field is
// that row's problem; a body that is not an array of objects is an error.
func DecodeJSON(r io.Reader) ([]ImportRow, error) {
	dec := json.NewDecoder(bufio.NewReader(r))
	tok, err := dec.Token()
	if errors.Is(err, io.EOF) {
		return nil, problem.Invalid("body", "must not be empty: send a JSON array of targets")
	}
	if err != nil {
		return nil, jsonProblem(err)
	}
	if d, ok := tok.(json.Delim); !ok || d != '[' {
		return nil, problem.Invalid("body", "must be a JSON array of targets")
	}
	var rows []ImportRow
	for n := 1; dec.More(); n++ {
		if n > MaxImportRows {
			return nil, problem.New(problem.KindTooLarge, "too_many_rows", "an import holds at most %d rows", MaxImportRows)
		}
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, jsonProblem(err)
		}
		row := ImportRow{Row: n}
		if t := bytes.TrimSpace(raw); len(t) == 0 || t[0] != '{' {
			row.Errors = append(row.Errors, RowError{Row: n, Field: "", Message: "must be a JSON object"})
			rows = append(rows, row)
			continue
		}
		ed := json.NewDecoder(bytes.NewReader(raw))
		ed.DisallowUnknownFields()
		if err := ed.Decode(&row.Input); err != nil {
			row.Errors = append(row.Errors, jsonRowError(n, err))
		}
		rows = append(rows, row)
	}
	if _, err := dec.Token(); err != nil {
		return nil, jsonProblem(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, problem.Invalid("body", "unexpected data after the JSON array")
	}
	return rows, nil
}

func jsonProblem(err error) error {
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return problem.Invalid("body", "malformed JSON at byte %d: %v", syn.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem.Invalid("body", "malformed JSON: unexpected end of input")
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return err
	}
	return problem.Invalid("body", "malformed JSON: %v", err)
}

func jsonRowError(n int, err error) RowError {
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return RowError{Row: n, Field: typ.Field, Message: fmt.Sprintf("must be %s, not %s", typ.Type.String(), typ.Value)}
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return RowError{Row: n, Field: strings.Trim(name, `"`), Message: "unknown field"}
	}
	return RowError{Row: n, Field: "", Message: err.Error()}
}

// csvField names the CSV column a validation path belongs to.
func csvField(path string) string {
	switch {
	case strings.HasPrefix(path, "addresses"):
		return "addresses"
	case strings.HasPrefix(path, "tags"):
		return "tags"
	case strings.HasPrefix(path, "groups"):
		return "groups"
	case path == "connection.type" || path == "connection":
		return "connection"
	case strings.HasPrefix(path, "connection."):
		return strings.TrimPrefix(path, "connection.")
	}
	return path
}

// Import checks and writes targets in bulk (discovery imports what it
// found through it). Rows are numbered from 1 in the order given.
func (s *Service) Import(ctx context.Context, p *identity.Principal, rows []TargetInput, opts ImportOptions) (ImportReport, error) {
	in := make([]ImportRow, len(rows))
	for i, r := range rows {
		in[i] = ImportRow{Row: i + 1, Input: r}
	}
	return s.ImportRows(ctx, p, in, opts, false)
}

// ImportRows is Import for decoded rows; csvNames reports problems by CSV
// column instead of JSON field.
func (s *Service) ImportRows(ctx context.Context, p *identity.Principal, rows []ImportRow, opts ImportOptions, csvNames bool) (ImportReport, error) {
	switch opts.Mode {
	case "":
		opts.Mode = ImportCreate
	case ImportCreate, ImportUpsert:
	default:
		return ImportReport{}, problem.Invalid("mode", "must be create or upsert, got %q", opts.Mode)
	}
	if len(rows) > MaxImportRows {
		return ImportReport{}, problem.New(problem.KindTooLarge, "too_many_rows", "an import holds at most %d rows", MaxImportRows)
	}
	rep := ImportReport{Mode: opts.Mode, DryRun: opts.DryRun, Partial: opts.Partial, Rows: len(rows), Errors: []RowError{}}
	v, err := s.view(ctx)
	if err != nil {
		return rep, err
	}
	if err := v.loadAgents(); err != nil {
		return rep, err
	}
	agents := map[string]AgentInfo{}
	for _, a := range v.agents {
		agents[a.ID], agents[a.Name] = a, a
	}
	firstRow := map[string]int{}
	var good []Target
	for _, row := range rows {
		errs := slices.Clone(row.Errors)
		bad := func(field, format string, args ...any) {
			errs = append(errs, RowError{Row: row.Row, Field: field, Message: fmt.Sprintf(format, args...)})
		}
		in := row.Input
		if len(errs) == 0 {
			var pl problem.List
			checkInput("", in, &pl)
			for _, e := range pl {
				f := e.Field
				if csvNames {
					f = csvField(f)
				}
				bad(f, "%s", e.Message)
			}
		}
		conn := func(f string) string {
			if csvNames {
				return f
			}
			return "connection." + f
		}
		// Past a decoding problem the row means nothing more; past a
		// validation problem, the other checks still run, so that one
		// pass names everything wrong with the row.
		if len(row.Errors) == 0 && in.Connection != nil {
			if first, dup := firstRow[in.Name]; dup {
				bad("name", "%q is also the name in row %d: names are unique", in.Name, first)
			} else {
				firstRow[in.Name] = row.Row
			}
			if a, ok := agents[in.Connection.Via]; !ok && in.Connection.Via != "" {
				bad(conn("via"), "no agent named %q relays SSH connections: name an enrolled agent", in.Connection.Via)
			} else if a.Status == "revoked" {
				bad(conn("via"), "agent %q is revoked", in.Connection.Via)
			}
			if _, ok := agents[in.Name]; ok {
				bad("name", "an agent named %q is already a target", in.Name)
			}
			for i, g := range in.Groups {
				if grp, ok := v.groups[g]; ok && grp.Kind == GroupDynamic {
					f := fmt.Sprintf("groups[%d]", i)
					if csvNames {
						f = "groups"
					}
					bad(f, "%q is a dynamic group: its members follow its selector", g)
				}
			}
		}
		var t Target
		if len(errs) == 0 {
			raw, err := v.txn.First(tableTargets, "name", in.Name)
			if err != nil {
				return rep, fmt.Errorf("import: %w", err)
			}
			t = fromInput(in)
			v.decorate(&t)
			switch {
			case raw != nil && opts.Mode == ImportCreate:
				bad("name", "a target named %q already exists (import with mode=upsert to replace it)", in.Name)
			case raw != nil && !v.allowed(p, identity.PermAssetsWrite, v.stored(raw.(*Target))):
				bad("name", "a target named %q exists outside where you hold assets:write", in.Name)
			case !v.allowed(p, identity.PermAssetsWrite, &t):
				bad("tags", "the target would be outside where you hold assets:write")
			}
		}
		if len(errs) > 0 {
			rep.Invalid++
			for _, e := range errs {
				if len(rep.Errors) < maxRowErrors {
					rep.Errors = append(rep.Errors, e)
				} else {
					rep.ErrorsOmitted++
				}
			}
			continue
		}
		rep.Valid++
		good = append(good, t)
	}
	if opts.DryRun || len(good) == 0 {
		return rep, nil
	}
	if rep.Invalid > 0 && !opts.Partial {
		return rep, importProblem(rep)
	}
	mode := putCreate
	if opts.Mode == ImportUpsert {
		mode = putUpsert
	}
	for start := 0; start < len(good); start += importBatchSize {
		batch := good[start:min(start+importBatchSize, len(good))]
		for i := range batch {
			if batch[i].ID, err = newID("tgt_"); err != nil {
				return rep, err
			}
		}
		var res putResult
		if err := s.apply(ctx, cmdTargetsPut, targetsPutPayload{Mode: mode, Actor: p.Name(), Targets: batch}, &res); err != nil {
			if start > 0 {
				rep.Written = true
				return rep, fmt.Errorf("import: wrote %d of %d targets, then: %w", start, len(good), err)
			}
			return rep, fmt.Errorf("import: %w", err)
		}
		rep.Written = true
		for _, c := range res.Created {
			if c {
				rep.Created++
			} else {
				rep.Updated++
			}
		}
	}
	s.d.Logger.Info("imported targets", "rows", rep.Rows, "created", rep.Created, "updated", rep.Updated,
		"invalid", rep.Invalid, "actor", p.Name())
	return rep, nil
}

// importProblem is the 400 for an import refused because of bad rows:
// every row problem as a detail whose field is rows[N].column.
func importProblem(rep ImportReport) error {
	e := &problem.Error{Kind: problem.KindInvalid, Code: "import_invalid",
		Message: fmt.Sprintf("%d of %d rows are invalid; nothing was written (fix them, or import with partial=true to write the %d valid rows)",
			rep.Invalid, rep.Rows, rep.Valid)}
	for i, re := range rep.Errors {
		if i == maxProblemDetails {
			e.Message += fmt.Sprintf("; the first %d problems are listed (dry_run=true lists up to %d)", maxProblemDetails, maxRowErrors)
			break
		}
		d := problem.Error{Kind: problem.KindInvalid, Code: "invalid_input", Field: rowField(re), Message: re.Message}
		if i == 0 {
			e.Field = d.Field
		}
		e.Details = append(e.Details, d)
	}
	return e
}

func rowField(re RowError) string {
	if re.Field == "" {
		return fmt.Sprintf("rows[%d]", re.Row)
	}
	return fmt.Sprintf("rows[%d].%s", re.Row, re.Field)
}

// Export formats.
const (
	FormatCSV  = "csv"
	FormatJSON = "json"
)

// Exporter writes targets in a format import reads back. Agents' targets
// are not exported: they are not imported either, their agents enrol.
type Exporter struct {
	format string
	w      io.Writer
	csv    *csv.Writer
	n      int
}

// NewExporter starts an export to w.
func NewExporter(w io.Writer, format string) (*Exporter, error) {
	e := &Exporter{format: format, w: w}
	switch format {
	case FormatCSV:
		e.csv = csv.NewWriter(w)
		if err := e.csv.Write(csvColumns); err != nil {
			return nil, err
		}
	case FormatJSON:
		if _, err := io.WriteString(w, "["); err != nil {
			return nil, err
		}
	default:
		return nil, problem.Invalid("format", "must be csv or json, got %q", format)
	}
	return e, nil
}

// Exportable reports whether t is written by an export.
func Exportable(t Target) bool { return !t.overlay() }

// Write adds one target.
func (e *Exporter) Write(t Target) error {
	if !Exportable(t) {
		return nil
	}
	conn := t.Connection
	in := TargetInput{Name: t.Name, Addresses: t.Addresses, Connection: &conn, Tags: t.Tags, Groups: t.Groups, Owner: t.Owner, Notes: t.Notes}
	e.n++
	if e.csv != nil {
		tags := make([]string, 0, len(t.Tags))
		for _, k := range slices.Sorted(maps.Keys(t.Tags)) {
			tags = append(tags, k+"="+t.Tags[k])
		}
		port := ""
		if conn.Port != 0 {
			port = strconv.Itoa(conn.Port)
		}
		return e.csv.Write([]string{t.Name, strings.Join(t.Addresses, ";"), conn.Type, conn.Via, port, conn.Username,
			conn.HostKey, conn.HostKeyPolicy, strings.Join(tags, ";"), strings.Join(t.Groups, ";"), t.Owner, t.Notes})
	}
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	sep := ",\n"
	if e.n == 1 {
		sep = "\n"
	}
	if _, err := io.WriteString(e.w, sep); err != nil {
		return err
	}
	_, err = e.w.Write(b)
	return err
}

// Close ends the document.
func (e *Exporter) Close() error {
	if e.csv != nil {
		e.csv.Flush()
		return e.csv.Error()
	}
	end := "\n]\n"
	if e.n == 0 {
		end = "]\n"
	}
	_, err := io.WriteString(e.w, end)
	return err
}
