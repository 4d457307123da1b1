package gateway

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"strings"

	"github.com/opsconductor/opsconductor/controller/problem"
)

// decodeJSON reads r's body into dst strictly: the Content-Type must be
// application/json, the body one JSON object with only known fields and
// nothing after it. Every rejection is a *problem.Error naming the field or
// "body"; any other error is the caller's bug (dst not a pointer).
//
// encoding/json matches field names case-insensitively; that leniency stays
// until encoding/json/v2 is out of GOEXPERIMENT.
func decodeJSON(r *http.Request, dst any) error {
	if err := requireMediaType(r, "application/json"); err != nil {
		return err
	}
	return decodeStrict(r.Body, dst)
}

// requireMediaType rejects a body whose Content-Type is not want (parameters
// such as charset=utf-8 are allowed).
func requireMediaType(r *http.Request, want string) error {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != want {
		if ct == "" {
			ct = "none"
		}
		return unsupported("Content-Type must be %s, got %s", want, ct)
	}
	if cs, ok := params["charset"]; ok && want == "application/json" && !strings.EqualFold(cs, "utf-8") {
		return unsupported("Content-Type charset must be utf-8, got %s", cs)
	}
	return nil
}

func unsupported(format string, args ...any) *problem.Error {
	p := problem.New(problem.KindUnsupported, "unsupported_media_type", format, args...)
	p.Field = "Content-Type"
	return p
}

func decodeStrict(body io.Reader, dst any) error {
	src := &readErrs{r: body}
	br := bufio.NewReader(src)
	if wantsObject(dst) {
		first, err := firstNonSpace(br)
		if err != nil {
			return decodeProblem(src, err)
		}
		if first != '{' {
			return problem.Invalid("body", "must be a JSON object")
		}
	}
	dec := json.NewDecoder(br)
	dec.DisallowUnknownFields()
	if err := dec.Decode(dst); err != nil {
		return decodeProblem(src, err)
	}
	// A second value, or garbage, after the first is an error rather than
	// silently ignored: it usually means two requests were concatenated.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if src.err != nil && !errors.Is(src.err, io.EOF) {
			return decodeProblem(src, src.err)
		}
		return problem.Invalid("body", "unexpected data after the JSON object")
	}
	return nil
}

// wantsObject reports whether dst decodes from a JSON object, so that
// "null", a bare string or an array is rejected rather than ignored.
func wantsObject(dst any) bool {
	t := reflect.TypeOf(dst)
	if t == nil || t.Kind() != reflect.Pointer {
		return false
	}
	k := t.Elem().Kind()
	return k == reflect.Struct || k == reflect.Map
}

func firstNonSpace(br *bufio.Reader) (byte, error) {
	for {
		b, err := br.ReadByte()
		if err != nil {
			return 0, err
		}
		switch b {
		case ' ', '\t', '\r', '\n':
			continue
		}
		return b, br.UnreadByte()
	}
}

// readErrs remembers the last error from the body itself, so that a failed
// read (a client that hung up, a broken chunked encoding) is told apart from
// malformed JSON.
type readErrs struct {
	r   io.Reader
	err error
}

func (r *readErrs) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil {
		r.err = err
	}
	return n, err
}

// decodeProblem turns encoding/json's errors into problems that name the
// field where it knows one.
func decodeProblem(src *readErrs, err error) error {
	var (
		syntax   *json.SyntaxError
		typ      *json.UnmarshalTypeError
		tooLarge *http.MaxBytesError
	)
	switch {
	case errors.As(err, &tooLarge):
		return tooLargeProblem(tooLarge.Limit)
	case src.err != nil && !errors.Is(src.err, io.EOF) && errors.Is(err, src.err):
		return problem.Invalid("body", "could not be read: %v", err)
	case errors.Is(err, io.EOF):
		return problem.Invalid("body", "must not be empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return problem.Invalid("body", "malformed JSON: unexpected end of input")
	case errors.As(err, &syntax):
		return problem.Invalid("body", "malformed JSON at byte %d: %s", syntax.Offset, syntax.Error())
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return problem.Invalid(field, "must be %s, not %s", jsonKind(typ.Type), typ.Value)
	}
	// encoding/json has no typed error for unknown fields.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field := strings.Trim(name, `"`)
		if field == "" { // {"": …} has no name to blame
			return problem.Invalid("body", `unknown field ""`)
		}
		return problem.Invalid(field, "unknown field")
	}
	return fmt.Errorf("decode JSON: %w", err)
}

// jsonKind names a Go type the way a JSON client thinks of it.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "a " + t.String()
}
