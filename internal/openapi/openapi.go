// Package openapi is the OpenAPI 3 description of inkorg's REST API: the ERP's API under /api/v1/
// (package api, bearer tokens) and the settings API (package settingsapi, the web UI's session cookie
// and CSRF header). The description is the hand-written openapi.json beside this file, embedded in the
// binary and served at GET /api/v1/openapi.json; its test checks that it names every route the server
// registers, no route it does not, and the JSON fields of the main bodies against the Go types.
package openapi

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"net/http"
	"time"
)

//go:embed openapi.json
var files embed.FS

// JSON returns the description (a fresh copy).
func JSON() []byte {
	b, err := files.ReadFile("openapi.json")
	if err != nil {
		// The file is embedded at build time; it cannot be missing.
		panic(fmt.Sprintf("openapi: embedded openapi.json: %v", err))
	}
	return b
}

// Handler serves the description as application/json, with an ETag (its SHA-256) for conditional
// requests. The caller routes methods: it answers any request with the document.
func Handler() http.Handler {
	doc := JSON()
	sum := sha256.Sum256(doc)
	etag := `"` + hex.EncodeToString(sum[:]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		w.Header().Set("ETag", etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(doc))
	})
}
