package gateway

import (
	_ "embed"
	"net/http"
)

// openAPIDocument is the hand-written API description. It is embedded, not
// generated, so it is reviewed like code; TestOpenAPI keeps it true to the
// route table and to what the handlers send. Never written after init.
//
//go:embed openapi.json
var openAPIDocument []byte

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
